"""Common subexpressions (compiler/cse.py): computed once in compiled plans, with the interpreter's results."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf
from tests.compiler.helpers import assert_same, last_plan, run_both


def _dense(x: tf.Tensor) -> tf.Tensor:
    with tf.variable_scope("d", reuse=tf.AUTO_REUSE):
        return tf.nn.tanh(tf.layers.dense(x, 3))


def test_a_layer_applied_twice_to_one_input_runs_once() -> None:
    """dcgan's pattern: the same weights on the same tensor in two losses, trained by both."""
    tf.reset_default_graph()
    tf.set_random_seed(1)
    x = tf.placeholder(tf.float32, [None, 4])
    a, b = _dense(x), _dense(x)
    loss = tf.reduce_sum(a * a) + tf.reduce_mean(b)
    train = tf.train.AdamOptimizer(0.1).minimize(loss)
    feed = {x: np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)}
    got, want, plan = run_both([train, loss, a, b, *tf.trainable_variables()], feed, init=True)
    for g, w in zip(got[1:], want[1:]):
        assert_same(g, w, rtol=1e-6)
    removed = dict(plan.report["deduplicated"])
    assert removed["d_1/dense/MatMul"] == "d/dense/MatMul" and removed["d_1/Tanh"] == "d/Tanh"
    assert "deduplicated" in str(tf.explain([train, loss, a, b], feed))
    assert all(op.name != "d_1/dense/MatMul" for op in plan.ops)


def test_random_ops_are_never_merged() -> None:
    tf.reset_default_graph()
    r1, r2 = tf.random_uniform([4]), tf.random_uniform([4])
    with tf.Session() as sess:
        v1, v2 = sess.run([r1 + 0.0, r2 + 0.0])
        assert "deduplicated" not in last_plan(sess).report
    assert not np.array_equal(v1, v2)


def test_reads_before_and_after_an_assign_stay_apart() -> None:
    tf.reset_default_graph()
    v = tf.Variable(1.0)
    early = v.read_value() * 2.0
    asg = tf.assign(v, 5.0)
    with tf.control_dependencies([asg]):
        late = v.read_value() * 2.0
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run([early, late]) == [2.0, 10.0]


def test_a_fed_duplicate_keeps_the_fed_value() -> None:
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [3])
    a, b = tf.tanh(x), tf.tanh(x)
    c = a + b
    xv = np.array([0.1, 0.2, 0.3], np.float32)
    bv = np.array([5.0, 6.0, 7.0], np.float32)
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(c, {x: xv, b: bv}), np.tanh(xv) + bv, rtol=1e-6)
        np.testing.assert_allclose(sess.run([c, b], {x: xv})[0], 2 * np.tanh(xv), rtol=1e-6)


def test_graphs_with_control_flow_are_left_alone() -> None:
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [])
    y = tf.cond(x > 0, lambda: tf.square(x) + tf.square(x), lambda: x)
    with tf.Session() as sess:
        assert sess.run(y, {x: 3.0}) == 18.0
        assert "deduplicated" not in last_plan(sess).report


UNARY = [tf.negative, tf.tanh, tf.square, lambda t: t * 3.0]
BINARY = [tf.add, tf.multiply, tf.maximum]
node = st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 99), st.integers(0, 99))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(node, min_size=2, max_size=10), st.integers(0, 2**16))
def test_random_graphs_with_repeated_subexpressions(nodes, seed) -> None:  # type: ignore[no-untyped-def]
    """Each node is a new op, or (first flag) the same op on the same inputs as an earlier node: a
    duplicate that the compiled plan runs once, and whose gradient still sums both paths."""
    tf.reset_default_graph()
    x = tf.placeholder(tf.float64, [None, 3])
    w = tf.Variable(np.linspace(-1, 1, 3))
    pool = [x, x * w]
    recipes: list[tuple[int, int, int]] = []
    for again, k, i, j in nodes:
        if again and recipes:
            k, i, j = recipes[k % len(recipes)]
        else:
            k, i, j = k, i % len(pool), j % len(pool)
            recipes.append((k, i, j))
        a, b = pool[i], pool[j]
        pool.append(UNARY[k % len(UNARY)](a) if k < len(UNARY) else BINARY[k % len(BINARY)](a, b))
    loss = tf.add_n([tf.reduce_sum(t) for t in pool[1:]])
    grad = tf.gradients(loss, w)[0]
    feed = {x: np.random.default_rng(seed).uniform(-1, 1, (2, 3))}
    got, want, _ = run_both([*pool[1:], loss, grad], feed, init=True)
    for g, wv in zip(got, want):
        assert_same(g, wv, rtol=1e-12, atol=1e-12)
