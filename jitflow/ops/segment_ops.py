"""Segment reductions (`tf.math.segment_*`, `unsorted_segment_*`) and sorting (`tf.sort`, `tf.argsort`).

Sorted segment ops take a vector of non-decreasing ids over the first dimension; their empty segments are
0 (1 for prod). Unsorted ones take ids of any leading shape and `num_segments`; negative ids are dropped
and empty segments hold the reduction's identity (lowest value for max, highest for min). Gradients are
TF's: max/min share the gradient among the tied maxima, prod handles zeros.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape, shape_str
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops import nn_ops
from jitflow.ops.array_ops import _int_input, unsorted_segment_sum
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import const_value, make_op, out

Grads = list[Tensor | None]

# reduction -> (NumPy ufunc scattering into the result, identity for an empty unsorted segment)
_UFUNCS = {"Sum": np.add, "Prod": np.multiply, "Max": np.maximum, "Min": np.minimum, "Mean": np.add}


def _identity(kind: str, dt: np.dtype) -> Any:
    if kind in ("Sum", "Mean"):
        return 0
    if kind == "Prod":
        return 1
    info = np.finfo(dt) if dt.kind == "f" else np.iinfo(dt)
    return info.min if kind == "Max" else info.max


def _scatter(kind: str, data: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reduction of rows of `data` by flat `ids` (all in [0, n)) into n rows, and each row's count."""
    rows = data.reshape((ids.size,) + data.shape[ids.ndim:])
    flat = ids.reshape(-1)
    res = np.full((n,) + rows.shape[1:], _identity(kind, data.dtype), dtype=data.dtype)
    _UFUNCS[kind].at(res, flat, rows)
    counts = np.bincount(flat, minlength=n)
    return res, counts


def _check_prefix(data: np.ndarray, ids: np.ndarray) -> None:
    if data.shape[:ids.ndim] != ids.shape:
        raise InvalidArgumentError(None, None, f"data.shape = {shape_str(data.shape)} does not start with "
                                               f"segment_ids.shape = {shape_str(ids.shape)}")


def _sorted_kernel(kind: str) -> registry.KernelFn:
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        data, ids = np.asarray(ins[0]), np.asarray(ins[1])
        if ids.ndim != 1:
            raise InvalidArgumentError(None, None, f"segment_ids should be a vector, got {shape_str(ids.shape)}")
        _check_prefix(data, ids)
        if ids.size and (ids[0] < 0 or np.any(np.diff(ids) < 0)):
            bad = int(np.argmax(np.diff(ids) < 0)) + 1 if ids[0] >= 0 else 0
            raise InvalidArgumentError(None, None, f"segment ids are not increasing: segment_ids[{bad}] = "
                                                   f"{int(ids[bad])} in '{op.name}'")
        n = int(ids[-1]) + 1 if ids.size else 0
        res, counts = _scatter(kind, data, ids, n)
        empty = (counts == 0).reshape((n,) + (1,) * (res.ndim - 1))
        res = np.where(empty, 0, res).astype(data.dtype)  # TF: an empty sorted segment is 0 (prod too: 1)
        if kind == "Prod":
            res = np.where(empty, 1, res).astype(data.dtype)
        if kind == "Mean":
            res = (res / np.maximum(counts, 1).reshape(empty.shape)).astype(data.dtype)
        return res
    return kernel


def _unsorted_kernel(kind: str) -> registry.KernelFn:
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        data, ids = np.asarray(ins[0]), np.asarray(ins[1])
        n = int(np.asarray(ins[2]).reshape(-1)[0])
        _check_prefix(data, ids)
        if np.any(ids >= n):
            bad = tuple(int(j) for j in np.argwhere(ids >= n)[0])
            raise InvalidArgumentError(None, None, f"segment_ids[{','.join(map(str, bad))}] = {int(ids[bad])} "
                                                   f"is out of range [0, {n})")
        keep = ids.reshape(-1) >= 0  # negative ids are dropped
        rows = data.reshape((ids.size,) + data.shape[ids.ndim:])[keep]
        return _scatter(kind, rows, ids.reshape(-1)[keep], n)[0]
    return kernel


def _sorted_infer(op: Operation) -> list:
    d, ids = op.inputs[0], op.inputs[1]
    if ids.shape.ndims is not None and ids.shape.ndims != 1:
        raise ValueError(f"Shape must be rank 1 but is rank {ids.shape.ndims} for '{op.name}' (op: '{op.type}')")
    dims = d.shape.as_tuple()
    return [(d.dtype, TensorShape(None if dims is None else [None] + list(dims[1:])))]


def _unsorted_infer(op: Operation) -> list:
    d, ids, n = op.inputs
    dd, idd = d.shape.as_tuple(), ids.shape.as_tuple()
    nv = const_value(n)
    if dd is None or idd is None:
        return [(d.dtype, TensorShape(None))]
    return [(d.dtype, TensorShape([None if nv is None else int(np.asarray(nv).reshape(-1)[0])] + list(dd[len(idd):])))]


for _k in ("Sum", "Mean", "Max", "Min", "Prod"):
    registry.register_op(f"Segment{_k}", _sorted_infer, _sorted_kernel(_k), registry.OPAQUE)
for _k in ("Max", "Min", "Prod"):
    registry.register_op(f"UnsortedSegment{_k}", _unsorted_infer, _unsorted_kernel(_k), registry.OPAQUE)


# -- gradients (TF's) ---------------------------------------------------------------------------------------


def _gather_drop_negatives(params: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """params[ids] with zeros where ids < 0, and the (broadcastable) mask of ids >= 0."""
    keep = M.greater_equal(ids, A.zeros_like(ids))
    got = A.gather(params, M.maximum(ids, A.zeros_like(ids)))
    extra = (got.shape.ndims or 0) - (ids.shape.ndims or 0)
    if extra > 0:
        keep = A.reshape(keep, A.concat([A.shape(ids), [1] * extra], 0))
    return M.where_v2(keep, got, A.zeros_like(got)), keep


@registry.register_gradient("SegmentSum")
def _segment_sum_grad(op: Operation, g: Tensor) -> Grads:
    return [A.gather(g, op.inputs[1]), None]


@registry.register_gradient("SegmentMean")
def _segment_mean_grad(op: Operation, g: Tensor) -> Grads:
    data, ids = op.inputs
    ones = M.cast(A.ones_like(ids), g.dtype)
    counts = segment_sum(ones, ids)
    extra = (g.shape.ndims or 1) - 1
    counts = A.reshape(counts, A.concat([A.shape(counts), [1] * extra], 0)) if extra else counts
    return [A.gather(M.realdiv(g, counts), ids), None]


def _min_max_grad(op: Operation, g: Tensor) -> Grads:
    data, ids = op.inputs[0], op.inputs[1]
    unsorted = op.type.startswith("Unsorted")
    if unsorted:
        picked, keep = _gather_drop_negatives(op.outputs[0], ids)
        selected = M.logical_and(M.equal(data, picked), keep)
        count = unsorted_segment_sum(M.cast(selected, g.dtype), ids, op.inputs[2])
        share, _ = _gather_drop_negatives(M.realdiv(g, count), ids)
    else:
        selected = M.equal(data, A.gather(op.outputs[0], ids))
        count = segment_sum(M.cast(selected, g.dtype), ids)
        share = A.gather(M.realdiv(g, count), ids)
    return [M.where_v2(selected, share, A.zeros_like(data))] + [None] * (len(op.inputs) - 1)


for _t in ("SegmentMax", "SegmentMin", "UnsortedSegmentMax", "UnsortedSegmentMin"):
    registry.register_gradient(_t)(_min_max_grad)


def _prod_grad(op: Operation, g: Tensor) -> Grads:
    data, ids = op.inputs[0], op.inputs[1]
    unsorted = op.type.startswith("Unsorted")

    def reduce(kind: str, x: Tensor) -> Tensor:
        return _segment(f"UnsortedSegment{kind}" if unsorted else f"Segment{kind}", x, ids,
                        op.inputs[2] if unsorted else None, None)

    def gather(x: Tensor) -> Tensor:
        return _gather_drop_negatives(x, ids)[0] if unsorted else A.gather(x, ids)

    is_zero = M.equal(data, A.zeros_like(data))
    zeros = reduce("Sum", M.cast(is_zero, dtypes.int32)) if not unsorted else \
        unsorted_segment_sum(M.cast(is_zero, dtypes.int32), ids, op.inputs[2])
    g = M.where_v2(M.greater(zeros, 1), A.zeros_like(g), g)  # two zeros: every partial derivative is 0
    nonzero = M.where_v2(is_zero, A.ones_like(data), data)
    partial = M.where_v2(is_zero, gather(reduce("Prod", nonzero)), M.realdiv(gather(op.outputs[0]), nonzero))
    return [gather(g) * partial] + [None] * (len(op.inputs) - 1)


registry.register_gradient("SegmentProd")(_prod_grad)
registry.register_gradient("UnsortedSegmentProd")(_prod_grad)


# -- public functions -------------------------------------------------------------------------------------


def _segment(op_type: str, data: Any, segment_ids: Any, num_segments: Any, name: str | None) -> Tensor:
    d = convert_to_tensor(data)
    ids = _int_input(segment_ids, "segment_ids")
    attrs: dict[str, Any] = {"T": d.dtype, "Tindices": ids.dtype}
    inputs = [d, ids]
    if num_segments is not None:
        n = _int_input(num_segments, "num_segments")
        inputs.append(n)
        attrs["Tnumsegments"] = n.dtype
    return out(make_op(op_type, inputs, attrs, name=name or op_type))


def segment_sum(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """Sums of the rows of `data` sharing a (sorted) segment id."""
    return _segment("SegmentSum", data, segment_ids, None, name)


def segment_mean(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """Means of the rows of `data` sharing a (sorted) segment id."""
    return _segment("SegmentMean", data, segment_ids, None, name)


def segment_max(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """Maxima of the rows of `data` sharing a (sorted) segment id."""
    return _segment("SegmentMax", data, segment_ids, None, name)


def segment_min(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """Minima of the rows of `data` sharing a (sorted) segment id."""
    return _segment("SegmentMin", data, segment_ids, None, name)


def segment_prod(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """Products of the rows of `data` sharing a (sorted) segment id."""
    return _segment("SegmentProd", data, segment_ids, None, name)


def unsorted_segment_max(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """Maxima by segment id (empty segments: the dtype's lowest value)."""
    return _segment("UnsortedSegmentMax", data, segment_ids, num_segments, name)


def unsorted_segment_min(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """Minima by segment id (empty segments: the dtype's highest value)."""
    return _segment("UnsortedSegmentMin", data, segment_ids, num_segments, name)


def unsorted_segment_prod(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """Products by segment id (empty segments: 1)."""
    return _segment("UnsortedSegmentProd", data, segment_ids, num_segments, name)


def _segment_counts(data: Tensor, ids: Tensor, num_segments: Any) -> Tensor:
    """max(1, rows per segment), shaped to broadcast against the segment sums (TF's `_unsorted_segment_N`)."""
    ones = M.cast(A.ones_like(ids), data.dtype)
    n = M.maximum(unsorted_segment_sum(ones, ids, num_segments), M.cast(1, data.dtype))
    extra = (data.shape.ndims or 0) - (ids.shape.ndims or 0)
    return A.reshape(n, A.concat([A.shape(n), [1] * extra], 0)) if extra > 0 else n


def unsorted_segment_mean(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """Means by segment id (empty segments: 0)."""
    with _name_scope(name or "UnsortedSegmentMean"):
        d, ids = convert_to_tensor(data), _int_input(segment_ids, "segment_ids")
        return M.realdiv(unsorted_segment_sum(d, ids, num_segments), _segment_counts(d, ids, num_segments))


def unsorted_segment_sqrt_n(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """Sums by segment id divided by the square root of the segment's size (empty segments: 0)."""
    with _name_scope(name or "UnsortedSegmentSqrtN"):
        d, ids = convert_to_tensor(data), _int_input(segment_ids, "segment_ids")
        return M.realdiv(unsorted_segment_sum(d, ids, num_segments),
                         M.sqrt(_segment_counts(d, ids, num_segments)))


# -- sort / argsort: top_k over the last axis ----------------------------------------------------------------


def _order_key(x: Tensor, ascending: bool) -> Tensor:
    """A value whose descending order is `x`'s wanted order (no overflow: ~x for signed ints)."""
    if not ascending:
        return x
    if x.dtype.is_floating:
        return M.negative(x)
    if x.dtype.is_unsigned:
        return M.subtract(M.cast(x.dtype.max, x.dtype), x)
    return M.subtract(M.negative(x), M.cast(1, x.dtype))


def _top(x: Tensor, axis: int, direction: str, what: str) -> tuple[Tensor, Tensor, list[int] | None]:
    """top_k over `axis` (moved last) of the order key: its values, its indices, and the transposition."""
    if direction not in ("ASCENDING", "DESCENDING"):
        raise ValueError(f"{direction} should be one of ASCENDING, DESCENDING")
    r = x.shape.ndims
    if r is None:
        raise ValueError(f"{what}: the rank of the input must be known")
    if not -r <= axis < r:
        raise ValueError(f"{what}: axis {axis} is out of range for a tensor of rank {r}")
    a = axis % r
    perm = None if a == r - 1 else [d for d in range(r) if d != a] + [a]
    xt = A.transpose(x, perm) if perm else x
    vals, idx = nn_ops.top_k(_order_key(xt, direction == "ASCENDING"), A.gather(A.shape(xt), r - 1))
    return vals, idx, perm


def _undo(t: Tensor, perm: list[int] | None) -> Tensor:
    return A.transpose(t, np.argsort(perm).tolist()) if perm else t


def sort(values: Any, axis: int = -1, direction: str = "ASCENDING", name: str | None = None) -> Tensor:
    """`values` sorted along `axis` (differentiable, through TopKV2)."""
    with _name_scope(name or "sort"):
        x = convert_to_tensor(values)
        vals, _, perm = _top(x, axis, direction, "sort")
        res = _undo(_order_key(vals, direction == "ASCENDING"), perm)  # the key is its own inverse
        res.set_shape(x.shape)
        return res


def argsort(values: Any, axis: int = -1, direction: str = "ASCENDING", stable: bool = False,
            name: str | None = None) -> Tensor:
    """The int32 indices that sort `values` along `axis` (ties keep their order)."""
    with _name_scope(name or "argsort"):
        x = convert_to_tensor(values)
        _, idx, perm = _top(x, axis, direction, "argsort")
        res = _undo(idx, perm)
        res.set_shape(x.shape)
        return res


# -- confusion matrix: a segment sum over label * num_classes + prediction -------------------------------------


def confusion_matrix(labels: Any, predictions: Any, num_classes: Any = None, weights: Any = None,
                     dtype: Any = dtypes.int32, name: str | None = None) -> Tensor:
    """[num_classes, num_classes] counts (or summed weights), rows the labels, columns the predictions;
    `num_classes` defaults to the largest label or prediction + 1, as in TF."""
    with _name_scope(name or "confusion_matrix"):
        dt = dtypes.as_dtype(dtype)
        lab = M.cast(A.reshape(convert_to_tensor(labels), [-1]), dtypes.int64)
        pred = M.cast(A.reshape(convert_to_tensor(predictions), [-1]), dtypes.int64)
        if num_classes is None:
            n = M.maximum(M.reduce_max(lab), M.reduce_max(pred)) + 1
        else:
            n = M.cast(convert_to_tensor(num_classes), dtypes.int64)
        w = M.cast(A.ones_like(lab), dt) if weights is None else M.cast(A.reshape(convert_to_tensor(weights), [-1]), dt)
        flat = unsorted_segment_sum(w, lab * n + pred, n * n)
        res = A.reshape(flat, A.stack([n, n]))
        if isinstance(num_classes, int):
            res.set_shape([num_classes, num_classes])
        return res
