"""Event-file records as TF's Python API shows them: `tf.SessionLog` and `tf.train.summary_iterator`.

`tf.train.summary_iterator(path)` yields Event objects with TF's attribute names (`wall_time`, `step`,
`file_version`, `summary.value[i].tag`, `.simple_value`, `.histo`, `session_log.status`) and
`HasField`, read from the files `tf.summary.FileWriter` writes.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jitflow.train.checkpoint.wire import bytes_field, iter_fields, varint_field


class _Message:
    """A read-only record with TF's field names; HasField tells set fields from defaults."""

    _defaults: dict[str, Any] = {}

    def __init__(self, **fields: Any) -> None:
        self._set = set(fields)
        for k, v in {**self._defaults, **fields}.items():
            setattr(self, k, v)

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf's method name
        if name not in self._defaults:
            raise ValueError(f'Protocol message has no non-repeated field "{name}"')
        return name in self._set

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={getattr(self, k)!r}" for k in sorted(self._set))
        return f"{type(self).__name__}({body})"


class SessionLog(_Message):
    """TF's SessionLog: a training session started, stopped or wrote a checkpoint."""

    STATUS_UNSPECIFIED = 0
    START = 1
    STOP = 2
    CHECKPOINT = 3
    _defaults = {"status": 0, "checkpoint_path": "", "msg": ""}
    status: int
    checkpoint_path: str
    msg: str

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's method name
        buf = varint_field(1, int(self.status)) if self.status else b""
        if self.checkpoint_path:
            buf += bytes_field(2, str(self.checkpoint_path).encode())
        if self.msg:
            buf += bytes_field(3, str(self.msg).encode())
        return buf

    @classmethod
    def FromString(cls, data: bytes) -> SessionLog:  # noqa: N802 - protobuf's method name
        fields: dict[str, Any] = {}
        for field, _, val in iter_fields(data, "SessionLog"):
            if field == 1:
                fields["status"] = int(val)  # type: ignore[arg-type]
            elif field in (2, 3):
                fields["checkpoint_path" if field == 2 else "msg"] = bytes(val).decode()  # type: ignore[arg-type]
        return cls(**fields)


class HistogramProto(_Message):
    _defaults = {"min": 0.0, "max": 0.0, "num": 0.0, "sum": 0.0, "sum_squares": 0.0, "bucket_limit": [],
                 "bucket": []}


class SummaryValue(_Message):
    _defaults = {"tag": "", "simple_value": 0.0, "histo": None}


class Summary(_Message):
    _defaults = {"value": []}


class Event(_Message):
    _defaults = {"wall_time": 0.0, "step": 0, "file_version": "", "summary": None, "session_log": None}
    summary: Any
    session_log: Any


def _summary(parsed: dict[str, Any]) -> Summary:
    values = []
    for tag, v in parsed.items():
        if isinstance(v, dict):
            values.append(SummaryValue(tag=tag, histo=HistogramProto(**v)))
        else:
            values.append(SummaryValue(tag=tag, simple_value=float(v if v is not None else 0.0)))
    return Summary(value=values)


def summary_iterator(path: str) -> Iterator[Event]:
    """The Event records of the event file at `path`, in order (DataLossError on a damaged record)."""
    import os

    from jitflow import errors
    from jitflow.summary import summary_iterator as records

    if not os.path.exists(path):
        raise errors.NotFoundError(None, None, f"{path}; No such file or directory")
    for rec in records(path):
        fields = {k: v for k, v in rec.items() if k in ("wall_time", "step", "file_version")}
        if "summary" in rec:
            fields["summary"] = _summary(rec["summary"])
        if "session_log" in rec:
            fields["session_log"] = SessionLog.FromString(rec["session_log"])
        ev = Event(**fields)
        if ev.summary is None:
            ev.summary = Summary()  # protobuf reads an unset message field as its empty default
        if ev.session_log is None:
            ev.session_log = SessionLog()
        yield ev
