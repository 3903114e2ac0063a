"""Reverse-mode differentiation over the graph: `tf.gradients`.

Gradients are graph ops, built from each op type's registered gradient function
`grad(op, *output_grads) -> [input_grad or None, ...]`, so the compiler can fuse them like any other op.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import make_op, out


def _unbroadcast_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g, shape = ins
    target = tuple(int(d) for d in shape)
    if g.shape == target:
        return g
    extra = g.ndim - len(target)
    axes = tuple(range(extra)) + tuple(i + extra for i, d in enumerate(target)
                                       if d == 1 and g.shape[i + extra] != 1)
    r = np.sum(g, axis=axes, keepdims=True, dtype=g.dtype) if axes else g
    return r.reshape(target)


registry.register_op("UnbroadcastTo", lambda op: [(op.inputs[0].dtype, op.attrs["shape"])],
                     _unbroadcast_kernel, registry.REDUCTION)


def unbroadcast(grad: Tensor, x: Tensor) -> Tensor:
    """Sums `grad` over the axes along which `x` was broadcast, giving a tensor of `x`'s shape."""
    if grad.shape.is_fully_defined() and grad.shape == x.shape:
        return grad
    from jitflow.ops.array_ops import shape

    return out(make_op("UnbroadcastTo", [grad, shape(x)], {"shape": x.shape, "T": grad.dtype},
                       name="UnbroadcastTo"))


def _is_differentiable_dtype(dt: dtypes.DType) -> bool:
    return dt.is_floating or dt.is_complex or dt is dtypes.variant  # variant: TensorArray flows


def _as_xs(xs: Any) -> list[Tensor]:
    res = []
    for x in xs:
        ref = getattr(x, "_variable", None)
        res.append(ref if ref is not None else convert_to_tensor(x))
    return res


def _between(ys: list[Tensor], xs: list[Tensor], stops: set[Tensor]) -> set[Operation]:
    """Ops on some path from an x to a y."""
    back: set[Operation] = set()
    stack = [y.op for y in ys]
    while stack:
        op = stack.pop()
        if op in back:
            continue
        back.add(op)
        for t in op.inputs:
            if t not in stops:
                stack.append(t.op)
    fwd: set[Operation] = set()
    stack = [x.op for x in xs]
    g = xs[0].graph if xs else get_default_graph()
    while stack:
        op = stack.pop()
        if op in fwd or op not in back:
            continue
        fwd.add(op)
        for c in g._consumers.get(op, ()):
            stack.append(c)
    return fwd


def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients",
              colocate_gradients_with_ops: bool = False, gate_gradients: bool = False,
              aggregation_method: Any = None, stop_gradients: Any = None,
              unconnected_gradients: str = "none") -> list[Tensor | None]:
    """Symbolic derivatives of sum(ys) with respect to each x in xs (None where x does not affect ys)."""
    ys_l = [convert_to_tensor(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]
    xs_l = _as_xs(xs if isinstance(xs, (list, tuple)) else [xs])
    if grad_ys is not None and not isinstance(grad_ys, (list, tuple)):
        grad_ys = [grad_ys]
    stops = set(_as_xs(stop_gradients if isinstance(stop_gradients, (list, tuple)) else
                       [stop_gradients])) if stop_gradients is not None else set()
    g = ys_l[0].graph
    with g.as_default(), _name_scope(name, "gradients"):
        between = _between(ys_l, xs_l, stops)
        grads: dict[Tensor, list[Tensor]] = {}
        for i, y in enumerate(ys_l):
            gy = grad_ys[i] if grad_ys is not None and grad_ys[i] is not None else None
            if gy is None:
                from jitflow.ops.array_ops import ones_like

                gy = ones_like(y, name=f"grad_ys_{i}")
            else:
                gy = convert_to_tensor(gy, dtype=y.dtype)
            grads.setdefault(y, []).append(gy)
        # Reverse topological order over the ops between xs and ys.
        order = _topo(between)
        for op in reversed(order):
            out_grads: list[Tensor | None] = [_aggregate(grads.get(t)) for t in op.outputs]
            for t, gsum in zip(op.outputs, out_grads):
                if gsum is not None:
                    grads[t] = [gsum]
            if all(gr is None for gr in out_grads) or op.type in ("VariableV2",):
                continue
            if not any(t in stops for t in op.outputs) and op.inputs:
                in_grads = _op_grads(op, out_grads)
                for t, gr in zip(op.inputs, in_grads):
                    if gr is None or t in stops or not _is_differentiable_dtype(t.dtype):
                        continue
                    if t.op not in between:
                        continue
                    grads.setdefault(t, []).append(gr)
        result: list[Tensor | None] = []
        for x in xs_l:
            gx = _aggregate(grads.get(x))
            if gx is None and unconnected_gradients == "zero":
                from jitflow.ops.array_ops import zeros_like

                gx = zeros_like(x)
            result.append(gx)
        return result


def _aggregate(gs: list[Tensor] | None) -> Tensor | None:
    if not gs:
        return None
    if len(gs) == 1:
        return gs[0]
    if gs[0].dtype is dtypes.variant:  # TensorArray gradients add element by element
        from jitflow.ops.tensor_array import add_grads

        return add_grads(gs)
    from jitflow.ops.math_ops import add_n

    return add_n(gs)


def _op_grads(op: Operation, out_grads: list[Tensor | None]) -> Sequence[Tensor | None]:
    opdef = op.opdef
    if opdef.not_differentiable:
        return [None] * len(op.inputs)
    if opdef.grad is None:
        raise LookupError(f"No gradient defined for operation '{op.name}' (op type: {op.type})")
    filled: list[Tensor] = []
    for t, gr in zip(op.outputs, out_grads):
        if gr is None:
            from jitflow.ops.array_ops import zeros_like

            gr = zeros_like(t)
        filled.append(gr)
    with _name_scope(op.name + "_grad"):
        res = opdef.grad(op, *filled)
    if isinstance(res, Tensor) or res is None:
        res = [res]
    res = list(res)
    if len(res) != len(op.inputs):
        raise ValueError(f"Gradient of {op.type} returned {len(res)} values for {len(op.inputs)} inputs")
    return res


def _topo(ops: set[Operation]) -> list[Operation]:
    return sorted(ops, key=lambda o: o._id)
