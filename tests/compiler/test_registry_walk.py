"""Walks the op registry: every fusable op has a lowering or a written reason why not, and every formula
lowering (`OpDef.lowering`) compiles into one cluster that agrees with the interpreter."""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow.codegen import lowering as L
from jitflow.framework import registry
from jitflow.ir.formula import Elementwise, Update
from jitflow.ops.op_util import make_op, out
from tests.compiler.helpers import assert_same, counts, run_both

ATTR_VALUES = {"alpha": 0.3}


def _missing(kind: str, has: object) -> list[str]:
    return [t for t in registry.registered_types() if registry.get_opdef(t).kind == kind
            and not has(t) and not registry.get_opdef(t).no_lowering]  # type: ignore[operator]


def test_every_elementwise_op_has_a_lowering_or_a_reason() -> None:
    assert _missing(registry.ELEMENTWISE, L.has_elementwise) == []


def test_every_reduction_has_a_lowering_or_a_reason() -> None:
    assert _missing(registry.REDUCTION, lambda t: t in L.REDUCTIONS) == []


def test_every_update_formula_has_an_update_rule() -> None:
    updates = [t for t in registry.registered_types() if isinstance(registry.lowering_of(t), Update)]
    assert "ApplyAdam" in updates
    assert all(L.update_rule(t) is not None for t in updates)


FORMULA_OPS = sorted(t for t in registry.registered_types()
                     if isinstance(registry.lowering_of(t), Elementwise))


def _values(dt: np.dtype, k: int) -> np.ndarray:
    if dt.kind == "f":
        v = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.75, 7.0, -80.0, 80.0, np.inf, -np.inf, np.nan, 1e-30, 6.0]
        return np.roll(np.array(v, dt), 3 * k).reshape(3, 5)
    v = [1, -1, 2, -7, 7, 5, 6, 100, -100, 3, -3, 9, 4, -5, 11]
    return np.roll(np.array(v, dt), 3 * k).reshape(3, 5)


def formula_cases(op_type: str) -> list[tuple[str, Any, dict]]:
    """(dtype, output, feed) of `op_type` for each dtype its formula lowers for (of float32/64, int32)."""
    f = registry.lowering_of(op_type)
    arity = len(inspect.signature(f.formula).parameters) - len(f.attrs)
    cases = []
    for dt in (d for d in ("float32", "float64", "int32") if d in f.dtypes):
        phs = [tf.placeholder(tf.as_dtype(dt), [3, 5]) for _ in range(arity)]
        attrs = {"T": tf.as_dtype(dt), **{a: ATTR_VALUES[a] for a in f.attrs}}
        y = out(make_op(op_type, phs, attrs, name=op_type))
        cases.append((dt, y, {p: _values(np.dtype(dt), k) for k, p in enumerate(phs)}))
    assert cases, f"{op_type} lowers for no tested dtype"
    return cases


@pytest.mark.parametrize("op_type", FORMULA_OPS)
def test_formula_lowering_agrees_with_the_interpreter(op_type: str) -> None:
    for dt, y, feed in formula_cases(op_type):
        got, want, plan = run_both(y, feed)
        assert counts(plan) == (1, 0), plan.report
        assert_same(got, want, what=f"{op_type} on {dt}")
