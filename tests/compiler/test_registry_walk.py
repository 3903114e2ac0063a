"""Walks the op registry: every fusable op has a lowering or a written reason why not, and every formula
lowering (`OpDef.lowering`) compiles into one cluster that agrees with the interpreter."""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow.codegen import lowering as L
from jitflow.compiler.steps import ClusterStep
from jitflow.framework import registry
from jitflow.ir.formula import Elementwise, Update
from jitflow.ops.op_util import make_op, out
from tests.compiler.helpers import assert_same, counts, run_both

ATTR_VALUES: dict[str, Any] = {"alpha": 0.3, "DstT": tf.int32}


def _missing(kind: str, has: object) -> list[str]:
    return [t for t in registry.registered_types() if registry.get_opdef(t).kind == kind
            and not has(t) and not registry.get_opdef(t).no_lowering]  # type: ignore[operator]


def test_every_elementwise_op_has_a_lowering_or_a_reason() -> None:
    assert _missing(registry.ELEMENTWISE, L.has_elementwise) == []


def test_every_reduction_has_a_lowering_or_a_reason() -> None:
    assert _missing(registry.REDUCTION, lambda t: L.reduction_rule(t) is not None) == []


def test_every_update_formula_has_an_update_rule() -> None:
    updates = [t for t in registry.registered_types() if isinstance(registry.lowering_of(t), Update)]
    assert "ApplyAdam" in updates
    assert all(L.update_rule(t) is not None for t in updates)


FORMULA_OPS = sorted(t for t in registry.registered_types()
                     if isinstance(registry.lowering_of(t), Elementwise) and not registry.get_opdef(t).structural)


def _values(dt: np.dtype, k: int, op_type: str) -> np.ndarray:
    """15 values of `dt` for input k: special floats; nonzero integers (non-negative exponents of Pow)."""
    if dt.kind == "f":
        v: list[Any] = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.75, 7.0, -80.0, 80.0, np.inf, -np.inf, np.nan, 1e-30, 6.0]
    elif dt.kind == "b":
        v = [True, False, True, True, False] * 3
    else:
        v = [1, -1, 2, -7, 7, 5, 6, 100, -100, 3, -3, 9, 4, -5, 11]
        v = [abs(x) % 5 for x in v] if op_type == "Pow" and k == 1 else v
    return np.roll(np.array(v, dt), 3 * k)


# Ops whose inputs are not n tensors of one dtype and shape [3, 5]: per op, (dtypes, shapes) given the
# dtype under test, and extra attrs.
INPUTS: dict[str, Any] = {
    "BiasAdd": lambda dt: ([dt, dt], [(3, 5), (5,)]),
    "Select": lambda dt: (["bool", "float32", "float32"], [(3, 5)] * 3),
    "SelectV2": lambda dt: (["bool", "float32", "float32"], [(3, 5), (5,), (3, 5)]),
    "AddN": lambda dt: ([dt] * 3, [(3, 5)] * 3),
}
ATTRS: dict[str, dict[str, Any]] = {"Cast": {"SrcT": tf.float32}, "AddN": {"N": 3}}


def formula_cases(op_type: str) -> list[tuple[str, Any, dict]]:
    """(dtype, output, feed) of `op_type` for each dtype its formula lowers for (of float32/64, int32, bool)."""
    f = registry.lowering_of(op_type)
    arity = len(inspect.signature(f.formula).parameters) - len(f.attrs)
    cases = []
    for dt in (d for d in ("float32", "float64", "int32", "bool") if d in f.dtypes):
        in_dts, shapes = INPUTS.get(op_type, lambda d: ([d] * arity, [(3, 5)] * arity))(dt)
        phs = [tf.placeholder(tf.as_dtype(d), s) for d, s in zip(in_dts, shapes)]
        attrs = {"T": phs[-1].dtype, **{a: ATTR_VALUES[a] for a in f.attrs}, **ATTRS.get(op_type, {})}
        y = out(make_op(op_type, phs, attrs, name=op_type))
        feed = {p: _values(np.dtype(d), k, op_type)[:int(np.prod(s))].reshape(s)
                for k, (p, d, s) in enumerate(zip(phs, in_dts, shapes))}
        cases.append((dt, y, feed))
    assert cases, f"{op_type} lowers for no tested dtype"
    return cases


@pytest.mark.parametrize("op_type", FORMULA_OPS)
def test_formula_lowering_agrees_with_the_interpreter(op_type: str) -> None:
    for dt, y, feed in formula_cases(op_type):
        got, want, plan = run_both(y, feed)
        assert counts(plan) == (1, 0), plan.report
        step = next(st for st in plan.steps if isinstance(st, ClusterStep))
        assert [e.kernel is not None for e in step.entries.values()] == [True], "the kernel ran, no fallback"
        assert_same(got, want, what=f"{op_type} on {dt}")


@pytest.mark.parametrize("fn", [tf.reciprocal, lambda x: tf.truncatediv(x, x), lambda x: tf.floordiv(x, x),
                                lambda x: tf.floormod(x, x)])
def test_integer_division_by_zero_is_the_interpreters_error(fn: Any) -> None:
    x = tf.placeholder(tf.int32, [3])
    y = fn(x)
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match="division by zero"):
                sess.run(y, {x: np.array([1, 0, 2], np.int32)})


LIBRARY_STEP = {"MatMul": "matmul", "Softmax": "softmax", "LogSoftmax": "softmax",
                "SparseSoftmaxCrossEntropyWithLogits": "sparse_xent", "UnsortedSegmentSum": "segment_sum"}
# Structural ops with a formula: a slot copy alone, a kernel node when fused into their producer's cluster.
PASS_THROUGH = {"Identity", "StopGradient"}


def test_library_and_structural_ops_are_declared_on_their_opdefs() -> None:
    """The compiler's op-type lists are OpDef properties: `library` ops have a library step of their own,
    and `structural` ops are neither fused nor lowered (they only feed, name or reshape values)."""
    opdefs = [registry.get_opdef(t) for t in registry.registered_types()]
    library = {d.type: d.library for d in opdefs if d.library}
    assert set(library.values()) <= {"blas", "rows", "segments"}
    assert set(library) == set(LIBRARY_STEP)
    structural = [d for d in opdefs if d.structural]
    assert {"Const", "Placeholder", "Identity", "Reshape", "Shape", "VariableV2", "NoOp"} \
        <= {d.type for d in structural}
    for d in structural:
        assert (d.lowering is None) != (d.type in PASS_THROUGH), d.type
        assert not d.library and d.kind not in (registry.ELEMENTWISE, registry.REDUCTION), d.type


def test_library_ops_run_as_their_library_steps_and_structural_ops_are_not_fallbacks() -> None:
    rng = np.random.default_rng(3)
    x = tf.placeholder(tf.float32, [None, 20], name="x")
    labels = tf.placeholder(tf.int32, [None], name="labels")
    w = tf.constant(rng.standard_normal((20, 10)).astype(np.float32))
    logits = tf.reshape(tf.identity(tf.matmul(x, w)), [-1, 10])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    summed = tf.unsorted_segment_sum(logits, labels, 10) * 2.0
    outs = [loss, tf.nn.softmax(logits), tf.nn.log_softmax(logits), tf.shape(logits), summed]
    feed = {x: rng.standard_normal((16, 20)).astype(np.float32), labels: rng.integers(0, 10, 16).astype(np.int32)}
    got, want, plan = run_both(outs, feed)
    for g, w_ in zip(got, want):
        assert_same(g, w_, rtol=1e-5)
    kinds = {st.ops[0].type: st.kind for st in plan.steps if len(st.ops) == 1}
    for t, kind in LIBRARY_STEP.items():
        assert kinds[t] == kind, (t, kinds)
    assert not [f for f in plan.report["fallbacks"] if registry.get_opdef(f["type"]).structural]
