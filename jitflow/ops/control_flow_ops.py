"""Control ops: no_op, group, tuple. (`cond` lives here too.)"""
from __future__ import annotations

import builtins
from typing import Any

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope

registry.register_op("NoOp", lambda op: [], lambda ctx, op, ins: None, registry.OPAQUE)


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
        res = []
        for t in tensors:
            if t is None:
                res.append(None)
                continue
            with get_default_graph().control_dependencies([gate]):
                res.append(identity(t))
        return res
