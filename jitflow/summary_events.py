"""`tf.train.summary_iterator`: the Event records of an event file, as TensorFlow's Event messages.

`tf.SessionLog` and `tf.Event` are the protocol-buffer messages of :mod:`jitflow.protos.event`, so the
records read back have TF's field names, `HasField` and `SerializeToString`.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from jitflow import errors
from jitflow.protos.event import Event, SessionLog

__all__ = ["Event", "SessionLog", "summary_iterator"]


def summary_iterator(path: Any) -> Iterator[Any]:
    """The Event records of the event file at `path`, in order (DataLossError on a damaged record)."""
    from jitflow.data.tf_record import read_records

    path = os.fspath(path)
    if not os.path.exists(path):
        raise errors.NotFoundError(None, None, f"{path}; No such file or directory")
    for record in read_records(path):
        yield Event.FromString(record)
