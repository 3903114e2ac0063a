"""Nested structures of loop variables (TF's `nest` rules): lists, tuples, namedtuples, dicts, TensorArrays.

Dicts flatten in sorted key order; a TensorArray flattens to its flow tensor and is rebuilt around the
new flow when packed.
"""
from __future__ import annotations

from typing import Any

from jitflow.framework.tensor_shape import TensorShape, as_shape


def is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _is_ta(x: Any) -> bool:
    return hasattr(x, "_as_loop_var") and hasattr(x, "_with_flow")


def flatten(x: Any) -> list[Any]:
    """The leaves of `x` (a TensorArray contributes its flow tensor)."""
    if _is_ta(x):
        return [x._as_loop_var()]
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in flatten(v)]
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in flatten(x[k])]
    return [x]


def pack(structure: Any, flat: list[Any]) -> Any:
    """`structure` with its leaves replaced, in order, by `flat`."""
    it = iter(flat)

    def build(s: Any) -> Any:
        if _is_ta(s):
            return s._with_flow(next(it))
        if is_namedtuple(s):
            return type(s)(*[build(v) for v in s])
        if isinstance(s, (list, tuple)):
            return type(s)(build(v) for v in s)
        if isinstance(s, dict):
            vals = {k: build(s[k]) for k in sorted(s)}
            return type(s)((k, vals[k]) for k in s)
        return next(it)

    return build(structure)


def flatten_invariants(loop_vars: Any, invariants: Any) -> list[TensorShape]:
    """The shape invariant of each flattened loop variable (`invariants` mirrors `loop_vars`)."""
    if _is_ta(loop_vars):
        return [TensorShape([])]
    if isinstance(invariants, TensorShape) or invariants is None or not isinstance(loop_vars, (list, tuple, dict)):
        return [as_shape(invariants)]
    if isinstance(loop_vars, dict):
        return [s for k in sorted(loop_vars) for s in flatten_invariants(loop_vars[k], invariants[k])]
    if not isinstance(invariants, (list, tuple)) or len(invariants) != len(loop_vars):
        raise ValueError(f"The two structures don't have the same nested structure: loop_vars={loop_vars}, "
                         f"shape_invariants={invariants}")
    return [s for v, i in zip(loop_vars, invariants) for s in flatten_invariants(v, i)]
