"""Debug ops (Print, tf.print, check_numerics, asserts) and tf.cond (Switch/Merge, dead branches)."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import jitflow as tf
from jitflow.framework import registry

# -- Print / tf.print ---------------------------------------------------------------------------------------


def test_print_returns_input_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.constant([1, 2, 3, 4])
    p = tf.Print(x, [x, tf.constant([[1.5, 2.0], [3.0, 4.0]]), "tag"], "vals: ")
    assert p.shape.as_list() == [4] and p.dtype == tf.int32
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(p), [1, 2, 3, 4])
    err = capsys.readouterr().err
    assert err == "vals: [1 2 3...][1.5 2 3...]tag\n"


def test_print_first_n_and_summarize(capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.constant(np.arange(6))
    p = tf.Print(x, [x], "n=", first_n=2, summarize=10)
    with tf.Session() as sess:
        for _ in range(4):
            sess.run(p)
    assert capsys.readouterr().err == "n=[0 1 2 3 4 5]\n" * 2


def test_print_is_stateful_and_passes_gradients() -> None:
    assert registry.get_opdef("Print").kind == registry.STATEFUL
    x = tf.placeholder(tf.float64, [2])
    g, = tf.gradients(tf.reduce_sum(tf.Print(x, [x]) * 3.0), [x])
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(g, {x: [1.0, 2.0]}), [3.0, 3.0])


def test_tf_print(capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.placeholder(tf.float32, [])
    op = tf.print("x =", x, tf.constant([[1.5, 2], [3, 4]]), sep="|")
    assert isinstance(op, tf.Operation) and op.type == "PrintV2"
    with tf.Session() as sess:
        assert sess.run(op, {x: 2.5}) is None
    assert capsys.readouterr().err == "x =|2.5|[[1.5 2]\n [3 4]]\n"
    long = tf.print(tf.range(10), summarize=2, output_stream="stdout")
    with tf.Session() as sess:
        sess.run(long)
    assert capsys.readouterr().out == "[0 1 ... 8 9]\n"
    with pytest.raises(ValueError, match="output stream"):
        tf.print(x, output_stream=object())


def test_print_inside_control_dependencies(capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.constant(3.0)
    pr = tf.print("side effect")
    with tf.control_dependencies([pr]):
        y = tf.identity(x)
    with tf.Session() as sess:
        assert sess.run(y) == 3.0
    assert capsys.readouterr().err == "side effect\n"


# -- check_numerics ---------------------------------------------------------------------------------------


def test_check_numerics() -> None:
    x = tf.placeholder(tf.float32, [2])
    c = tf.debugging.check_numerics(x, "bad x")
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(c, {x: [1, 2]}), [1, 2])
        with pytest.raises(tf.errors.InvalidArgumentError, match="bad x : Tensor had NaN values") as e:
            sess.run(c, {x: [1, np.nan]})
        assert "CheckNumerics" in str(e.value)
        with pytest.raises(tf.errors.InvalidArgumentError, match="Tensor had Inf values"):
            sess.run(c, {x: [np.inf, 1]})
    assert tf.check_numerics is tf.debugging.check_numerics
    with pytest.raises(TypeError):
        tf.check_numerics(tf.constant([1, 2]), "ints")


def test_check_numerics_gradient_checks_the_gradient() -> None:
    x = tf.placeholder(tf.float64, [2])
    y = tf.check_numerics(x, "fwd") * tf.constant([1.0, np.inf], tf.float64)
    g, = tf.gradients(tf.reduce_sum(y), [x])
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="detected in gradient. fwd"):
            sess.run(g, {x: [1.0, 1.0]})


# -- Assert and assert_* ---------------------------------------------------------------------------------


def test_assert_op() -> None:
    x = tf.placeholder(tf.int32, [])
    a = tf.Assert(x > 0, ["x must be positive", x])
    assert registry.get_opdef("Assert").kind == registry.STATEFUL
    with tf.control_dependencies([a]):
        y = tf.identity(x)
    with tf.Session() as sess:
        assert sess.run(y, {x: 4}) == 4
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"assertion failed: \[x must be positive\] \[-3\]"):
            sess.run(y, {x: -3})
    with pytest.raises(TypeError):
        tf.Assert(tf.constant(1), [])


@pytest.mark.parametrize("fn,ok,bad", [
    (tf.assert_equal, ([1, 2], [1, 2]), ([1, 2], [1, 3])),
    (tf.debugging.assert_equal, (3, 3), (3, 4)),
    (tf.assert_less, ([1, 2], [2, 3]), ([1, 2], [2, 2])),
    (tf.assert_greater, ([3], [2]), ([2], [2])),
    (tf.assert_less_equal, ([2], [2]), ([3], [2])),
    (tf.assert_greater_equal, ([2], [2]), ([1], [2])),
    (tf.assert_none_equal, ([1], [2]), ([2], [2])),
])
def test_binary_asserts(fn, ok, bad) -> None:  # type: ignore[no-untyped-def]
    x = tf.placeholder(tf.int32, None)
    y = tf.placeholder(tf.int32, None)
    op = fn(x, y, message="custom")
    with tf.Session() as sess:
        sess.run(op, {x: ok[0], y: ok[1]})
        with pytest.raises(tf.errors.InvalidArgumentError, match="custom") as e:
            sess.run(op, {x: bad[0], y: bad[1]})
    assert "did not hold element-wise" in str(e.value)


def test_assert_on_constants_fails_at_build_time() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="did not hold"):
        tf.assert_equal(tf.constant([1, 2]), tf.constant([1, 3]))
    tf.assert_equal(tf.constant([1, 2]), [1, 2])  # passes statically: builds fine


@pytest.mark.parametrize("fn,ok,bad", [
    (tf.assert_positive, [1.0, 2.0], [1.0, 0.0]),
    (tf.assert_non_negative, [0.0, 2.0], [-1.0, 2.0]),
    (tf.assert_negative, [-1.0], [0.0]),
    (tf.assert_non_positive, [0.0], [0.5]),
])
def test_unary_asserts(fn, ok, bad) -> None:  # type: ignore[no-untyped-def]
    x = tf.placeholder(tf.float32, [None])
    op = fn(x)
    with tf.Session() as sess:
        sess.run(op, {x: ok})
        sess.run(op, {x: np.zeros(0, np.float32)} if fn in (tf.assert_non_negative, tf.assert_non_positive)
                 else {x: ok})
        with pytest.raises(tf.errors.InvalidArgumentError, match="did not hold element-wise"):
            sess.run(op, {x: bad})


def test_assert_rank() -> None:
    with pytest.raises(ValueError, match="must have rank 2"):
        tf.assert_rank(tf.constant([1, 2]), 2)
    tf.assert_rank(tf.constant([[1]]), 2)
    p = tf.placeholder(tf.float32)
    op = tf.debugging.assert_rank(p, 1)
    with tf.Session() as sess:
        sess.run(op, {p: [1.0]})
        with pytest.raises(tf.errors.InvalidArgumentError, match="must have rank"):
            sess.run(op, {p: [[1.0]]})
    with pytest.raises(ValueError, match="at least 3"):
        tf.assert_rank_at_least(tf.constant([1]), 3)
    with pytest.raises(TypeError, match="must be of type int64"):
        tf.assert_type(tf.constant(1), tf.int64)


# -- cond --------------------------------------------------------------------------------------------------


def test_cond_picks_a_branch() -> None:
    x = tf.placeholder(tf.float32, [])
    y = tf.cond(x > 0, lambda: x * 2, lambda: x - 1)
    assert y.op.type == "Merge" and y.shape.as_list() == [] and y.dtype == tf.float32
    with tf.Session() as sess:
        assert sess.run(y, {x: 3.0}) == 6.0
        assert sess.run(y, {x: -3.0}) == -4.0


def test_untaken_branch_stateful_ops_do_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.placeholder(tf.float32, [])
    v = tf.Variable(0.0)
    w = tf.Variable(0.0)

    def true_fn() -> tf.Tensor:
        inc = tf.assign_add(v, 1.0)
        with tf.control_dependencies([inc]):
            return tf.Print(x * 2, [x], "in true: ")

    def false_fn() -> tf.Tensor:
        w.assign_add(10.0)  # built but not connected: never runs
        return tf.identity(tf.assign_add(w, 1.0))

    y = tf.cond(x > 0, true_fn, false_fn)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        capsys.readouterr()
        assert sess.run(y, {x: 3.0}) == 6.0
        assert sess.run([v, w]) == [1.0, 0.0]
        assert sess.run(y, {x: -3.0}) == 1.0
        assert sess.run([v, w]) == [1.0, 1.0]
    assert capsys.readouterr().err == "in true: 3\n"


def test_cond_constants_and_random_ops_in_branches_are_gated() -> None:
    x = tf.placeholder(tf.bool, [])
    y = tf.cond(x, lambda: tf.constant(1.0), lambda: tf.random_uniform([]) + 5.0)
    with tf.Session() as sess:
        assert sess.run(y, {x: True}) == 1.0
        assert 5.0 <= sess.run(y, {x: False}) < 6.0


def test_nested_cond() -> None:
    x = tf.placeholder(tf.float32, [])
    v = tf.Variable(0.0)

    def inner_true() -> tf.Tensor:
        with tf.control_dependencies([tf.assign_add(v, 1.0)]):
            return x * 100

    z = tf.cond(x > 0, lambda: tf.cond(x > 10, inner_true, lambda: x * 10), lambda: tf.constant(-1.0))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert [sess.run(z, {x: t}) for t in (20.0, 5.0, -1.0)] == [2000.0, 50.0, -1.0]
        assert sess.run(v) == 1.0


def test_nested_cond_with_outer_predicate_does_not_leak() -> None:
    x = tf.placeholder(tf.float32, [])
    p = tf.placeholder(tf.bool, [])
    v = tf.Variable(0.0)

    def inner() -> tf.Tensor:
        return tf.cond(p, lambda: tf.assign_add(v, 1.0), lambda: tf.identity(x))

    z = tf.cond(x > 0, inner, lambda: x)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(z, {x: -2.0, p: True}) == -2.0
        assert sess.run(v) == 0.0  # the inner true branch sits in the untaken outer branch
        assert sess.run(z, {x: 2.0, p: True}) == 1.0
        assert sess.run(v) == 1.0


def test_cond_structures() -> None:
    x = tf.placeholder(tf.float32, [])
    a, b = tf.cond(x > 0, lambda: (x, 1), lambda: (x * 0, 2))
    d = tf.cond(x > 0, lambda: {"p": x, "q": [x + 1]}, lambda: {"p": -x, "q": [x - 1]})
    Pair = collections.namedtuple("Pair", "u v")
    nt = tf.cond(x > 0, lambda: Pair(x, x), lambda: Pair(-x, -x))
    single = tf.cond(x > 0, lambda: [x], lambda: [-x])
    strict = tf.cond(x > 0, lambda: [x], lambda: [-x], strict=True)
    assert isinstance(single, tf.Tensor) and isinstance(strict, list)
    with tf.Session() as sess:
        assert sess.run([a, b], {x: 4.0}) == [4.0, 1]
        assert sess.run([a, b], {x: -4.0}) == [0.0, 2]
        got = sess.run(d, {x: -1.0})
        assert got["p"] == 1.0 and got["q"] == [-2.0]
        assert isinstance(nt, Pair) and sess.run(nt.v, {x: -3.0}) == 3.0


def test_cond_returning_outside_tensor_and_op() -> None:
    x = tf.placeholder(tf.float32, [])
    y = tf.constant(7.0)
    r = tf.cond(x > 0, lambda: y, lambda: x)
    v = tf.Variable(0.0)
    op = tf.cond(x > 0, lambda: tf.assign_add(v, 1.0).op, lambda: tf.no_op())
    assert isinstance(op, tf.Operation)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(r, {x: 1.0}) == 7.0 and sess.run(r, {x: -1.0}) == -1.0
        sess.run(op, {x: -1.0})
        assert sess.run(v) == 0.0
        sess.run(op, {x: 1.0})
        assert sess.run(v) == 1.0


def test_fetching_a_dead_tensor_is_an_error() -> None:
    x = tf.placeholder(tf.float32, [])
    inside: list[tf.Tensor] = []

    def true_fn() -> tf.Tensor:
        inside.append(x * 3)
        return inside[0]

    y = tf.cond(x > 0, true_fn, lambda: x)
    with tf.Session() as sess:
        assert sess.run(inside[0], {x: 1.0}) == 3.0
        with pytest.raises(tf.errors.InvalidArgumentError, match="branch of tf.cond that was not taken"):
            sess.run(inside[0], {x: -1.0})
        assert sess.run(y, {x: -1.0}) == -1.0


def test_cond_errors() -> None:
    x = tf.placeholder(tf.float32, [])
    with pytest.raises(TypeError, match="Python bool"):
        tf.cond(True, lambda: x, lambda: x)
    with pytest.raises(TypeError, match="callable"):
        tf.cond(x > 0, x, lambda: x)
    with pytest.raises(ValueError, match="must have a return value"):
        tf.cond(x > 0, lambda: None, lambda: x)
    with pytest.raises(ValueError, match="same type"):
        tf.cond(x > 0, lambda: x, lambda: tf.constant(1))
    with pytest.raises(ValueError, match="same structure"):
        tf.cond(x > 0, lambda: (x, x), lambda: x)
    with pytest.raises(ValueError, match="rank 0"):
        tf.cond(tf.constant([True, False]), lambda: x, lambda: x)
    p = tf.placeholder(tf.bool)
    y = tf.cond(p, lambda: x, lambda: x)
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="scalar"):
            sess.run(y, {p: [True, False], x: 1.0})


def test_cond_shapes_merge() -> None:
    x = tf.placeholder(tf.float32, [None])
    y = tf.cond(x[0] > 0, lambda: tf.zeros([3, 2]), lambda: tf.zeros([3, 5]))
    assert y.shape.as_list() == [3, None]
    z = tf.cond(x[0] > 0, lambda: tf.zeros([3]), lambda: tf.zeros([3, 1]))
    assert z.shape.ndims is None


def test_cond_gradient() -> None:
    x = tf.placeholder(tf.float64, [])
    y = tf.cond(x > 0, lambda: x * x, lambda: -3.0 * x)
    g, = tf.gradients(y + x, [x])
    with tf.Session() as sess:
        assert sess.run(g, {x: 3.0}) == 7.0
        assert sess.run(g, {x: -2.0}) == -2.0
