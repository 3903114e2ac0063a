"""Gradients of the array ops (reshapes, slices, joins, gathers, pads, casts, selects).

Each function is `grad(op, *output_grads) -> [grad per input]`, registered by op type.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.gradients import unbroadcast
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops.op_util import const_value, make_op, out

_GradList = list[Any]


def _shape_of(x: Tensor) -> Tensor:
    """x's shape as a constant when static (keeps gradient graphs foldable), else a Shape op."""
    if x.shape.is_fully_defined():
        return A._int_input(x.shape.as_list(), "shape")
    return A.shape(x)


def _reshape_back(op: Operation, g: Tensor) -> _GradList:
    res = A.reshape(g, _shape_of(op.inputs[0]))
    return [res] + [None] * (len(op.inputs) - 1)


for _t in ("Reshape", "ExpandDims", "Squeeze"):
    registry.register_gradient(_t)(_reshape_back)


@registry.register_gradient("Identity")
def _identity_grad(op: Operation, g: Tensor) -> _GradList:
    return [g]


@registry.register_gradient("PlaceholderWithDefault")
def _pwd_grad(op: Operation, g: Tensor) -> _GradList:
    return [g]


@registry.register_gradient("Transpose")
def _transpose_grad(op: Operation, g: Tensor) -> _GradList:
    perm = const_value(op.inputs[1])
    if perm is not None:
        inv: Any = np.argsort(np.asarray(perm).reshape(-1)).astype(np.int32)
    else:
        inv = A.invert_permutation(op.inputs[1])
    return [A.transpose(g, inv), None]


def _axis_of(op: Operation, t: Tensor, rank: int | None) -> int:
    v = const_value(t)
    if v is None or rank is None:
        raise LookupError(f"Gradient of {op.type} '{op.name}' needs a constant axis and inputs of known rank")
    return int(np.asarray(v).reshape(-1)[0]) % rank


@registry.register_gradient("ConcatV2")
def _concat_grad(op: Operation, g: Tensor) -> _GradList:
    values = op.inputs[:-1]
    a = _axis_of(op, op.inputs[-1], values[0].shape.ndims)
    sizes = [v.shape.as_tuple()[a] for v in values]  # type: ignore[index]
    if all(s is not None for s in sizes):
        parts = A.split(g, sizes, axis=a)
    else:
        dyn = A.stack([A.gather(A.shape(v), a) for v in values])
        parts = A.split(g, dyn, axis=a, num=len(values))
    for p, v in zip(parts, values):
        p.set_shape(v.shape)
    return list(parts) + [None]


@registry.register_gradient("Pack")
def _pack_grad(op: Operation, g: Tensor) -> _GradList:
    return A.unstack(g, num=op.attrs["N"], axis=op.attrs["axis"])


@registry.register_gradient("Unpack")
def _unpack_grad(op: Operation, *grads: Tensor) -> _GradList:
    return [A.stack(list(grads), axis=op.attrs["axis"])]


@registry.register_gradient("Split")
def _split_grad(op: Operation, *grads: Tensor) -> _GradList:
    return [None, A.concat(list(grads), op.inputs[0])]


@registry.register_gradient("SplitV")
def _splitv_grad(op: Operation, *grads: Tensor) -> _GradList:
    return [A.concat(list(grads), op.inputs[2]), None, None]


@registry.register_gradient("Slice")
def _slice_grad(op: Operation, g: Tensor) -> _GradList:
    x, begin, _ = op.inputs
    y = op.outputs[0]
    after = M.subtract(M.subtract(_shape_of(x), begin), _shape_of(y) if y.shape.is_fully_defined()
                       else A.shape(y))
    pads = A.stack([begin, after], axis=1)
    res = A.pad(g, pads)
    res.set_shape(x.shape)
    return [res, None, None]


@registry.register_gradient("StridedSlice")
def _strided_slice_grad(op: Operation, g: Tensor) -> _GradList:
    x, b, e, s = op.inputs
    attrs = {k: op.attrs[k] for k in A._SS_MASKS}
    shp = M.cast(_shape_of(x), b.dtype)
    attrs.update({"T": g.dtype, "Index": b.dtype})
    res = out(make_op("StridedSliceGrad", [shp, b, e, s, g], attrs, name="StridedSliceGrad"))
    res.set_shape(x.shape)
    return [res, None, None, None]


@registry.register_gradient("GatherV2")
def _gather_grad(op: Operation, g: Tensor) -> _GradList:
    params, indices, axis_t = op.inputs
    pr, ir = params.shape.ndims, indices.shape.ndims
    a = _axis_of(op, axis_t, pr)
    if ir is None or pr is None:
        raise LookupError(f"Gradient of GatherV2 '{op.name}' needs inputs of known rank")
    # g has dims params[:a] + indices + params[a+1:]; bring the index dims to the front, scatter-add, restore.
    lead = list(range(a))
    idx_dims = list(range(a, a + ir))
    tail = list(range(a + ir, a + ir + pr - a - 1))
    gt = A.transpose(g, idx_dims + lead + tail) if a else g
    pshape = _shape_of(params)
    flat_ids = A.reshape(indices, [-1])
    moved_shape = A.concat([A.gather(pshape, [a]), A.gather(pshape, lead + list(range(a + 1, pr)))], 0) \
        if a else pshape
    rest_shape = A.slice(moved_shape, [1], [-1])
    g2 = A.reshape(gt, A.concat([[-1], rest_shape], 0))
    summed = A.unsorted_segment_sum(g2, flat_ids, A.gather(pshape, a))
    if a:
        inv = np.argsort(np.array([a] + lead + list(range(a + 1, pr)))).tolist()
        summed = A.transpose(summed, inv)
    summed.set_shape(params.shape)
    return [summed, None, None]


@registry.register_gradient("UnsortedSegmentSum")
def _segment_sum_grad(op: Operation, g: Tensor) -> _GradList:
    ids = op.inputs[1]
    safe = M.maximum(ids, A.zeros_like(ids))  # dropped (negative) ids read row 0, then are masked out
    picked = A.gather(g, safe)
    keep = M.cast(M.greater_equal(ids, A.zeros_like(ids)), g.dtype)
    r = op.inputs[0].shape.ndims
    ri = ids.shape.ndims
    if r is not None and ri is not None and r > ri:
        keep = A.reshape(keep, A.concat([A.shape(ids), [1] * (r - ri)], 0))
    return [M.multiply(picked, keep), None, None]


@registry.register_gradient("Tile")
def _tile_grad(op: Operation, g: Tensor) -> _GradList:
    x, mult = op.inputs
    r = x.shape.ndims
    if r is None:
        raise LookupError(f"Gradient of Tile '{op.name}' needs an input of known rank")
    if r == 0:
        return [g, None]
    # The output is [m0*d0, m1*d1, ...] with the copy index outermost: view it as [m0, d0, m1, d1, ...].
    split_shape = A.reshape(A.stack([M.cast(mult, dtypes.int32), M.cast(_shape_of(x), dtypes.int32)], axis=1),
                            [-1])
    res = M.reduce_sum(A.reshape(g, split_shape), axis=list(range(0, 2 * r, 2)))
    res.set_shape(x.shape)
    return [res, None]


def _pad_grad(op: Operation, g: Tensor) -> _GradList:
    x, p = op.inputs[:2]
    begin = A.reshape(A.slice(p, [0, 0], [-1, 1]), [-1])
    res = A.slice(g, begin, M.cast(_shape_of(x), p.dtype))
    res.set_shape(x.shape)
    return [res, None] + ([None] if op.type == "PadV2" else [])


registry.register_gradient("Pad")(_pad_grad)
registry.register_gradient("PadV2")(_pad_grad)


@registry.register_gradient("MirrorPad")
def _mirror_pad_grad(op: Operation, g: Tensor) -> _GradList:
    x, p = op.inputs
    res = out(make_op("MirrorPadGrad", [g, p], {"mode": op.attrs["mode"], "T": g.dtype,
                                                "Tpaddings": p.dtype}, name="MirrorPadGrad"))
    res.set_shape(x.shape)
    return [res, None]


@registry.register_gradient("MirrorPadGrad")
def _mirror_pad_grad_grad(op: Operation, g: Tensor) -> _GradList:
    return [A.pad(g, op.inputs[1], mode=op.attrs["mode"]), None]


@registry.register_gradient("Cast")
def _cast_grad(op: Operation, g: Tensor) -> _GradList:
    src, dst = op.inputs[0].dtype, op.outputs[0].dtype
    ok = (src.is_floating or src.is_complex) and (dst.is_floating or dst.is_complex)
    return [M.cast(g, src) if ok else None]


@registry.register_gradient("BroadcastTo")
def _broadcast_to_grad(op: Operation, g: Tensor) -> _GradList:
    return [unbroadcast(g, op.inputs[0]), None]


@registry.register_gradient("Fill")
def _fill_grad(op: Operation, g: Tensor) -> _GradList:
    return [None, M.reduce_sum(g)]


@registry.register_gradient("Select")
def _select_grad(op: Operation, g: Tensor) -> _GradList:
    c, x, y = op.inputs
    z = A.zeros_like(g)
    return [None, M.where(c, g, z), M.where(c, z, g)]


@registry.register_gradient("SelectV2")
def _select_v2_grad(op: Operation, g: Tensor) -> _GradList:
    c, x, y = op.inputs
    z = A.zeros_like(g)
    return [None, unbroadcast(M.where_v2(c, g, z), x), unbroadcast(M.where_v2(c, z, g), y)]


for _t in ("InvertPermutation", "Shape", "Size", "Rank", "ZerosLike", "OnesLike", "OneHot", "Range",
           "LinSpace", "StridedSliceGrad"):
    registry.not_differentiable(_t)


@registry.register_gradient("ReverseV2")
def _reverse_grad(op: Operation, g: Tensor) -> _GradList:
    return [A.reverse(g, op.inputs[1]), None]


@registry.register_gradient("GatherNd")
def _gather_nd_grad(op: Operation, g: Tensor) -> _GradList:
    params, indices = op.inputs
    return [A.scatter_nd(indices, g, M.cast(_shape_of(params), indices.dtype)), None]


@registry.register_gradient("ScatterNd")
def _scatter_nd_grad(op: Operation, g: Tensor) -> _GradList:
    return [None, A.gather_nd(g, op.inputs[0]), None]
