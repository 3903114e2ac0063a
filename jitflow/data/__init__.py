"""`tf.data`: input pipelines (datasets, their transformations, iterators, file readers)."""
# ruff: noqa: F401
from __future__ import annotations

import types as _types

from jitflow.data.dataset_ops import Dataset
from jitflow.data.iterator_ops import (
    Iterator,
    get_output_classes,
    get_output_shapes,
    get_output_types,
    make_initializable_iterator,
    make_one_shot_iterator,
)
from jitflow.data.readers import FixedLengthRecordDataset, TextLineDataset, TFRecordDataset
from jitflow.data.transforms import AUTOTUNE


def _unbatch() -> object:
    return lambda ds: ds.unbatch()


def _shuffle_and_repeat(buffer_size: object, count: object = None, seed: object = None) -> object:
    return lambda ds: ds.shuffle(buffer_size, seed).repeat(count)


def _map_and_batch(map_func: object, batch_size: object, num_parallel_batches: object = None,
                   drop_remainder: bool = False, num_parallel_calls: object = None) -> object:
    return lambda ds: ds.map(map_func, num_parallel_calls).batch(batch_size, drop_remainder)


experimental = _types.SimpleNamespace(AUTOTUNE=AUTOTUNE, unbatch=_unbatch, shuffle_and_repeat=_shuffle_and_repeat,
                                      map_and_batch=_map_and_batch, get_output_types=get_output_types,
                                      get_output_shapes=get_output_shapes, get_output_classes=get_output_classes)
