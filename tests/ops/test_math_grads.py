"""Gradients of the math ops against central finite differences in float64.

Every check feeds the inputs through placeholders, weights the output with fixed random numbers (so
every output element matters) and compares tf.gradients with (f(x+h) - f(x-h)) / 2h per element.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf
from tests.gradcheck import numeric_grad

Shape = Sequence[int | None] | None


def check_grads(build: Callable[..., tf.Tensor], vals: Sequence[np.ndarray], shapes: Sequence[Shape] | None = None,
                rtol: float = 1e-5, atol: float = 1e-7) -> list[np.ndarray]:
    """Asserts that tf.gradients of `build(*placeholders)` matches finite differences; returns them."""
    vals = [np.asarray(v, dtype=np.float64) for v in vals]
    with tf.Graph().as_default():
        phs = [tf.placeholder(tf.float64, s if shapes is None else shapes[k]) for k, s in
               enumerate(v.shape for v in vals)]
        y = build(*phs)
        with tf.Session() as sess:
            out_shape = sess.run(y, dict(zip(phs, vals))).shape
            weights = np.random.RandomState(7).uniform(0.5, 1.5, out_shape)
            loss = tf.reduce_sum(y * weights)
            grads = tf.gradients(loss, phs)
            assert all(g is not None for g in grads), grads
            got = sess.run(grads, dict(zip(phs, vals)))
            for i, v in enumerate(vals):
                assert got[i].shape == v.shape
                want = numeric_grad(sess, loss, phs, vals, i)
                np.testing.assert_allclose(got[i], want, rtol=rtol, atol=atol, err_msg=f"input {i}")
    return got


rng = np.random.RandomState(0)


def _u(lo: float, hi: float, shape: Sequence[int] = (2, 3)) -> np.ndarray:
    return rng.uniform(lo, hi, shape)


UNARY = {
    "negative": (tf.negative, -2, 2), "abs": (tf.abs, 0.2, 2), "square": (tf.square, -2, 2),
    "sqrt": (tf.sqrt, 0.3, 3), "rsqrt": (tf.rsqrt, 0.3, 3), "exp": (tf.exp, -2, 2), "log": (tf.log, 0.3, 3),
    "log1p": (tf.log1p, -0.5, 2), "expm1": (tf.expm1, -2, 2), "sin": (tf.sin, -3, 3), "cos": (tf.cos, -3, 3),
    "tan": (tf.tan, -1.2, 1.2), "tanh": (tf.tanh, -2, 2), "sigmoid": (tf.sigmoid, -4, 4),
    "reciprocal": (tf.reciprocal, 0.5, 2), "asin": (tf.asin, -0.8, 0.8), "acos": (tf.acos, -0.8, 0.8),
    "atan": (tf.atan, -2, 2), "sinh": (tf.sinh, -2, 2), "cosh": (tf.cosh, -2, 2),
    "neg_abs": (lambda x: abs(x), -2, -0.2),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name: str) -> None:
    fn, lo, hi = UNARY[name]
    check_grads(fn, [_u(lo, hi)])


BINARY = {
    "add": tf.add, "subtract": tf.subtract, "multiply": tf.multiply, "truediv": tf.truediv, "div": tf.div,
    "maximum": tf.maximum, "minimum": tf.minimum, "squared_difference": tf.squared_difference,
    "pow": tf.pow, "floormod": tf.floormod, "operators": lambda x, y: (x - y) * x / (y + 3.0) + x ** 2,
}
SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((3,), ()), ((), (2, 2)), ((4, 1, 2), (3, 1))]


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_with_broadcasting(name: str, shapes: tuple) -> None:
    sx, sy = shapes
    x, y = rng.uniform(0.5, 2.0, sx), rng.uniform(0.5, 2.0, sy)
    if name == "floormod":  # keep x / y away from integers, where x mod y jumps
        x = np.floor(x * 4) / 4 + 0.11
        y = np.full(sy, 0.3)
    check_grads(BINARY[name], [x, y])


def test_pow_gradient_for_base_at_zero_and_negative() -> None:
    # d/dy x^y uses log(x) only where x > 0; elsewhere TF defines it as 0 (not nan).
    x, y = np.array([0.0, -2.0, 2.0]), np.array([2.0, 2.0, 3.0])
    with tf.Session() as sess:
        xt, yt = tf.constant(x), tf.constant(y)
        gx, gy = sess.run(tf.gradients(tf.pow(xt, yt), [xt, yt]))
    np.testing.assert_allclose(gx, y * x ** (y - 1))
    np.testing.assert_allclose(gy, [0.0, 0.0, 8 * np.log(2.0)])


def test_maximum_minimum_ties_go_to_x() -> None:
    with tf.Session() as sess:
        x, y = tf.constant([1.0, 2.0, 3.0]), tf.constant([1.0, 5.0, 0.0])
        got = sess.run(tf.gradients(tf.maximum(x, y), [x, y]) + tf.gradients(tf.minimum(x, y), [x, y]))
    np.testing.assert_array_equal(got, [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize("fn", [tf.floor, tf.ceil, tf.round])
def test_integer_valued_ops_have_no_gradient(fn: Callable) -> None:
    x = tf.constant([0.3, 1.7])
    assert tf.gradients(fn(x), x) == [None]
    assert tf.gradients(tf.floordiv(x, 2.0), x) == [None]


def test_sign_gradient_is_zero() -> None:
    x = tf.constant([-1.0, 0.5])
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(tf.gradients(tf.sign(x) * x, x)[0]), [-1.0, 1.0])


def test_cast_gradient_float_to_float_only() -> None:
    # Through float32 the gradient of x² is 2x rounded to float32 (finite differences cannot see it).
    x64 = tf.constant([0.1, -3.7], dtype=tf.float64)
    g = tf.gradients(tf.cast(tf.square(tf.cast(x64, tf.float32)), tf.float64), x64)[0]
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(g), [0.2, -7.4], rtol=1e-6)
    x = tf.constant([1.5, 2.5])
    assert tf.gradients(tf.cast(x, tf.int32), x) == [None]
    g = tf.gradients(tf.cast(x, tf.float16), x)[0]
    assert g is not None and g.dtype == tf.float32


def test_add_n_and_select() -> None:
    check_grads(lambda a, b, c: tf.add_n([a, b * b, c]), [_u(-1, 1), _u(-1, 1), _u(-1, 1)])
    cond = np.array([[True, False, True], [False, False, True]])
    check_grads(lambda a, b: tf.where(cond, a * b, b), [_u(-1, 1), _u(-1, 1)])
    check_grads(lambda a, b: tf.where(np.array([True, False]), a, 2.0 * b), [_u(-1, 1), _u(-1, 1)])
    check_grads(lambda a, b: tf.where_v2(cond, a, b), [_u(-1, 1, (2, 1)), _u(-1, 1, (3,))])


REDUCTIONS = {"sum": tf.reduce_sum, "mean": tf.reduce_mean, "max": tf.reduce_max, "min": tf.reduce_min,
              "prod": tf.reduce_prod, "logsumexp": tf.reduce_logsumexp}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [None, 0, 1, -1, [0, 2]])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(name: str, axis: object, keepdims: bool) -> None:
    fn = REDUCTIONS[name]
    check_grads(lambda x: fn(x, axis=axis, keepdims=keepdims), [_u(0.5, 1.5, (2, 3, 2))])


@pytest.mark.parametrize("shape", [[None, 3], [None, None], None], ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "prod"])
def test_reductions_of_partly_known_shapes(shape: Shape, name: str) -> None:
    fn = REDUCTIONS[name]
    check_grads(lambda x: fn(x * x, axis=-1) + tf.reduce_sum(fn(x, axis=0, keepdims=True)), [_u(0.5, 1.5)],
                shapes=[shape])
    check_grads(lambda x: fn(x, axis=None), [_u(0.5, 1.5)], shapes=[shape])


def test_max_min_share_the_gradient_among_ties() -> None:
    x = tf.constant([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    with tf.Session() as sess:
        g_max, g_min, g_all = sess.run([tf.gradients(tf.reduce_max(x, axis=1), x)[0],
                                        tf.gradients(tf.reduce_min(x, axis=1), x)[0],
                                        tf.gradients(tf.reduce_max(x), x)[0]])
    np.testing.assert_allclose(g_max, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(g_min, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(g_all, [[0, 0.5, 0.5], [0, 0, 0]])


@pytest.mark.parametrize("x", [[[1.0, 0.0, 3.0], [2.0, 0.5, 4.0]], [[0.0, 0.0, 3.0], [2.0, 0.0, 4.0]]])
def test_prod_with_zeros(x: list) -> None:
    check_grads(lambda t: tf.reduce_prod(t, axis=1), [np.array(x)])
    check_grads(lambda t: tf.reduce_prod(t), [np.array(x)])


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_all_transposes(ta: bool, tb: bool) -> None:
    a = _u(-1, 1, (3, 2) if ta else (2, 3))
    b = _u(-1, 1, (4, 3) if tb else (3, 4))
    check_grads(lambda x, y: tf.matmul(x, y, transpose_a=ta, transpose_b=tb), [a, b])


@pytest.mark.parametrize("adj", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((3, 4), (2, 4, 2))],
                         ids=str)
def test_batch_matmul_with_broadcast_batches(adj: tuple, shapes: tuple) -> None:
    sa, sb = (list(s) for s in shapes)
    if adj[0]:
        sa[-1], sa[-2] = sa[-2], sa[-1]
    if adj[1]:
        sb[-1], sb[-2] = sb[-2], sb[-1]
    check_grads(lambda x, y: tf.matmul(x, y, adjoint_a=adj[0], adjoint_b=adj[1]),
                [_u(-1, 1, sa), _u(-1, 1, sb)])


def test_second_order_through_unbroadcast() -> None:
    # d/dy sum(x * y) sums over the broadcast axis (UnbroadcastTo); differentiate that again in x.
    def inner_grad(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.gradients(tf.reduce_sum(tf.sin(x) * y * y), y)[0]

    check_grads(inner_grad, [_u(-1, 1, (4, 3)), _u(-1, 1, (3,))])
    check_grads(lambda x: tf.gradients(tf.reduce_sum(tf.tanh(x) ** 3), x)[0], [_u(-1, 1)])


def test_gradient_reaches_variables() -> None:
    w = tf.Variable([[1.0, -2.0]], dtype=tf.float64)
    x = tf.constant([[3.0], [4.0]], dtype=tf.float64)
    gw = tf.gradients(tf.reduce_sum(tf.square(tf.matmul(x, w))), w)[0]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        # d/dw sum((x w)^2) = 2 x^T (x w)
        np.testing.assert_allclose(sess.run(gw), 2 * np.array([[3.0, 4.0]]) @ (np.array([[3.0], [4.0]]) @
                                                                              np.array([[1.0, -2.0]])))


# -- a property test: random small graphs of elementwise ops and reductions ------------------------------------

_UNARY_SAFE = [tf.sin, tf.tanh, tf.sigmoid, tf.square, lambda t: tf.exp(t * 0.3), lambda t: tf.log(t * t + 1.0),
               lambda t: tf.sqrt(t * t + 0.5), tf.atan, lambda t: tf.reduce_mean(t, axis=-1, keepdims=True)]
_BINARY_SAFE = [tf.add, tf.subtract, tf.multiply, lambda a, b: a / (b * b + 1.0),
                lambda a, b: tf.squared_difference(a, b), lambda a, b: a * tf.reduce_sum(b, axis=0)]


@st.composite
def _graphs(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    n = draw(st.integers(1, 6))
    steps = []
    for k in range(n):
        kind = draw(st.integers(0, 1))
        fn = draw(st.integers(0, (len(_UNARY_SAFE) if kind == 0 else len(_BINARY_SAFE)) - 1))
        arg = draw(st.integers(0, k + 1))  # any earlier value (the two inputs are values 0 and 1)
        steps.append((kind, fn, arg))
    return steps


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_graphs(), st.integers(0, 2 ** 16))
def test_random_graphs_match_finite_differences(steps: list[tuple[int, int, int]], seed: int) -> None:
    r = np.random.RandomState(seed)
    vals = [r.uniform(-1, 1, (2, 3)), r.uniform(-1, 1, (3,))]

    def build(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        values = [x, y]
        for kind, fn, arg in steps:
            a = values[arg]
            if kind == 0:
                values.append(_UNARY_SAFE[fn](a))
            else:
                values.append(_BINARY_SAFE[fn](a, values[-1]))
        # Everything feeds the output, so both inputs get a gradient.
        return values[-1] + tf.reduce_sum(x) * 0.0 + y * 0.0

    check_grads(build, vals, rtol=1e-4, atol=1e-6)
