"""`tf.while_loop`: one `While` op whose cond and body are traced once into a closed sub-graph.

At run time the While kernel plans the sub-graph once per session (through the same planner and JIT as
`Session.run`, so the body's clusters are compiled) and replays the cond and body plans each iteration.

Gradients follow TF's scheme: when a gradient of the loop is built, the forward loop keeps, per
iteration, the loop values and the body's intermediate values that the gradient needs; the `WhileGrad`
op replays the body's gradient sub-graph over those, last iteration first, summing the gradients of
captured (loop-invariant) tensors.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.compiler.execute import execute
from jitflow.compiler.loop_invariants import begin_loop, hoist_transposes
from jitflow.compiler.plan import Plan, build_plan
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.function import SubgraphContext, tracing
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops import loop_structure as ls
from jitflow.ops import while_native
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.while_hoist import Hoisted, find_hoisted, grad_fetches


class LoopBody:
    """The traced sub-graph of one loop, with its per-session plans."""

    def __init__(self, ctx: SubgraphContext, cond_out: Tensor, outs: list[Tensor], has_max: bool) -> None:
        self.ctx = ctx
        self.cond_out = cond_out
        self.outs = outs
        self.has_max = has_max
        self.saved: list[Tensor] | None = None  # body values the gradient needs (set when it is built)
        self.grad_inputs: list[Tensor] = []  # the gradient sub-graph's inputs for the incoming gradients
        self.grad_outs: list[Tensor | None] = []  # gradient w.r.t. each loop input, then each capture
        self.grad_ops: set[Operation] = set()  # the ops of the gradient sub-graph
        self._plans: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

    @property
    def n(self) -> int:
        return len(self.outs)

    def feeds(self) -> list[Tensor]:
        return self.ctx.inputs + self.ctx.capture_inputs

    def plan(self, sess: Any, kind: str) -> Plan:
        """The cond / body / grad plan of this loop for session `sess` (built on first use)."""
        per = self._plans.get(sess)
        if per is None:
            per = {}
            self._plans[sess] = per
        key = kind + ("+saved" if kind == "body" and self.saved is not None else "")
        plan = per.get(key)
        if plan is None:
            lower = sess._lowering() if hasattr(sess, "_lowering") else None
            if kind == "cond":
                plan = build_plan([*[self.cond_out]], self.feeds(), lower)
            elif kind == "body":
                plan = build_plan([*self.outs, *(self.saved or [])], self.feeds(), _device_fetching(lower))
            else:
                fetch, _ = grad_fetches(self.grad_outs, self.hoisted(lower is not None))
                plan = build_plan(fetch, self.feeds() + (self.saved or []) + self.grad_inputs,  # type: ignore[arg-type]
                                  _device_fetching(lower))
                if lower is not None:
                    caps = self.ctx.captured
                    plan.report["hoisted"] = [h.describe(caps[h.index - self.n]) for h in self.hoisted(True)]
            if lower is not None:
                per[key + "#invariant"] = hoist_transposes(plan, set(self.ctx.capture_inputs))
            per[key] = plan
        return plan

    def begin(self, sess: Any, kind: str) -> Plan:
        """The `plan` of `kind`, ready for a new run of the loop (loop-invariant copies forgotten)."""
        plan = self.plan(sess, kind)
        key = kind + ("+saved" if kind == "body" and self.saved is not None else "")
        begin_loop(self._plans[sess].get(key + "#invariant", []))  # type: ignore[arg-type]
        return plan

    def hoisted(self, compiled: bool) -> list[Hoisted]:
        """The capture gradients a compiled backward loop sums after the loop (`ops/while_hoist.py`)."""
        found = find_hoisted(self.grad_outs, self.n, self.grad_ops) if compiled else []
        # a loop on a GPU sums its capture gradients on the device as it goes (compiler/gpu/loop_state.py)
        return [h for h in found if not _on_gpu(h.op)]


def _on_gpu(op: Operation) -> bool:
    """True when `op` runs on a GPU of this machine."""
    from jitflow.compiler.placement import gpu_count, requested_gpu

    idx = requested_gpu(op)
    return idx is not None and idx < gpu_count()


def _device_fetching(lower: Any) -> Any:
    """`lower` for a body or gradient plan: values computed on a GPU stay there for the next iteration
    (`compiler/gpu/loop_state.py`)."""
    if lower is None:
        return None

    def lower_body(plan: Plan) -> None:
        plan.device_fetches = True
        lower(plan)

    return lower_body


def body_of(op: Operation) -> LoopBody:
    """The LoopBody of a While or WhileGrad op."""
    if op.type == "WhileGrad":  # shares its forward loop's body (input 0 is that loop's history)
        return body_of(op.inputs[0].op)
    body: LoopBody = op.attrs["body"]
    return body


def _while_infer(op: Operation) -> list:
    body_of(op)
    return [(dt, sh) for dt, sh in zip(op.attrs["T"], op.attrs["shapes"])] + [(dtypes.variant, TensorShape([]))]


def _truth(v: Any, op: Operation) -> bool:
    a = np.asarray(v)
    if a.shape != ():
        raise InvalidArgumentError(op.node_def, op, f"The loop condition of '{op.name}' must be a scalar, "
                                                    f"got shape {list(a.shape)}")
    return bool(a)


def _while_kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    body = body_of(op)
    n = body.n
    vals = list(ins[:n])
    max_iter = int(ins[n]) if body.has_max else -1
    caps = list(ins[n + 1:] if body.has_max else ins[n:])
    cond_plan, body_plan = body.begin(ctx, "cond"), body.begin(ctx, "body")
    if body_plan.device_fetches and (body_plan.device_feeds or body_plan.device_used):
        from jitflow.compiler.gpu import loop_state  # the body runs CUDA steps: its state stays there

        return loop_state.run_loop(ctx, body, vals, caps, max_iter, lambda v: _truth(v, op))
    record = body.saved is not None
    native = while_native.run_forward(ctx, body, vals, caps, max_iter, record)
    if native is not None:
        return native
    learn = while_native.wants_example(ctx, body, vals + caps, record)
    example: tuple | None = None
    iters: list[tuple[list, list]] = []
    i = 0
    while i != max_iter:
        if learn is not None and example is None:  # the first iteration's slots show the compiled loop its shapes
            res, cond_infos = while_native.run_keep(cond_plan, ctx, vals + caps)
            if not _truth(res[0], op):
                break
            feeds = vals + caps
            res, body_infos = while_native.run_keep(body_plan, ctx, feeds)
            example = (feeds, cond_infos, body_infos)
        elif _truth(execute(cond_plan, ctx, vals + caps)[0], op):
            res = execute(body_plan, ctx, vals + caps)
        else:
            break
        if record:
            iters.append((vals, res[n:]))
        vals = res[:n]
        i += 1
    if learn is not None and example is not None:  # compiled once the loop is done (Ctrl-C stays with the loop)
        while_native.learn(ctx, body, learn, *example)
    return (*vals, (caps, iters) if record else None)


registry.register_op("While", _while_infer, _while_kernel, registry.STATEFUL)


def _check_cond(c: Any) -> Tensor:
    t = convert_to_tensor(c)
    if t.dtype is not dtypes.bool:
        raise TypeError(f"Input 'input' of 'LoopCond' Op has type {t.dtype.name} that does not match expected "
                        f"type of bool (the value returned by `cond`: {t.name}).")
    if t.shape.ndims not in (None, 0):
        raise ValueError(f"Shape must be rank 0 but is rank {t.shape.ndims} for 'LoopCond' (the value returned "
                         f"by `cond`: {t.name}, shape {t.shape}).")
    return t


def _invariants(loop_vars: Any, flat: list[Tensor], shape_invariants: Any) -> list[TensorShape]:
    if shape_invariants is None:
        return [t.shape for t in flat]
    inv = ls.flatten_invariants(loop_vars, shape_invariants)
    if len(inv) != len(flat):
        raise ValueError(f"shape_invariants has {len(inv)} shapes for {len(flat)} loop variables")
    for t, s in zip(flat, inv):
        if not _less_or_equal(t.shape, s):
            raise ValueError(f"The shape invariant specified for {t.name} is not compatible with the initial shape "
                             f"of the loop variable. It enters the loop with shape {t.shape}, but the specified "
                             f"shape invariant is {s}.")
    return inv


def _less_or_equal(a: TensorShape, b: TensorShape) -> bool:
    """True if `a` is as specific as `b` or more (every known dim of b is the same in a)."""
    bt = b.as_tuple()
    if bt is None:
        return True
    at = a.as_tuple()
    if at is None or len(at) != len(bt):
        return False
    return all(y is None or x == y for x, y in zip(at, bt))


def _check_outputs(flat_in: list[Tensor], outs: list[Tensor], inv: list[TensorShape]) -> None:
    for x, y, s in zip(flat_in, outs, inv):
        if y.dtype is not x.dtype:
            raise TypeError(f"Loop variable {x.name} enters the loop as {x.dtype.name} but the body returns "
                            f"{y.dtype.name} ({y.name}).")
        if not _less_or_equal(y.shape, s):
            raise ValueError(f"Input tensor '{x.name}' enters the loop with shape {s}, but has shape {y.shape} "
                             "after one iteration. To allow the shape to vary across iterations, use the "
                             "`shape_invariants` argument of tf.while_loop to specify a less-specific shape.")


def _call(fn: Any, loop_vars: Any, packed: Any) -> Any:
    """TF calls cond and body with the loop variables as positional arguments (a list or plain tuple)."""
    if isinstance(loop_vars, (list, tuple)) and not ls.is_namedtuple(loop_vars):
        return fn(*packed)
    return fn(packed)


def _trace(g: Any, cond: Any, body: Any, loop_vars: Any, flat: list[Tensor], inv: list[TensorShape],
           name: str) -> LoopBody:
    """Traces cond and body into one sub-graph."""
    ctx = SubgraphContext(g, g._control_flow_context, name)
    with tracing(ctx):
        ins = [ctx.add_input(t.dtype, s, "Identity") for t, s in zip(flat, inv)]
        packed = ls.pack(loop_vars, ins)
        cond_out = ctx.inside(_check_cond(_call(cond, loop_vars, packed)))
        res = _call(body, loop_vars, packed)
        if res is None:
            raise ValueError("body must return the loop variables (it returned None)")
        if not isinstance(res, (list, tuple)) and isinstance(loop_vars, (list, tuple)) and len(loop_vars) == 1:
            res = [res]
        outs = [ctx.inside(convert_to_tensor(t)) for t in ls.flatten(res)]
    if len(outs) != len(flat):
        raise ValueError(f"body returned {len(outs)} values for {len(flat)} loop variables: the structure of "
                         f"its result must be that of loop_vars ({loop_vars})")
    _check_outputs(flat, outs, inv)
    return LoopBody(ctx, cond_out, outs, False)


def while_loop(cond: Any, body: Any, loop_vars: Any, shape_invariants: Any = None, parallel_iterations: int = 10,
               back_prop: bool = True, swap_memory: bool = False, name: str | None = None,
               maximum_iterations: Any = None, return_same_structure: bool = False) -> Any:
    """Repeats `body` while `cond` is true (TF1 `tf.while_loop`); returns the final loop variables."""
    if not callable(cond):
        raise TypeError("cond must be callable.")
    if not callable(body):
        raise TypeError("body must be callable.")
    if parallel_iterations < 1:
        raise TypeError("parallel_iterations must be a positive integer.")
    if loop_vars is None or (isinstance(loop_vars, (list, tuple, dict)) and not ls.flatten(loop_vars)):
        raise ValueError("No loop variables provided")
    flat = [convert_to_tensor(t) for t in ls.flatten(loop_vars)]
    g = flat[0].graph
    with g.as_default(), _name_scope(name, "while") as scope:
        inv = _invariants(loop_vars, flat, shape_invariants)
        lb = _trace(g, cond, body, loop_vars, flat, inv, scope)
        ins = list(flat)
        if maximum_iterations is not None:
            m = convert_to_tensor(maximum_iterations, name="maximum_iterations")
            if m.dtype not in (dtypes.int32, dtypes.int64) or m.shape.ndims not in (None, 0):
                raise ValueError(f"maximum_iterations must be a scalar int32 or int64, got {m}")
            lb.has_max = True
            ins.append(m)
        ins.extend(lb.ctx.captured)
        op = g.create_op("While", ins, {"body": lb, "T": [t.dtype for t in flat], "shapes": inv,
                                        "parallel_iterations": parallel_iterations, "back_prop": bool(back_prop),
                                        "swap_memory": bool(swap_memory)}, name="Exit")
    result = ls.pack(loop_vars, op.outputs[:len(flat)])
    if not return_same_structure and len(flat) == 1 and isinstance(result, (list, tuple)):
        return result[0]
    return result


@registry.register_gradient("While")
def _while_grad(op: Operation, *grads: Tensor) -> list[Any]:
    from jitflow.ops import while_grad

    return while_grad.while_grad(op, list(grads))
