"""The gradient of a `While` loop: the body's gradient sub-graph, replayed over the kept forward values."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.compiler.execute import execute
from jitflow.errors import InternalError
from jitflow.framework import registry
from jitflow.framework.function import SubgraphContext, outside_control_flow
from jitflow.framework.graph import Operation, Tensor
from jitflow.ops import while_native, while_native_grad
from jitflow.ops.while_hoist import Stash, grad_fetches
from jitflow.ops.while_loop import LoopBody, body_of


def differentiable(dt: dtypes.DType) -> bool:
    return dt.is_floating or dt.is_complex or dt is dtypes.variant


def _build_grad_body(lb: LoopBody) -> None:
    """Traces d(body outputs)/d(body inputs, captures) once; records which body values it reads."""
    from jitflow.gradients import gradients

    ctx = lb.ctx
    g = ctx.graph
    gctx = SubgraphContext(g, None, ctx.name + "grad")
    lb.grad_inputs = [gctx.add_input(t.dtype, t.shape, "grad_y") for t in lb.outs]
    xs = ctx.inputs + ctx.capture_inputs
    pairs = [(y, gy) for y, gy in zip(lb.outs, lb.grad_inputs) if differentiable(y.dtype)]
    start = len(g._ops)
    with outside_control_flow(g), g.control_dependencies(None):
        dx = gradients([y for y, _ in pairs], xs, grad_ys=[gy for _, gy in pairs]) if pairs else [None] * len(xs)
    lb.grad_outs = [d if d is not None and differentiable(x.dtype) else None for x, d in zip(xs, dx)]
    saved: dict[Tensor, None] = {}
    lb.grad_ops = set(g._ops[start:])
    for op in g._ops[start:]:
        for t in op.inputs:
            if ctx.contains(t.op) and t.op.type != "_SubgraphInput":
                saved[t] = None
    lb.saved = list(saved)


def while_grad(op: Operation, grads: list[Tensor]) -> list[Any]:
    """Gradients of a While op's inputs (loop variables, maximum_iterations, captures)."""
    lb = body_of(op)
    n = lb.n
    n_in = len(op.inputs)
    if not op.attrs["back_prop"]:
        return [None] * n_in
    if lb.saved is None:
        _build_grad_body(lb)
    caps = lb.ctx.captured
    gop = op.graph.create_op("WhileGrad", [op.outputs[n]] + list(grads[:n]),
                             {"body": lb, "forward": op.name}, name="WhileGrad")
    res: list[Any] = [t if differentiable(t.dtype) else None for t in gop.outputs[:n]]
    if lb.has_max:
        res.append(None)
    res.extend(t if differentiable(t.dtype) else None for t in gop.outputs[n:n + len(caps)])
    return res


def _grad_infer(op: Operation) -> list:
    lb = body_of(op)
    xs = lb.ctx.inputs + lb.ctx.captured
    return [(t.dtype, t.shape) for t in xs]


def _zero_like(v: Any) -> Any:
    if isinstance(v, np.ndarray) or np.isscalar(v):
        return np.zeros_like(v)
    if hasattr(v, "copy_to_host"):  # a device array kept by a loop on a GPU
        return np.zeros(v.shape, v.dtype)
    zero = getattr(v, "zero_grad", None)
    return zero() if zero is not None else None


def _add(a: Any, b: Any, owned: bool) -> Any:
    """a + b; adds into `a` when `owned` (a buffer this loop allocated), else allocates."""
    if a is None:
        return b
    if b is None:
        return a
    if hasattr(a, "copy_to_host") or hasattr(b, "copy_to_host"):  # gradients of a loop on a GPU: summed there
        from jitflow.compiler.gpu import loop_state

        return loop_state.add(a, b, owned)
    if owned and type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype:
        np.add(a, b, out=a)
        return a
    return a + b


def _feed(plan: Any, values: list[Any]) -> list[Any]:
    """Forward values kept on a GPU go in as device arrays where the plan takes them, else as host copies."""
    if not any(hasattr(v, "copy_to_host") for v in values):
        return values
    from jitflow.compiler.gpu import loop_state

    return loop_state.feed(plan, values)


def _grad_kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    lb = body_of(op)
    n = lb.n
    history = ins[0]
    if history is None:
        raise InternalError(op.node_def, op, f"The forward loop '{op.attrs['forward']}' kept no values for its "
                                             "gradient")
    caps, iters = history
    gys: list[Any] = list(ins[1:])
    plan = lb.begin(ctx, "grad")
    hoisted = lb.hoisted(_compiled(ctx))
    _, idx = grad_fetches(lb.grad_outs, hoisted)
    stash = Stash(hoisted)
    if plan.device_fetches and plan.device_used:  # the incoming gradients go up once, not per iteration
        from jitflow.compiler.gpu import loop_state

        gys = loop_state.upload([plan], gys, n + len(caps) + len(lb.saved or []), {})
    acc: list[Any] = [None] * len(caps)
    mine = [False] * len(caps)
    learn = None
    example: tuple | None = None
    if iters and not (plan.device_fetches and plan.device_used):
        first = iters[len(iters) - 1]
        feed_g = [g if g is not None else _zero_like(v) for g, v in zip(gys, first[0])]
        native = while_native_grad.run_grad(ctx, lb, caps, iters, feed_g, hoisted)
        if native is not None:
            return tuple(native)
        key = while_native_grad.grad_key(caps, feed_g, first, len(hoisted))
        learn = key if while_native_grad.wants_example(ctx, lb, key) else None
    for vals, saved in reversed(iters):
        feed_g = [g if g is not None else _zero_like(v) for g, v in zip(gys, vals)]
        if learn is not None and example is None:  # the first iteration's slots show the compiled loop its shapes
            res, infos = while_native.run_keep(plan, ctx, vals + caps + saved + feed_g)
            example = (caps, feed_g, (vals, saved), infos, hoisted)
        else:
            res = execute(plan, ctx, _feed(plan, vals + caps + saved + feed_g))
        full: list[Any] = [None] * (n + len(caps))
        for k, r in zip(idx, res):
            full[k] = r
        if hoisted:
            stash.add(res[len(idx):])
        gys = full[:n]
        for k, r in enumerate(full[n:]):
            # the first sum allocates (a fetched value may be a variable's own array); later ones add in place
            acc[k] = _add(acc[k], r, mine[k])
            mine[k] = acc[k] is not None and acc[k] is not r

    if learn is not None and example is not None:  # compiled once the loop is done
        while_native_grad.learn(ctx, lb, learn, *example)
    for k, total in stash.finish().items():
        acc[k - n] = total
    last = iters[0][0] if iters else None
    out_g = [g if g is not None else (_zero_like(last[k]) if last is not None else None) for k, g in enumerate(gys)]
    out_c = [a if a is not None else _zero_like(c) for a, c in zip(acc, caps)]
    return tuple(_host([*out_g, *out_c]))


def _host(values: list[Any]) -> list[Any]:
    """The gradients as host values (a loop on a GPU leaves them on the device)."""
    if not any(hasattr(v, "copy_to_host") for v in values):
        return values
    from jitflow.compiler.gpu import loop_state

    return loop_state.to_host_all(values)


def _compiled(ctx: Any) -> bool:
    """Whether `ctx` (the session) plans sub-graphs with the JIT (the interpreter sums per iteration)."""
    return hasattr(ctx, "_lowering") and ctx._lowering() is not None


registry.register_op("WhileGrad", _grad_infer, _grad_kernel, registry.STATEFUL)
registry.not_differentiable("WhileGrad")
