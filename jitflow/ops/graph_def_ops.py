"""Ops that graphs written by TensorFlow use and jitflow's own constructors do not: the helpers of
TF's gradient code (BroadcastGradientArgs, BiasAddGrad, ShapeN, DynamicStitch) and `DynamicReduce`,
a reduction whose axes are computed at run time. They run on their NumPy kernels (never fused).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation
from jitflow.framework.tensor_shape import TensorShape


def _bga_kernel(ctx: Any, op: Operation, ins: list) -> tuple[np.ndarray, np.ndarray]:
    """The axes to sum each side's gradient over, so that it has that side's broadcast shape."""
    s0, s1 = (list(np.asarray(s).reshape(-1)) for s in ins)
    n = max(len(s0), len(s1))
    a = [1] * (n - len(s0)) + s0
    b = [1] * (n - len(s1)) + s1
    r0, r1 = [], []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and x != 1 and y != 1:
            raise InvalidArgumentError(None, None, f"Incompatible shapes: {s0} vs. {s1} ({op.name})")
        if x == 1:  # size-1 dims of either side are summed (both 1: harmless, as TF does)
            r0.append(i)
        if y == 1:
            r1.append(i)
    dt = op.outputs[0].dtype.np
    return np.array(r0, dtype=dt), np.array(r1, dtype=dt)


registry.register_op("BroadcastGradientArgs", lambda op: [(op.inputs[0].dtype, TensorShape([None]))] * 2,
                     _bga_kernel, registry.OPAQUE, not_differentiable=True)


def _bias_add_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g = ins[0]
    axis = 1 if op.attrs.get("data_format", "NHWC") == "NCHW" and g.ndim > 2 else g.ndim - 1
    return np.sum(g, axis=tuple(i for i in range(g.ndim) if i != axis), dtype=g.dtype)


def _bias_add_grad_infer(op: Operation) -> list:
    dims = op.inputs[0].shape.as_tuple()
    if dims is None:
        return [(op.inputs[0].dtype, TensorShape([None]))]
    nchw = op.attrs.get("data_format", "NHWC") == "NCHW" and len(dims) > 2
    return [(op.inputs[0].dtype, TensorShape([dims[1] if nchw else dims[-1]]))]


registry.register_op("BiasAddGrad", _bias_add_grad_infer, _bias_add_grad_kernel, registry.OPAQUE)


def _shape_n_infer(op: Operation) -> list:
    return [(op.attrs["out_type"], TensorShape([t.shape.ndims])) for t in op.inputs]


registry.register_op("ShapeN", _shape_n_infer,
                     lambda ctx, op, ins: tuple(np.array(x.shape, dtype=op.attrs["out_type"].np) for x in ins),
                     registry.OPAQUE, not_differentiable=True)


def _stitch_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    n = len(ins) // 2
    indices, data = ins[:n], ins[n:]
    size = max((int(np.max(i)) + 1 for i in indices if np.size(i)), default=0)
    inner = data[0].shape[np.ndim(indices[0]):]
    out = np.zeros((size,) + tuple(inner), dtype=data[0].dtype)
    for idx, d in zip(indices, data):
        out[np.asarray(idx).reshape(-1)] = np.asarray(d).reshape((-1,) + tuple(inner))
    return out


registry.register_op("DynamicStitch", lambda op: [(op.inputs[len(op.inputs) // 2].dtype, TensorShape(None))],
                     _stitch_kernel, registry.OPAQUE)


def _dynamic_reduce_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    from jitflow.ops.math_ops import _REDUCTIONS

    x, axes = ins
    ax = tuple(sorted({int(a) % max(x.ndim, 1) for a in np.asarray(axes).reshape(-1)}))
    r = _REDUCTIONS[op.attrs["reduction"]](x, ax, op.attrs["keep_dims"])
    return np.asarray(r, dtype=op.outputs[0].dtype.np)


def _dynamic_reduce_infer(op: Operation) -> list:
    x = op.inputs[0]
    if op.attrs["keep_dims"] and x.shape.ndims is not None:
        return [(x.dtype, TensorShape([None] * x.shape.ndims))]
    return [(x.dtype, TensorShape(None))]


registry.register_op("DynamicReduce", _dynamic_reduce_infer, _dynamic_reduce_kernel, registry.OPAQUE,
                     not_differentiable=True)


def _ref_switch_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    """TF's RefSwitch of a variable: the variable is read only on the branch that is taken (TF's
    initialized_value() cond reads it only once it is initialized)."""
    from jitflow.framework.dead_value import DEAD
    from jitflow.ops.state_ops import _uninitialized

    name = op.inputs[0].op.name
    if not bool(np.asarray(ins[1])):
        return ctx.variables.get(name, DEAD), DEAD
    if name not in ctx.variables:
        raise _uninitialized(op, name)
    return DEAD, ctx.variables[name]


registry.register_op("RefSwitch", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)] * 2, _ref_switch_kernel,
                     registry.STATEFUL, ref_inputs=(0,))


def _string_format_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    """TF's StringFormat: the template with each placeholder replaced by tf.print's rendering of a tensor."""
    from jitflow.ops.debug_ops import _v2_format

    parts = op.attrs["template"].split(op.attrs["placeholder"])
    if len(parts) != len(ins) + 1:
        raise InvalidArgumentError(None, None, f"{op.name}: template has {len(parts) - 1} placeholders for "
                                   f"{len(ins)} tensors")
    text = parts[0] + "".join(_v2_format(v, op.attrs["summarize"]) + p for v, p in zip(ins, parts[1:]))
    return np.array(text.encode("utf-8"), dtype=object)


registry.register_op("StringFormat", lambda op: [(dtypes.string, TensorShape([]))], _string_format_kernel,
                     registry.OPAQUE, not_differentiable=True)
