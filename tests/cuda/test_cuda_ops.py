"""Every op that lowers to CUDA, placed on /gpu:0, against the interpreter on the same graph (simulator)."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler import gpu
from tests.compiler.helpers import assert_same
from tests.cuda.helpers import backends, cuda_steps, needs_cuda, run_gpu

pytestmark = needs_cuda

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.75, 1e-30, -1e30, 80.0, -80.0, np.inf, -np.inf, np.nan]

UNARY_FLOAT = [tf.negative, tf.abs, tf.sign, tf.square, tf.sqrt, tf.rsqrt, tf.exp, tf.log, tf.log1p,
               tf.expm1, tf.sin, tf.cos, tf.tanh, tf.sigmoid, tf.floor, tf.ceil, tf.round,
               tf.reciprocal, tf.is_nan, tf.is_inf, tf.is_finite, tf.atan, tf.cosh]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_float_ops(dtype: type) -> None:
    rng = np.random.default_rng(0)
    vals = np.concatenate([np.array(SPECIAL), rng.normal(0, 5, 14)]).astype(dtype).reshape(4, 7)
    x = tf.placeholder(tf.as_dtype(dtype), [None, 7])
    with tf.device("/gpu:0"):
        outs = [f(x) for f in UNARY_FLOAT]
    got, want, plan = run_gpu(outs, {x: vals})
    assert backends(plan) == ["cuda"] and len(cuda_steps(plan)) == 1
    assert plan.report["fallbacks"] == []
    for f, g, w in zip(UNARY_FLOAT, got, want):
        assert_same(g, w, what=f.__name__)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_float_ops_with_broadcast(dtype: type) -> None:
    rng = np.random.default_rng(1)
    xv = np.concatenate([np.array(SPECIAL + [7.0]), rng.normal(0, 3, 15)]).astype(dtype).reshape(6, 5)
    yv = np.array([2.0, -0.0, np.nan, -1.5, 0.25], dtype)
    x = tf.placeholder(tf.as_dtype(dtype), [6, 5])
    y = tf.placeholder(tf.as_dtype(dtype), [5])
    with tf.device("/device:GPU:0"):
        outs = [x + y, x - y, x * y, x / y, tf.floordiv(x, y), tf.floormod(x, y), tf.pow(x, y),
                tf.maximum(x, y), tf.minimum(x, y), tf.squared_difference(x, y), tf.div(x, y),
                tf.add_n([x, x * 2.0, x]), tf.clip_by_value(x, -1.0, 2.0), tf.where_v2(x > y, x, y)]
        cmps = [tf.equal(x, y), tf.not_equal(x, y), x < y, x <= y, x > y, x >= y]
        logic = [tf.logical_and(cmps[2], cmps[4]), tf.logical_or(cmps[0], cmps[2]), tf.logical_not(cmps[1])]
    got, want, plan = run_gpu(outs + cmps + logic, {x: xv, y: yv})
    assert set(backends(plan)) == {"cuda"} and plan.report["fallbacks"] == []
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {i}")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_ops_exact(dtype: type) -> None:
    info = np.iinfo(dtype)
    xv = np.array([[info.max, info.min, 7, 0], [3, 100, 1, 2]], dtype)
    yv = np.array([[1, 3, 2, 5], [7, 9, 4, 3]], dtype)
    x = tf.placeholder(tf.as_dtype(dtype), [2, 4])
    y = tf.placeholder(tf.as_dtype(dtype), [2, 4])
    with tf.device("/gpu:0"):
        outs = [x + y, x - y, x * y, tf.floordiv(x, y), tf.floormod(x, y), tf.maximum(x, y), tf.minimum(x, y),
                tf.square(x), tf.pow(y, tf.constant(3, tf.as_dtype(dtype))), x < y, tf.equal(x, y),
                tf.cast(x, tf.float32), tf.cast(x, tf.int8), tf.cast(x > y, tf.int32), tf.abs(x), -x]
    got, want, plan = run_gpu(outs, {x: xv, y: yv})
    assert set(backends(plan)) == {"cuda"}
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {i}")


def test_float_to_int_casts_and_nan_select() -> None:
    xv = np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 1e3], np.float32)
    x = tf.placeholder(tf.float32, [6])
    with tf.device("/gpu:0"):
        outs = [tf.cast(x, tf.int32), tf.cast(x, tf.int64), tf.cast(x, tf.float64), tf.cast(x, tf.bool),
                tf.where(x > 0.0, x, tf.zeros_like(x) + np.nan)]
    got, want, plan = run_gpu(outs, {x: xv})
    assert set(backends(plan)) == {"cuda"}
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {i}")


def test_integer_division_by_zero_is_the_interpreters_error() -> None:
    x = tf.placeholder(tf.int32, [3])
    y = tf.placeholder(tf.int32, [3])
    with tf.device("/gpu:0"):
        q = tf.floordiv(x, y) + 1
    feed = {x: np.array([4, 5, 6], np.int32), y: np.array([2, 0, 3], np.int32)}
    outcomes = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            try:
                outcomes.append(("value", sess.run(q, feed).tolist()))
            except tf.errors.OpError as e:
                outcomes.append((type(e).__name__, e.op.name if e.op is not None else None))
            ok = sess.run(q, {x: np.array([4, 5, 6], np.int32), y: np.array([2, 1, 3], np.int32)})
            np.testing.assert_array_equal(ok, [3, 6, 3])
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, True), (1, False), ([0, 1], True), (-1, True)])
def test_reductions_float(axis: object, keepdims: bool) -> None:
    # 3 x 70: more reduced elements than a block has threads, so pass 1 writes several parts
    rng = np.random.default_rng(2)
    xv = rng.normal(0, 2, (3, 70)).astype(np.float32)
    xv[1, 5] = np.nan
    x = tf.placeholder(tf.float32, [3, 70])
    with tf.device("/gpu:0"):
        y = tf.exp(x * 0.1)
        outs = [tf.reduce_sum(y, axis=axis, keepdims=keepdims), tf.reduce_mean(x * x, axis=axis, keepdims=keepdims),
                tf.reduce_max(x, axis=axis, keepdims=keepdims), tf.reduce_min(x + 1.0, axis=axis, keepdims=keepdims),
                tf.reduce_prod(y * 0.99, axis=axis, keepdims=keepdims)]
    got, want, plan = run_gpu(outs, {x: xv})
    assert set(backends(plan)) == {"cuda"} and len(cuda_steps(plan)) == len(plan.report["clusters"])
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol=1e-5, what=f"reduction {i}")


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
def test_reductions_exact_types_and_bools(dtype: type) -> None:
    rng = np.random.default_rng(3)
    xv = rng.integers(-9, 9, (4, 3, 5)).astype(dtype)
    x = tf.placeholder(tf.as_dtype(dtype), [4, 3, 5])
    with tf.device("/gpu:0"):
        outs = [tf.reduce_sum(x, axis=[0, 2]), tf.reduce_max(x, axis=1, keepdims=True), tf.reduce_min(x),
                tf.reduce_mean(x, axis=0)]
        logical = [tf.reduce_all(x > -8, axis=2), tf.reduce_any(tf.equal(x, 3), axis=[0, 1]),
                   tf.reduce_all(x < 100)]
    got, want, plan = run_gpu(outs, {x: xv})
    assert set(backends(plan)) == {"cuda"}
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"reduction {i}")
    # against NumPy: the interpreter's All/Any with an axis is broken (reported)
    with tf.Session() as sess:
        got_l = sess.run(logical, {x: xv})
    for g, w in zip(got_l, [np.all(xv > -8, axis=2), np.any(xv == 3, axis=(0, 1)), np.all(xv < 100)]):
        assert_same(g, w)


def test_reduction_prologue_output_is_stored() -> None:
    xv = np.linspace(-3, 3, 40, dtype=np.float32).reshape(5, 8)
    x = tf.placeholder(tf.float32, [5, 8])
    with tf.device("/gpu:0"):
        y = tf.tanh(x) * 2.0
        s = tf.reduce_sum(y, axis=1)
    got, want, plan = run_gpu([y, s], {x: xv})
    assert backends(plan) == ["cuda"]
    assert_same(got[0], want[0])
    assert_same(got[1], want[1], rtol=1e-5)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_tiled(ta: bool, tb: bool, dtype: type) -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(7, 5) if ta else (5, 7)).astype(dtype)
    b = rng.normal(size=(3, 7) if tb else (7, 3)).astype(dtype)
    pa = tf.placeholder(tf.as_dtype(dtype), a.shape)
    pb = tf.placeholder(tf.as_dtype(dtype), b.shape)
    with tf.device("/gpu:0"):
        c = tf.matmul(pa, pb, transpose_a=ta, transpose_b=tb)
        d = tf.nn.relu(c) if hasattr(tf.nn, "relu") else c
    got, want, plan = run_gpu([c, d], {pa: a, pb: b})
    assert "cuda" in backends(plan)
    assert any(s.kind == "matmul" and s.ops[0].type == "MatMul" for s in cuda_steps(plan))
    for g, w in zip(got, want):
        assert_same(g, w, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_broadcast_layouts_and_rank0() -> None:
    av = np.arange(12, dtype=np.float32).reshape(3, 1, 4)
    bv = np.arange(5, dtype=np.float32).reshape(5, 1)
    a = tf.placeholder(tf.float32, [3, 1, 4])
    b = tf.placeholder(tf.float32, [5, 1])
    s = tf.placeholder(tf.float32, [])
    with tf.device("/gpu:0"):
        outs = [a * b + s, (a - s) * 0.5, s * s + 1.0]
    got, want, plan = run_gpu(outs, {a: av, b: bv, s: 1.5})
    assert set(backends(plan)) == {"cuda"}
    for g, w in zip(got, want):
        assert_same(g, w)


def test_empty_and_mismatched_shapes() -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    y = tf.placeholder(tf.float32, [None, 3])
    with tf.device("/gpu:0"):
        z = tf.exp(x) + y
        s = tf.reduce_sum(z, axis=0)
    with tf.Session() as sess:
        e = np.zeros((0, 3), np.float32)
        zv, sv = sess.run([z, s], {x: e, y: e})
        assert zv.shape == (0, 3) and sv.tolist() == [0.0, 0.0, 0.0]
        with pytest.raises(tf.errors.InvalidArgumentError):
            sess.run(z, {x: np.ones((2, 3), np.float32), y: np.ones((4, 3), np.float32)})
        np.testing.assert_allclose(sess.run(s, {x: np.zeros((2, 3), np.float32), y: np.ones((2, 3), np.float32)}),
                                   [4.0, 4.0, 4.0])


@pytest.mark.parametrize("ta", [False, True])
def test_matmul_with_fused_epilogue(ta: bool) -> None:
    rng = np.random.default_rng(5)
    xv = rng.normal(size=(6, 5) if ta else (5, 6)).astype(np.float32)
    wv = rng.normal(size=(6, 3)).astype(np.float32)
    bv = rng.normal(size=3).astype(np.float32)
    x = tf.placeholder(tf.float32, xv.shape)
    b = tf.placeholder(tf.float32, [3])
    with tf.device("/gpu:0"):
        w = tf.constant(wv)
        y = tf.nn.relu(tf.matmul(x, w, transpose_a=ta) + b) * 2.0
    got, want, plan = run_gpu(y, {x: xv, b: bv})
    fused = [s for s in plan.steps if isinstance(s, gpu.FusedMatMulStep)]
    assert len(fused) == 1 and not any(isinstance(s, gpu.CudaMatMulStep) for s in plan.steps)
    assert [e is not None for e in fused[0].entries.values()] == [True], "the fused kernel ran"
    assert "MatMul" in plan.report["clusters"][0]["ops"] and backends(plan) == ["cuda"]
    assert_same(got, want, rtol=1e-5, atol=1e-6)


def test_epilogue_that_broadcasts_the_product_runs_unfused() -> None:
    rng = np.random.default_rng(6)
    xv = rng.normal(size=(4, 3)).astype(np.float32)
    wv = rng.normal(size=(3, 1)).astype(np.float32)
    zv = rng.normal(size=(4, 5)).astype(np.float32)
    x = tf.placeholder(tf.float32, [4, 3])
    w = tf.placeholder(tf.float32, [3, 1])
    z = tf.placeholder(tf.float32, [4, 5])
    with tf.device("/gpu:0"):
        y = tf.tanh(tf.matmul(x, w) + z)  # [4, 1] + [4, 5]
    got, want, plan = run_gpu(y, {x: xv, w: wv, z: zv})
    fused = [s for s in plan.steps if isinstance(s, gpu.FusedMatMulStep)]
    assert len(fused) == 1 and list(fused[0].entries.values()) == [None]
    assert_same(got, want, rtol=1e-5, atol=1e-6)
