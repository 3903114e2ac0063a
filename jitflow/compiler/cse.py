"""Stage 1b of a run: common subexpressions computed once (what TF's grappler calls deduplication).

Two ops of the same type, device and attributes whose inputs (after this pass) are the same tensors
compute the same values, so the plan keeps the first and its readers read it instead of the second.
Programs repeat work this way without meaning to: the public `dcgan` example applies its
discriminator to the generator's output twice, once in `disc_loss` and again in `gen_loss`, with the
same weights; TensorFlow computes that forward pass once.

The user's graph is not changed. An op whose inputs now come from a kept duplicate is replaced, in
this plan only, by a shadow op: the same name, type, attributes and device, reading the kept tensors
(never added to the graph). Every later stage sees one consistent graph.

Only pure ops take part: no stateful op, no op with a reference input or a variable's value as an
input (a variable read early and one read after an assign differ), no op on TensorArray or resource
handles, no op with control inputs or a fed output, and no graph with control flow (`cond`,
`while_loop`). Ops downstream of a removed duplicate
that are stateful are shadowed too when they update variables by name (assignments, optimizers); any
other stateful op there (queues, prints, iterators) leaves the plan as it was.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor

_PURE_KINDS = (registry.ELEMENTWISE, registry.REDUCTION, registry.OPAQUE, registry.SOURCE)
_CONTROL_FLOW = frozenset({"Switch", "RefSwitch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond"})
# Sources whose value is not their attributes: fed or the session's state.
_NOT_VALUES = frozenset({"Placeholder", "PlaceholderWithDefault", "_SubgraphInput"})
# Stateful ops that name the variables they update (reference inputs): safe to run as a shadow op.
_VARIABLE_UPDATES = ("Apply", "Assign", "ResourceApply")
# Dtypes of objects rather than values (TensorArrays, resources).
_HANDLES = frozenset({"variant", "resource"})
# Constant values up to this size take part (larger ones are compared by identity only).
_MAX_CONST_BYTES = 1 << 16


class _Unkeyed(Exception):
    """An attribute value that is not compared (each such op stays unique)."""


def dedupe(ops: list[Operation], fetches: list[Tensor | Operation],
           fed: set[Tensor]) -> tuple[list[Operation], list[Tensor | Operation], list[tuple[str, str]]]:
    """(ops, fetches, removed): `ops` (pruned, topologically sorted) without duplicates and with shadow ops
    where inputs changed, the fetches mapped alike, and (removed op, kept op) names. Unchanged inputs come
    back as they are when there is nothing to remove or the graph does not qualify."""
    if any(op.type in _CONTROL_FLOW for op in ops):
        return ops, fetches, []
    remap: dict[Tensor, Tensor] = {}
    opmap: dict[Operation, Operation] = {}
    kept: dict[tuple, Operation] = {}
    out: list[Operation] = []
    removed: list[tuple[str, str]] = []
    for op in ops:
        inputs = [remap.get(t, t) for t in op.inputs]
        ctrl = [opmap.get(c, c) for c in op.control_inputs]
        key = _key(op, inputs, fed)
        if key is not None:
            first = kept.setdefault(key, op)
            if first is not op:
                remap.update(zip(op.outputs, first.outputs))
                opmap[op] = first
                removed.append((op.name, first.name))
                continue
        if _changed(inputs, op.inputs) or _changed(ctrl, op.control_inputs):
            if not _may_shadow(op, fed):
                return ops, fetches, []
            shadow = _shadow(op, inputs, ctrl)
            remap.update(zip(op.outputs, shadow.outputs))
            opmap[op] = shadow
            if key is not None:
                kept[key] = shadow
            op = shadow
        out.append(op)
    if not removed:
        return ops, fetches, []
    mapped = [remap.get(f, f) if isinstance(f, Tensor) else opmap.get(f, f) for f in fetches]
    return out, mapped, removed


def _changed(new: list[Any], old: Any) -> bool:
    return any(a is not b for a, b in zip(new, old))


def _key(op: Operation, inputs: list[Tensor], fed: set[Tensor]) -> tuple | None:
    """What identifies the values `op` computes, or None when it must stay on its own."""
    opdef = op.opdef
    if opdef.kind not in _PURE_KINDS or op.type in _NOT_VALUES or opdef.ref_inputs or op.control_inputs:
        return None
    if any(t in fed for t in op.outputs) or any(t.op.type == "VariableV2" for t in inputs):
        return None
    if any(t.dtype.name in _HANDLES for t in (*inputs, *op.outputs)):
        return None  # a TensorArray's or resource's object may change in place: equal inputs, unequal state
    try:
        attrs = _freeze(op.attrs)
    except _Unkeyed:
        return None
    return op.type, op.device, tuple(id(t) for t in inputs), attrs


def _freeze(v: Any) -> Any:
    """A hashable value equal exactly when the attribute values are."""
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return type(v).__name__, v
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, np.ndarray):
        if v.nbytes > _MAX_CONST_BYTES or v.dtype.hasobject:
            raise _Unkeyed
        return "ndarray", v.dtype.str, v.shape, v.tobytes()
    if isinstance(v, np.generic):
        return "generic", v.dtype.str, v.tobytes()
    text = repr(v)
    if " at 0x" in text:  # functions, sub-graphs: only the same object would do
        raise _Unkeyed
    return type(v).__name__, text


def _may_shadow(op: Operation, fed: set[Tensor]) -> bool:
    """True when `op` can run as a shadow op reading other tensors: pure, or a variable update."""
    if any(t in fed for t in op.outputs):
        return False
    if op.opdef.kind in _PURE_KINDS:
        return op.type not in _NOT_VALUES
    return op.type.startswith(_VARIABLE_UPDATES)


def _shadow(op: Operation, inputs: list[Tensor], ctrl: list[Operation]) -> Operation:
    """`op` reading `inputs` and after `ctrl`, outside the graph (same name, attributes and output types)."""
    s = Operation(op.graph, op.type, op.name, inputs, op.attrs, ctrl, op.device, op.opdef, op._traceback)
    s._outputs = tuple(Tensor(s, i, t.dtype, t.shape) for i, t in enumerate(op.outputs))
    s._id = op._id
    return s
