"""Every op with a lowering, compiled, against the interpreter on the same graph."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import jitflow as tf
from tests.compiler.helpers import assert_same, counts, last_plan, run_both

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.75, 1e-30, -1e30, 80.0, -80.0, np.inf, -np.inf, np.nan]

UNARY_FLOAT = [tf.negative, tf.abs, tf.sign, tf.square, tf.sqrt, tf.rsqrt, tf.exp, tf.log, tf.log1p,
               tf.expm1, tf.sin, tf.cos, tf.tanh, tf.sigmoid, tf.floor, tf.ceil, tf.round,
               tf.reciprocal, tf.is_nan, tf.is_inf, tf.is_finite, tf.atan, tf.cosh, tf.sinh, tf.asin, tf.acos,
               tf.tan]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_float_ops_one_cluster(dtype: type) -> None:
    rng = np.random.default_rng(0)
    vals = np.concatenate([np.array(SPECIAL), rng.normal(0, 5, 14)]).astype(dtype).reshape(4, 7)
    x = tf.placeholder(tf.as_dtype(dtype), [None, 7])
    outs = [f(x) for f in UNARY_FLOAT]
    got, want, plan = run_both(outs, {x: vals})
    assert counts(plan) == (1, 0)
    for f, g, w in zip(UNARY_FLOAT, got, want):
        assert_same(g, w, what=f.__name__)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_float_ops_with_broadcast(dtype: type) -> None:
    rng = np.random.default_rng(1)
    xv = np.concatenate([np.array(SPECIAL + [7.0]), rng.normal(0, 3, 15)]).astype(dtype).reshape(6, 5)
    yv = np.array([2.0, -0.0, np.nan, -1.5, 0.25], dtype)
    x = tf.placeholder(tf.as_dtype(dtype), [6, 5])
    y = tf.placeholder(tf.as_dtype(dtype), [5])
    outs = [x + y, x - y, x * y, x / y, tf.floordiv(x, y), tf.floormod(x, y), tf.pow(x, y), tf.maximum(x, y),
            tf.minimum(x, y), tf.squared_difference(x, y), tf.div(x, y), tf.add_n([x, x * 2.0, x]),
            tf.clip_by_value(x, -1.0, 2.0), tf.where_v2(x > y, x, y)]
    cmps = [tf.equal(x, y), tf.not_equal(x, y), x < y, x <= y, x > y, x >= y]
    logic = [tf.logical_and(cmps[2], cmps[4]), tf.logical_or(cmps[0], cmps[2]), tf.logical_not(cmps[1])]
    got, want, plan = run_both(outs + cmps + logic, {x: xv, y: yv})
    assert counts(plan) == (1, 0)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {i}")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_ops_exact(dtype: type) -> None:
    info = np.iinfo(dtype)
    xv = np.array([[info.max, info.min, 7, 0], [3, 100, 1, 2]], dtype)
    yv = np.array([[1, 3, 2, 5], [7, 9, 4, 3]], dtype)
    x = tf.placeholder(tf.as_dtype(dtype), [2, 4])
    y = tf.placeholder(tf.as_dtype(dtype), [2, 4])
    outs = [x + y, x - y, x * y, tf.floordiv(x, y), tf.floormod(x, y), tf.maximum(x, y), tf.minimum(x, y),
            tf.square(x), tf.pow(y, tf.constant(3, tf.as_dtype(dtype))), x < y, tf.equal(x, y),
            tf.cast(x, tf.float32), tf.cast(x, tf.int8), tf.cast(x > y, tf.int32), tf.abs(x), -x]
    got, want, plan = run_both(outs, {x: xv, y: yv})
    assert counts(plan) == (1, 0)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {i}")


def test_casts_float_to_int_and_bool() -> None:
    xv = np.array([[-2.7, -0.5, 0.0, 0.4], [1.5, 2.5, 99.9, -99.9]], np.float32)
    x = tf.placeholder(tf.float32, [2, 4])
    outs = [tf.cast(x, tf.int32), tf.cast(x, tf.bool), tf.cast(x, tf.float64), tf.cast(tf.cast(x, tf.bool),
                                                                                      tf.float32)]
    got, want, plan = run_both(outs, {x: xv})
    assert counts(plan) == (1, 0)
    for g, w in zip(got, want):
        assert_same(g, w)


REDUCTIONS = [
    (tf.reduce_sum, None, False), (tf.reduce_sum, 1, True), (tf.reduce_sum, [0, 2], False),
    (tf.reduce_mean, 0, False), (tf.reduce_max, -1, False), (tf.reduce_min, None, True),
    (tf.reduce_prod, 1, False),
]


@pytest.mark.parametrize("fn,axis,keep", REDUCTIONS)
def test_reductions_with_prologue(fn, axis, keep) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    xv = rng.normal(0, 1, (3, 4, 70)).astype(np.float32)  # 70 and 840: 64-lane blocks and a tail
    x = tf.placeholder(tf.float32, [None, 4, 70])
    r = fn(tf.tanh(x) * 1.5 + 0.25, axis=axis, keepdims=keep)
    got, want, plan = run_both(r, {x: xv})
    assert counts(plan) == (1, 0)
    # float32 sums accumulate in float64 here and pairwise in NumPy: allow for cancellation
    assert_same(got, want, rtol=2e-6, atol=2e-6)


def test_integer_and_bool_reductions() -> None:
    xv = np.arange(24, dtype=np.int32).reshape(4, 6) - 7
    x = tf.placeholder(tf.int32, [4, 6])
    outs = [tf.reduce_sum(x * 3, axis=1), tf.reduce_mean(x + 1, axis=0), tf.reduce_max(x - 1),
            tf.reduce_min(x * 2, axis=0)]
    got, want, plan = run_both(outs, {x: xv})
    assert counts(plan) == (4, 0)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_bool_reductions_compiled() -> None:
    xv = np.arange(24, dtype=np.int32).reshape(4, 6) - 7
    x = tf.placeholder(tf.int32, [4, 6])
    outs = [tf.reduce_all(x > -3, axis=1), tf.reduce_any(tf.equal(x, 5), axis=0, keepdims=True)]
    got, want, plan = run_both(outs, {x: xv})
    assert counts(plan) == (2, 0)
    for g, w in zip(got, want):
        assert_same(g, w)
    assert_same(got[0], np.all(xv > -3, axis=1))


def test_reduction_feeds_are_also_outputs() -> None:
    xv = np.linspace(-3, 3, 40).astype(np.float64).reshape(8, 5)
    x = tf.placeholder(tf.float64, [8, 5])
    e = tf.exp(x - tf.reduce_max(x, axis=1, keepdims=True))
    s = tf.reduce_sum(e, axis=1, keepdims=True)
    sm = e / s
    got, want, plan = run_both([e, s, sm], {x: xv})
    for g, w in zip(got, want):
        assert_same(g, w)
    # max, (sub, exp, sum), div
    assert counts(plan) == (3, 0)


def test_matmul_bias_relu_epilogue() -> None:
    rng = np.random.default_rng(3)
    xv, wv, bv = rng.normal(size=(16, 8)), rng.normal(size=(8, 4)), rng.normal(size=4)
    x = tf.placeholder(tf.float64, [None, 8])
    w = tf.constant(wv)
    b = tf.constant(bv)
    h = tf.maximum(tf.matmul(x, w) + b, 0.0)
    ht = tf.matmul(x, w, transpose_a=False) * 2.0
    g2 = tf.matmul(tf.constant(wv), x, transpose_a=True, transpose_b=True)
    got, want, plan = run_both([h, ht, g2], {x: xv})
    for g, wv_ in zip(got, want):
        assert_same(g, wv_)
    assert counts(plan)[1] == 0
    ops = [c["ops"] for c in plan.report["clusters"]]
    assert any(o[0] == "MatMul" for o in ops), ops


def test_one_element_path_matches_interpreter() -> None:
    # iteration spaces of one element run as Python on NumPy scalars, from the same templates
    x = tf.placeholder(tf.float32, [1])
    s = tf.placeholder(tf.float32, [])
    i = tf.placeholder(tf.int32, [1, 1])
    outs = [x * s + 1.0, tf.exp(x) - tf.sigmoid(s), tf.reduce_mean(x * 3.0, keepdims=True),
            tf.reduce_max(tf.square(x - s)), tf.floordiv(i * 7, i + 1), tf.cast(x > s, tf.int32),
            tf.reduce_sum(i * 2, axis=0)]
    feed = {x: np.array([1.5], np.float32), s: np.float32(-0.25), i: np.array([[3]], np.int32)}
    got, want, plan = run_both(outs, feed)
    assert plan.report["fallbacks"] == []
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {k}")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="FloorDiv"):
            sess.run(outs[4], {i: np.array([[-1]], np.int32)})


@pytest.mark.parametrize("width", [7, 37, 64, 200])  # a tail only; 8-lane blocks; 64-lane blocks; all three
def test_row_reductions_use_lanes_and_tails(width: int) -> None:
    rng = np.random.default_rng(9)
    xv = rng.normal(size=(5, width))
    xv[1, min(9, width - 2)] = np.nan  # inside a lane loop
    xv[2, width - 1] = np.nan  # in the tail
    iv = rng.integers(-50, 50, size=(5, width)).astype(np.int64)
    x = tf.placeholder(tf.float64, [None, width])
    i = tf.placeholder(tf.int64, [None, width])
    outs = [tf.reduce_max(x * 2.0, axis=1), tf.reduce_min(x - 1.0, axis=1), tf.reduce_sum(x * x, axis=1),
            tf.reduce_prod(x * 0.5 + 1.0, axis=1), tf.reduce_sum(i * 3, axis=1), tf.reduce_max(i + 1, axis=1),
            tf.reduce_any(i > 45, axis=1)]
    got, want, plan = run_both(outs, {x: xv, i: iv})
    assert counts(plan) == (len(outs), 0)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol=1e-13, what=f"output {k}")


def test_one_element_fast_step_repeats_and_steps_aside() -> None:
    v = tf.Variable(np.float32(1.0))
    c = tf.Variable(np.array([2.0], np.float32))
    x = tf.placeholder(tf.float32, None)
    i = tf.placeholder(tf.int32, [])
    bump = tf.assign(v, v * 2.0 + x)  # store without reading through a ref input
    mix = tf.assign_add(c, c * x)
    q = tf.floordiv(tf.constant(7), i)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):  # the generated step is built after the first run and reused
            sess.run([bump, mix], {x: np.float32(1.0)})
        assert sess.run(v) == 15.0 and sess.run(c).tolist() == [16.0]
        assert sess.run(mix, {x: np.ones(1, np.float32)}).tolist() == [32.0]  # other shape: general path
        assert sess.run(q, {i: 2}) == 3 and sess.run(q, {i: -2}) == -4
        with pytest.raises(tf.errors.InvalidArgumentError, match="FloorDiv"):
            sess.run(q, {i: 0})
        assert sess.run(q, {i: 3}) == 2


def test_parallel_kernels_for_reductions_and_elementwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from jitflow.compiler import steps

    monkeypatch.setattr(steps, "PARALLEL_WORK", 0)  # every kernel takes its prange variant
    rng = np.random.default_rng(14)
    xv = rng.normal(size=(37, 5, 19))
    x = tf.placeholder(tf.float64, [None, 5, 19])
    e = tf.tanh(x) * 3.0
    outs = [e + 1.0, tf.reduce_sum(e), tf.reduce_max(e, axis=[0, 1]), tf.reduce_mean(e, axis=[1, 2]),
            tf.reduce_min(e, axis=[0, 2], keepdims=True), tf.reduce_prod(e * 0.1 + 1.0, axis=0)]
    got, want, plan = run_both(outs, {x: xv})
    assert plan.report["fallbacks"] == []
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol=1e-12, atol=1e-12, what=f"output {k}")


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 4, 9, 38])
def test_reductions_over_outer_axes_match_the_interpreter(monkeypatch: pytest.MonkeyPatch, parallel: bool,
                                                          rows: int) -> None:
    """Column sums (a bias gradient) and middle-axis reductions take the unrolled loops of
    `codegen/cpu._unrolled_reduction`, whose row count need not be a multiple of the unroll."""
    from jitflow.compiler import steps

    monkeypatch.setattr(steps, "PARALLEL_WORK", 0 if parallel else 1 << 62)
    rng = np.random.default_rng(rows)
    xv = rng.normal(size=(rows, 7, 33)).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 7, 33])
    m = tf.reshape(x, [-1, 33])
    scale = tf.reduce_sum(x, axis=[1, 2], keepdims=True)  # a per-row value broadcast over the row
    outs = [tf.reduce_sum(m * 2.0, axis=0), tf.reduce_max(x, axis=0), tf.reduce_mean(x, axis=1),
            tf.reduce_prod(tf.sigmoid(x), axis=[0, 1]), tf.reduce_sum(x * scale, axis=0),
            tf.reduce_min(x, axis=[0, 1], keepdims=True)]
    got, want, plan = run_both(outs, {x: xv})
    assert plan.report["fallbacks"] == []
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol=2e-5, atol=1e-5, what=f"output {k}")


def test_unrolled_column_sum_adds_in_row_order() -> None:
    """Unrolling keeps each accumulator's order of additions: the serial kernel's column sum is the
    sequential float64 sum, rounded once."""
    rng = np.random.default_rng(3)
    xv = (rng.normal(size=(23, 40)) * 10.0 ** rng.integers(-6, 6, size=(23, 40))).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 40])
    s = tf.reduce_sum(x, axis=0)
    with tf.Session() as sess:
        got = sess.run(s, {x: xv})
    want = np.zeros(40)
    for row in xv.astype(np.float64):
        want = want + row
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_parallel_kernels_vectorize(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prange body's loop variable is not provably >= 0: with signed indices Numba keeps a negative-index
    select in the loop and LLVM leaves it scalar (7x slower per thread). The kernels index with unsigned
    ints, so the prange variant of a broadcast multiply has vector multiplies."""
    import re

    from jitflow.codegen import cpu
    from jitflow.compiler import steps

    monkeypatch.setattr(steps, "PARALLEL_WORK", 0)
    x = tf.placeholder(tf.float32, [None, 50])
    b = tf.placeholder(tf.float32, [None, 1])
    y = x * b
    feed = {x: np.ones((100, 50), np.float32), b: np.full((100, 1), 2.0, np.float32)}
    with tf.Session() as sess:
        assert (sess.run(y, feed) == 2.0).all()
        step = next(o for o in last_plan(sess).steps if isinstance(o, steps.ClusterStep) and y.op in o.ops)
    (layout, parallel), = step.kernels.keys()
    assert parallel
    src = cpu.generate(step.c, layout, True).replace("cache=True", "cache=False")  # inspectable: not cached
    ns: dict = {}
    exec(compile(src, "<kernel>", "exec"), ns)  # noqa: S102 - the generated kernel, as the cache loads it
    out = np.empty(5000, np.float32)
    ns["kernel"](feed[x].reshape(-1), feed[b].reshape(-1), out, np.array([100, 50]), np.zeros(1, np.int64))
    assert (out == 2.0).all()
    ir = "\n".join(ns["kernel"].inspect_llvm().values())
    assert len(re.findall(r"fmul (?:fast )?<", ir)) >= 10, "the prange loop is not vectorized"


def test_one_element_programs_never_start_numba() -> None:
    """Scalar programs (the linear-regression examples) run on NumPy scalars only: starting Numba's CPU
    target costs ~0.5 s, more than such a program's whole run."""
    code = """
import numpy as np, numba, jitflow as tf
def started():
    return "_toplevel_target_context" in vars(numba.core.registry.cpu_target)
x = tf.placeholder(tf.float32, [])
w = tf.Variable(0.5)
loss = tf.pow(x * w - 1.0, 2.0) + tf.exp(w) + tf.sigmoid(x) + tf.tanh(w)
train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
with tf.Session() as sess:
    sess.run(w.initializer)
    for v in (0.5, 1.5, 2.5):
        sess.run(train, {x: v})
    before = started()
    sess.run(tf.exp(tf.fill([1000], x)) * 2.0, {x: 1.0})  # a real kernel: now Numba starts
print(before, started())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JITFLOW_CACHE_DIR": str(Path(tempfile.mkdtemp()))})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
