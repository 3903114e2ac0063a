"""`batch`, `padded_batch` and `unbatch`."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.data import indexed
from jitflow.data.dataset_ops import Dataset, Element, Env, as_int, read_int, tensor_captures
from jitflow.data.function import check_output
from jitflow.data.indexed import index_source
from jitflow.data.readers import RecordFileDataset
from jitflow.data.transforms import MapDataset
from jitflow.framework.graph import Tensor
from jitflow.framework.tensor_shape import TensorShape, as_shape, shape_str


def stack(batch: list[Element]) -> Element:
    """Components of `batch` stacked along a new first axis (InvalidArgumentError on differing shapes)."""
    out = []
    for i in range(len(batch[0])):
        parts = [el[i] for el in batch]
        try:
            out.append(np.stack(parts))
        except ValueError:
            first = np.shape(parts[0])
            k = next(k for k, p in enumerate(parts) if np.shape(p) != first)
            raise errors.InvalidArgumentError(
                None, None, f"Cannot batch tensors with different shapes in component {i}. First element had "
                            f"shape {shape_str(first)} and element {k} had shape {shape_str(np.shape(parts[k]))}."
            ) from None
    return out


class BatchDataset(Dataset):
    """`batch`: `batch_size` consecutive elements stacked; a map before it runs once per batch when the
    map's function is elementwise (same result, one sub-plan run instead of `batch_size`)."""

    def __init__(self, input_ds: Dataset, batch_size: Any, drop_remainder: Any) -> None:
        self._input = input_ds
        self._size = as_int(batch_size, "batch_size")
        if not isinstance(self._size, Tensor) and self._size <= 0:
            raise errors.InvalidArgumentError(None, None, f"Batch size must be greater than zero, got "
                                                          f"{self._size}.")
        self._drop = bool(drop_remainder)
        dim = self._size if self._drop and not isinstance(self._size, Tensor) else None
        self._batched_map = input_ds.batched_function() \
            if isinstance(input_ds, MapDataset) and input_ds._parallel == 1 else None
        self._set_signature(input_ds._structure, input_ds._types,
                            [TensorShape([dim]).concatenate(s) for s in input_ds._shapes])

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        own = tensor_captures(self._size)
        return own + (list(self._batched_map.captures) if self._batched_map is not None else [])

    def _iterate(self, env: Env) -> Iterator[Element]:
        n = read_int(env, self._size)
        fn = self._batched_map
        below = self._input._input if fn is not None else self._input  # type: ignore[attr-defined]
        if index_source(below) is not None:  # rows gathered by index, no per-element Python
            for batch in indexed.batches(below, env, n, self._drop):
                yield check_output(fn.call(env.ctx, batch, []), fn) if fn is not None else batch
            return
        if isinstance(below, RecordFileDataset):  # record strings batched as they are read
            for records in below.record_batches(env, n):
                if self._drop and len(records) < n:
                    return
                yield check_output(fn.call(env.ctx, [records], []), fn) if fn is not None else [records]
            return
        source = below._iterate(env)
        while True:
            buf = list(itertools.islice(source, n))
            if not buf or (self._drop and len(buf) < n):
                return
            batch = stack(buf)
            if fn is not None:
                batch = check_output(fn.call(env.ctx, batch, []), fn)
            yield batch


class PaddedBatchDataset(BatchDataset):
    """`padded_batch`: elements padded to `padded_shapes` (unknown dims: the batch's largest)."""

    def __init__(self, input_ds: Dataset, batch_size: Any, padded_shapes: Any, padding_values: Any,
                 drop_remainder: Any) -> None:
        super().__init__(input_ds, batch_size, drop_remainder)
        self._batched_map = None
        flat_types = input_ds.output_types
        shapes = _flat_like(flat_types, padded_shapes)
        self._pads = [as_shape(s) for s in shapes]
        for want, have in zip(self._pads, input_ds._shapes):
            if have.ndims is not None and want.ndims != have.ndims:
                raise ValueError(f"The padded shape {want} is not compatible with the corresponding input "
                                 f"component shape {have}.")
        values = _flat_like(flat_types, padding_values) if padding_values is not None else [None] * len(shapes)
        self._values = [np.asarray(b"" if dt == dtypes.string else 0, dtype=dt.np) if v is None
                        else _padding_value(v, dt) for v, dt in zip(values, input_ds._types)]
        dim = self._shapes[0].as_list()[0] if self._shapes and self._shapes[0].ndims else None
        self._shapes = [TensorShape([dim]).concatenate(p) for p in self._pads]

    def _iterate(self, env: Env) -> Iterator[Element]:
        n = read_int(env, self._size)
        source = self._input._iterate(env)
        while True:
            buf = list(itertools.islice(source, n))
            if not buf or (self._drop and len(buf) < n):
                return
            yield [self._pad(i, [el[i] for el in buf]) for i in range(len(buf[0]))]

    def _pad(self, i: int, parts: list[np.ndarray]) -> np.ndarray:
        want = self._pads[i].as_list()
        parts = [np.asarray(p) for p in parts]
        target = [w if w is not None else max(p.shape[d] for p in parts) for d, w in enumerate(want)]
        out = np.full([len(parts)] + target, self._values[i], dtype=self._types[i].np)
        for k, p in enumerate(parts):
            if any(s > t for s, t in zip(p.shape, target)):
                raise errors.InvalidArgumentError(None, None, f"Attempted to pad to a smaller size than the "
                                                              f"input element: element shape {shape_str(p.shape)}, "
                                                              f"padded shape {shape_str(target)}.")
            out[(k,) + tuple(slice(0, s) for s in p.shape)] = p
        return out


def _padding_value(v: Any, dt: dtypes.DType) -> np.ndarray:
    """A padding value: a Python/NumPy scalar or a constant tensor of the component's dtype."""
    if isinstance(v, Tensor):
        from jitflow.ops.op_util import const_value

        if v.dtype != dt:
            raise TypeError(f"Padding value dtype {v.dtype.name} does not match the component's {dt.name}")
        c = const_value(v)
        if c is None:
            raise TypeError("jitflow needs a constant padding value (a Python scalar or tf.constant)")
        v = c
    return np.asarray(v, dtype=dt.np)


def _flat_like(types: Any, values: Any) -> list[Any]:
    """`values` (shapes or scalars, structured like `types`) flattened in component order."""
    if isinstance(types, dict):
        return [v for k in sorted(types) for v in _flat_like(types[k], values[k])]
    if isinstance(types, tuple):
        if not isinstance(values, (tuple, list)) or len(values) != len(types):
            raise ValueError(f"The structure of {values!r} does not match the dataset's {types!r}")
        return [v for t, x in zip(types, values) for v in _flat_like(t, x)]
    return [values]


class UnbatchDataset(Dataset):
    """`unbatch`: every element split along its first dimension."""

    def __init__(self, input_ds: Dataset) -> None:
        self._input = input_ds
        for s in input_ds._shapes:
            if s.ndims == 0:
                raise ValueError("Cannot unbatch an input with scalar components.")
        self._set_signature(input_ds._structure, input_ds._types,
                            [TensorShape(None) if s.ndims is None else TensorShape(s.as_list()[1:])
                             for s in input_ds._shapes])

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _iterate(self, env: Env) -> Iterator[Element]:
        for el in self._input._iterate(env):
            n = len(el[0])
            if any(len(c) != n for c in el):
                raise errors.InvalidArgumentError(None, None, "Input element must have the same batch size in "
                                                              "each component.")
            for i in range(n):
                yield [c[i] for c in el]

