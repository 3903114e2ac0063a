"""Control ops: no_op, group, tuple. (`cond` lives here too.)"""
from __future__ import annotations

import builtins
import weakref
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.dead_value import DEAD
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops.constant_op import convert_to_tensor

registry.register_op("NoOp", lambda op: [], lambda ctx, op, ins: None, registry.OPAQUE, structural=True)


def no_op(name: str | None = None) -> Operation:
    """An op that does nothing (a target for control dependencies)."""
    return get_default_graph().create_op("NoOp", [], {}, name=name or "NoOp")


def _as_op(x: Any) -> Operation:
    if isinstance(x, Operation):
        return x
    if isinstance(x, Tensor):
        return x.op
    el = getattr(x, "op", None)
    if isinstance(el, Operation):
        return el
    raise TypeError(f"Expected a Tensor or Operation, got {x!r}")


def group(*inputs: Any, name: str | None = None) -> Operation:
    """An op that runs after all `inputs` (ops or tensors), producing nothing."""
    flat: list[Any] = []
    for x in inputs:
        if isinstance(x, (list, builtins.tuple)):
            flat.extend(x)
        elif isinstance(x, dict):
            flat.extend(x.values())
        else:
            flat.append(x)
    ops = [_as_op(x) for x in flat if x is not None]
    g = ops[0].graph if ops else get_default_graph()
    with g.as_default():
        return g.create_op("NoOp", [], {}, name=name or "group_deps", control_inputs=ops)


def tuple(tensors: list[Any], name: str | None = None, control_inputs: Any = None) -> list[Any]:  # noqa: A001
    """Identity of each tensor, each available only after all of them are computed."""
    from jitflow.ops.array_ops import identity

    with _name_scope(name, "tuple"):
        gate = group(*[t for t in tensors if t is not None], *(control_inputs or []))
        res: list[Tensor | None] = []
        for t in tensors:
            if t is None:
                res.append(None)
                continue
            with get_default_graph().control_dependencies([gate]):
                res.append(identity(t))
        return res


# -- cond: Switch and Merge ---------------------------------------------------------------------------------
#
# TF1 semantics: both branches are built; at run time Switch forwards its input to the output of the taken
# side and marks the other side DEAD; ops with a dead input (or control input) are dead themselves, and
# Merge forwards whichever input is alive. The plan executor implements the dead-value propagation.


def _switch_infer(op: Operation) -> list:
    data, pred = op.inputs
    if pred.shape.ndims not in (None, 0):
        raise ValueError(f"Shape must be rank 0 but is rank {pred.shape.ndims} for '{op.name}' (op: 'Switch') "
                         f"with input shapes: {data.shape}, {pred.shape}.")
    if pred.dtype is not dtypes.bool:
        raise TypeError(f"Input 'pred' of 'Switch' Op has type {pred.dtype.name} that does not match expected "
                        "type of bool.")
    return [(data.dtype, data.shape), (data.dtype, data.shape)]


def _switch_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    data, pred = ins
    p = np.asarray(pred)
    if p.shape != ():
        raise InvalidArgumentError(None, None, f"The second input must be a scalar, but it has shape "
                                               f"{list(p.shape)}")
    return (DEAD, data) if bool(p) else (data, DEAD)


def _merge_infer(op: Operation) -> list:
    first = op.inputs[0]
    shape = first.shape
    for t in op.inputs[1:]:
        if t.dtype is not first.dtype:
            raise TypeError(f"Inputs to Merge must have one dtype, got {first.dtype.name} and {t.dtype.name}")
        a, b = shape.as_tuple(), t.shape.as_tuple()
        if a is None or b is None or len(a) != len(b):
            shape = TensorShape(None)
        else:
            shape = TensorShape([x if x == y else None for x, y in zip(a, b)])
    return [(first.dtype, shape), (dtypes.int32, TensorShape([]))]


def _merge_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    for k, v in enumerate(ins):
        if v is not DEAD:
            return v, np.int32(k)
    return DEAD, DEAD


registry.register_op("Switch", _switch_infer, _switch_kernel, registry.OPAQUE)
registry.register_op("Merge", _merge_infer, _merge_kernel, registry.OPAQUE)

# The predicate of each Merge built by cond, for its gradient (a Switch of the incoming gradient).
_merge_preds: weakref.WeakKeyDictionary[Operation, Tensor] = weakref.WeakKeyDictionary()


def switch(data: Any, pred: Any, name: str | None = None) -> builtins.tuple[Tensor, Tensor]:
    """(output_false, output_true): `data` goes to the side chosen by the scalar bool `pred`."""
    d = convert_to_tensor(data)
    p = convert_to_tensor(pred)
    op = d.graph.create_op("Switch", [d, p], {"T": d.dtype}, name=name or "Switch")
    return op.outputs[0], op.outputs[1]


def merge(inputs: list[Any], name: str | None = None) -> builtins.tuple[Tensor, Tensor]:
    """(output, value_index): the value of whichever input is alive."""
    ts = [convert_to_tensor(t) for t in inputs]
    op = ts[0].graph.create_op("Merge", ts, {"T": ts[0].dtype, "N": len(ts)}, name=name or "Merge")
    return op.outputs[0], op.outputs[1]


class CondContext:
    """The branch of a `cond` under construction: routes outside tensors in through Switch ops."""

    def __init__(self, pred: Tensor, pivot: Tensor, branch: int, outer: CondContext | None) -> None:
        self.pred = pred
        self.pivot = pivot
        self.branch = branch
        self.outer = outer
        self._ops: set[Operation] = {pivot.op}
        self._entries: dict[Tensor, Tensor] = {}

    def contains(self, op: Operation) -> bool:
        return op in self._ops

    def enter_op(self, op_type: str, inputs: list[Tensor]) -> builtins.tuple[list[Tensor], list[Operation]]:
        """Called by Graph.create_op for each op built in this branch: its rewired inputs and extra controls."""
        refs = registry.get_opdef(op_type).ref_inputs
        new: list[Tensor] = []
        need_pivot = not inputs
        for i, t in enumerate(inputs):
            if self.contains(t.op):
                new.append(t)
            elif i in refs or t.op.type == "VariableV2":
                # Variable handles are not values: keep them, and gate the op on the branch instead.
                new.append(t)
                need_pivot = True
            else:
                new.append(self.enter(t))
        return new, [self.pivot.op] if need_pivot else []

    def created(self, op: Operation) -> None:
        ctx: CondContext | None = self
        while ctx is not None:
            ctx._ops.add(op)
            ctx = ctx.outer

    def enter(self, t: Tensor) -> Tensor:
        """`t` as seen inside this branch: the taken-side output of a Switch on the predicate (cached)."""
        if self.contains(t.op):
            return t
        res = self._entries.get(t)
        if res is None:
            g = t.graph
            saved = g._control_flow_context
            g._control_flow_context = self.outer  # the Switch itself lives outside this branch
            try:
                with g.control_dependencies(None):
                    op = g.create_op("Switch", [t, self.pred], {"T": t.dtype}, name="Switch")
            finally:
                g._control_flow_context = saved
            self._ops.add(op)
            res = op.outputs[self.branch]
            self._entries[t] = res
        return res


def _flatten(x: Any) -> list[Any]:
    if isinstance(x, (list, builtins.tuple)):
        return [leaf for v in x for leaf in _flatten(v)]
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in _flatten(x[k])]
    return [x]


def _pack_like(structure: Any, flat: list[Any]) -> Any:
    it = iter(flat)

    def build(s: Any) -> Any:
        if isinstance(s, list):
            return [build(v) for v in s]
        if isinstance(s, builtins.tuple):
            vals = [build(v) for v in s]
            return type(s)(*vals) if hasattr(s, "_fields") else builtins.tuple(vals)
        if isinstance(s, dict):
            return {k: build(s[k]) for k in sorted(s)} if type(s) is dict else type(s)(
                (k, build(s[k])) for k in sorted(s))
        return next(it)

    return build(structure)


def _same_structure(a: Any, b: Any) -> bool:
    if isinstance(a, (list, builtins.tuple)) or isinstance(b, (list, builtins.tuple)):
        return isinstance(a, (list, builtins.tuple)) and isinstance(b, (list, builtins.tuple)) and \
            len(a) == len(b) and all(_same_structure(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and sorted(a) == sorted(b) and \
            all(_same_structure(a[k], b[k]) for k in a)
    return True


def _build_branch(g: Any, ctx: CondContext, fn: Any, which: str) -> builtins.tuple[Any, list[Tensor], list[bool]]:
    """Calls `fn` inside `ctx`; returns its structure, the branch's output tensors, and which were ops."""
    saved = g._control_flow_context
    g._control_flow_context = ctx
    try:
        res = fn()
        if res is None:
            raise ValueError(f"{which} must have a return value.")
        leaves = _flatten(res)
        tensors: list[Tensor] = []
        was_op: list[bool] = []
        for leaf in leaves:
            if isinstance(leaf, Operation):
                from jitflow.ops.array_ops import identity

                with g.control_dependencies([leaf]):
                    tensors.append(identity(ctx.pivot))
                was_op.append(True)
            else:
                tensors.append(ctx.enter(convert_to_tensor(leaf)))
                was_op.append(False)
        return res, tensors, was_op
    finally:
        g._control_flow_context = saved


def cond(pred: Any, true_fn: Any = None, false_fn: Any = None, strict: bool = False, name: str | None = None,
         fn1: Any = None, fn2: Any = None) -> Any:
    """Returns `true_fn()` if `pred` else `false_fn()`; both are built, only the taken one runs."""
    if fn1 is not None:
        true_fn = fn1 if true_fn is None else true_fn
    if fn2 is not None:
        false_fn = fn2 if false_fn is None else false_fn
    if not callable(true_fn):
        raise TypeError("true_fn must be callable.")
    if not callable(false_fn):
        raise TypeError("false_fn must be callable.")
    if isinstance(pred, (bool, np.bool_)):
        raise TypeError("pred must not be a Python bool")
    from jitflow.ops.array_ops import identity

    p = convert_to_tensor(pred)
    if p.dtype is not dtypes.bool:
        raise TypeError(f"pred must be a bool tensor, got {p.dtype.name}")
    if p.shape.ndims not in (None, 0):
        raise ValueError(f"Shape must be rank 0 but is rank {p.shape.ndims} for 'cond' (pred shape {p.shape})")
    g = p.graph
    with g.as_default(), _name_scope(name, "cond"):
        p_f, p_t = switch(p, p)
        pivot_t = identity(p_t, name="switch_t")
        pivot_f = identity(p_f, name="switch_f")
        pred_id = identity(p, name="pred_id")
        outer = g._control_flow_context
        res_t, out_t, ops_t = _build_branch(g, CondContext(pred_id, pivot_t, 1, outer), true_fn, "true_fn")
        res_f, out_f, _ = _build_branch(g, CondContext(pred_id, pivot_f, 0, outer), false_fn, "false_fn")
        if not _same_structure(res_t, res_f) or len(out_t) != len(out_f):
            raise ValueError(f"Outputs of true_fn and false_fn must have the same structure: {res_t} vs {res_f}")
        merged: list[Any] = []
        for t, f, is_op in zip(out_t, out_f, ops_t):
            if t.dtype is not f.dtype:
                raise ValueError(f"Outputs of true_fn and false_fn must have the same type: {t.dtype.name}, "
                                 f"{f.dtype.name}")
            m, _ = merge([f, t])
            _merge_preds[m.op] = pred_id
            merged.append(m.op if is_op else m)
        result = _pack_like(res_t, merged)
        if not strict and isinstance(result, (list, builtins.tuple)) and len(result) == 1 and \
                not hasattr(result, "_fields"):
            return result[0]
        return result


@registry.register_gradient("Merge")
def _merge_grad(op: Operation, g: Tensor, g_index: Tensor) -> list[Any]:
    pred = _merge_preds.get(op)
    if pred is None:
        raise LookupError(f"No gradient for Merge '{op.name}': it was not built by tf.cond in this process")
    return list(switch(g, pred))


@registry.register_gradient("Switch")
def _switch_grad(op: Operation, g_false: Tensor, g_true: Tensor) -> list[Any]:
    # The untaken side's gradient is dead at run time, so Merge picks the live one.
    return [merge([g_false, g_true])[0], None]
