"""Math ops against direct NumPy computations: values, dtypes, broadcasting, static shapes, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf

RNG = np.random.RandomState(0)


def run(t, feed=None):
    with tf.Session() as sess:
        return sess.run(t, feed)


UNARY = {
    "negative": np.negative, "abs": np.abs, "sign": np.sign, "square": np.square, "exp": np.exp,
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "expm1": np.expm1, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "reciprocal": lambda x: 1 / x,
}
POSITIVE = {"sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "log": np.log, "log1p": np.log1p}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(UNARY) + sorted(POSITIVE))
def test_unary_float(name, dtype):
    x = RNG.uniform(0.1, 3, (3, 4)) if name in POSITIVE else RNG.uniform(-3, 3, (3, 4))
    x = x.astype(dtype)
    x[0, 0] = 2.5 if name == "round" else x[0, 0]  # half-to-even
    ref = (POSITIVE.get(name) or UNARY[name])(x)
    t = getattr(tf, name)(tf.constant(x))
    assert t.dtype == tf.as_dtype(dtype) and t.shape.as_list() == [3, 4]
    got = run(t)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, rtol=2e-6 if dtype == np.float32 else 1e-12)


def test_unary_integer_and_dtype_rules():
    x = np.array([-3, 0, 4], np.int32)
    assert run(tf.abs(x)).tolist() == [3, 0, 4]
    assert run(tf.negative(x)).dtype == np.int32
    assert run(tf.sign(x)).tolist() == [-1, 0, 1]
    assert run(tf.square(x)).tolist() == [9, 0, 16]
    with pytest.raises(TypeError):
        tf.sqrt(tf.constant(x))
    with pytest.raises(TypeError):
        tf.logical_not(tf.constant(x))


BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum,
          "minimum": np.minimum, "squared_difference": lambda a, b: (a - b) ** 2, "pow": np.power,
          "truediv": np.true_divide, "floordiv": np.floor_divide, "floormod": np.mod}


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (5,))])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_float_broadcasting(name, shapes):
    a = RNG.uniform(0.5, 3, shapes[0]).astype(np.float32)
    b = RNG.uniform(0.5, 3, shapes[1]).astype(np.float32)
    t = getattr(tf, name)(a, b)
    want = BINARY[name](a, b)
    assert t.shape.as_list() == list(want.shape)
    got = run(t)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_integer_division_semantics():
    a = np.array([7, -7, 7, -7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    assert run(tf.floordiv(a, b)).tolist() == (a // b).tolist()
    assert run(tf.floormod(a, b)).tolist() == (a % b).tolist()
    assert run(tf.truncatediv(a, b)).tolist() == [3, -3, -3, 3]
    assert run(tf.div(a, b)).tolist() == (a // b).tolist()
    q = tf.truediv(a, b)
    assert q.dtype == tf.float64 and run(q).tolist() == (a / b).tolist()
    x = tf.placeholder(tf.int32)
    for op in (tf.floordiv, tf.floormod, tf.truncatediv):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Integer division by zero"):
            run(op(x, 0), {x: 3})
    with pytest.raises(tf.errors.InvalidArgumentError):
        run(tf.pow(x, -1), {x: 2})


def test_comparisons_and_logical():
    a = np.array([1, 2, 3], np.int64)
    b = np.array([3, 2, 1], np.int64)
    for name, fn in [("equal", np.equal), ("not_equal", np.not_equal), ("less", np.less),
                     ("less_equal", np.less_equal), ("greater", np.greater), ("greater_equal", np.greater_equal)]:
        t = getattr(tf, name)(a, b)
        assert t.dtype == tf.bool
        assert run(t).tolist() == fn(a, b).tolist()
    p = np.array([True, True, False, False])
    q = np.array([True, False, True, False])
    assert run(tf.logical_and(p, q)).tolist() == (p & q).tolist()
    assert run(tf.logical_or(p, q)).tolist() == (p | q).tolist()
    assert run(tf.logical_xor(p, q)).tolist() == (p ^ q).tolist()
    assert run(tf.logical_not(p)).tolist() == (~p).tolist()


def test_where_select_cast_clip_addn():
    c = np.array([True, False, True])
    x = np.array([1.0, 2.0, 3.0], np.float32)
    y = np.array([-1.0, -2.0, -3.0], np.float32)
    assert run(tf.where(c, x, y)).tolist() == [1.0, -2.0, 3.0]
    rows = tf.where(tf.constant([True, False]), tf.ones([2, 2]), tf.zeros([2, 2]))
    assert run(rows).tolist() == [[1, 1], [0, 0]]
    assert run(tf.where(c)).tolist() == [[0], [2]]
    assert run(tf.where_v2(c, x, 0.0)).tolist() == [1.0, 0.0, 3.0]
    assert run(tf.cast(np.array([1.7, -1.7]), tf.int32)).tolist() == [1, -1]
    assert run(tf.cast(np.array([1, 0]), tf.bool)).tolist() == [True, False]
    assert run(tf.clip_by_value(x, 1.5, 2.5)).tolist() == [1.5, 2.0, 2.5]
    assert run(tf.add_n([x, y, x])).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        tf.add_n([])
    with pytest.raises(TypeError):
        tf.where(x, x, y)


REDUCE = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min,
          "reduce_prod": np.prod}


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, [0, 2], (1, 2)])
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reductions(name, axis, keep):
    x = RNG.uniform(0.5, 1.5, (2, 3, 4)).astype(np.float32)
    t = getattr(tf, name)(x, axis=axis, keepdims=keep)
    want = REDUCE[name](x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keep)
    assert t.shape.as_list() == list(np.shape(want))
    got = run(t)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_reduction_dtype_rules_and_aliases():
    i = np.array([[1, 2], [3, 4]], np.int32)
    assert run(tf.reduce_mean(i)) == 2  # integer mean truncates, as in TF
    assert run(tf.reduce_mean(i)).dtype == np.int32
    assert run(tf.reduce_sum(i, reduction_indices=[1], keep_dims=True)).tolist() == [[3], [7]]
    b = np.array([[True, False], [True, True]])
    assert run(tf.reduce_all(b, axis=1)).tolist() == [False, True]
    assert run(tf.reduce_any(b, axis=0)).tolist() == [True, True]
    with pytest.raises(TypeError):
        tf.reduce_all(i)
    with pytest.raises(ValueError):
        tf.reduce_sum(i, axis=2)
    x = np.array([[1000.0, 1000.0], [-5.0, 3.0]], np.float32)
    ref = np.array([np.log(2.0) + 1000, np.log(np.exp(x[1].astype(np.float64)).sum())])
    np.testing.assert_allclose(run(tf.reduce_logsumexp(x, axis=1)), ref, rtol=1e-6)


def test_argmax_argmin():
    x = np.array([[1, 5, 2], [7, 0, 7]], np.float32)
    a = tf.argmax(x, 1)
    assert a.dtype == tf.int64 and run(a).tolist() == [1, 0]
    assert run(tf.argmin(x, axis=0)).tolist() == [0, 1, 0]
    assert run(tf.argmax(x, 1, output_type=tf.int32)).dtype == np.int32


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_variants(ta, tb):
    a = RNG.randn(3, 4).astype(np.float32)
    b = RNG.randn(4, 5).astype(np.float32)
    a_in = a.T.copy() if ta else a
    b_in = b.T.copy() if tb else b
    t = tf.matmul(a_in, b_in, transpose_a=ta, transpose_b=tb)
    assert t.shape.as_list() == [3, 5]
    np.testing.assert_allclose(run(t), a @ b, rtol=1e-5)


def test_batched_matmul_and_errors():
    a = RNG.randn(2, 3, 4).astype(np.float32)
    b = RNG.randn(4, 2).astype(np.float32)
    t = tf.matmul(a, np.broadcast_to(b, (2, 4, 2)).copy())
    assert t.op.type == "BatchMatMulV2" and t.shape.as_list() == [2, 3, 2]
    np.testing.assert_allclose(run(t), a @ b, rtol=1e-5)
    x = tf.placeholder(tf.float32, [None, None])
    with pytest.raises(tf.errors.InvalidArgumentError, match="size-incompatible"):
        run(tf.matmul(x, x), {x: np.ones((2, 3))})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=4), st.lists(st.integers(1, 4), min_size=0, max_size=4),
       st.data())
def test_broadcast_shape_inference_matches_numpy(sa, sb, data):
    # Make the shapes broadcast-compatible half of the time by copying dims.
    if data.draw(st.booleans()):
        n = min(len(sa), len(sb))
        for i in range(1, n + 1):
            if data.draw(st.booleans()):
                sb[-i] = sa[-i]
            elif data.draw(st.booleans()):
                sb[-i] = 1
    try:
        want = np.broadcast_shapes(tuple(sa), tuple(sb))
    except ValueError:
        with pytest.raises(ValueError):
            tf.add(tf.zeros(sa), tf.zeros(sb))
        return
    p = tf.placeholder(tf.float32, [None] * len(sa))
    t = tf.add(tf.zeros(sa), tf.zeros(sb))
    assert tuple(t.shape.as_list()) == want
    assert (p + tf.zeros(sb)).shape.ndims == max(len(sa), len(sb))
    assert run(t).shape == want
