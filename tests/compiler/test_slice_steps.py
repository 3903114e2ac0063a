"""Split, SplitV and ConcatV2 light steps against the interpreter, and their errors."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler.slice_steps import ConcatStep, SplitStep
from tests.compiler.helpers import assert_same, run_both


def test_split_concat_match_interpreter_and_take_light_steps() -> None:
    rng = np.random.default_rng(0)
    x = tf.placeholder(tf.float32, [None, 12])
    y = tf.placeholder(tf.float32, [None, 5])
    a, b, c = tf.split(x, 3, axis=1)
    p, q = tf.split(x, [7, 5], axis=-1)
    cat = tf.concat([a * 2.0, q, y], axis=-1)
    cat0 = tf.concat([b, c], 0)
    fetches = [a, b, c, p, q, cat, cat0, tf.reduce_sum(cat * cat)]
    feed = {x: rng.normal(size=(4, 12)).astype(np.float32), y: rng.normal(size=(4, 5)).astype(np.float32)}
    got, want, plan = run_both(fetches, feed)
    for g, w in zip(got, want):
        assert_same(g, w)
    kinds = [type(st) for st in plan.steps]
    assert kinds.count(SplitStep) == 2 and kinds.count(ConcatStep) == 2


def test_light_steps_raise_the_reference_errors() -> None:
    x = tf.placeholder(tf.float32, [None, None])
    y = tf.placeholder(tf.float32, [None, None])
    parts = tf.split(x, 2, axis=1)
    cat = tf.concat([x, y], 1)
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="evenly divide"):
            sess.run(parts, {x: np.ones((2, 3), np.float32)})
        with pytest.raises(tf.errors.InvalidArgumentError, match="Dimensions of inputs should match"):
            sess.run(cat, {x: np.ones((2, 3), np.float32), y: np.ones((3, 3), np.float32)})
        got = sess.run(parts + [cat], {x: np.ones((2, 4), np.float32), y: np.zeros((2, 1), np.float32)})
    assert [g.shape for g in got] == [(2, 2), (2, 2), (2, 5)]


def test_gradients_through_split_and_concat() -> None:
    x = tf.placeholder(tf.float64, [3, 6])
    a, b = tf.split(x, [2, 4], 1)
    loss = tf.reduce_sum(tf.concat([b * b, tf.tanh(a)], 1))
    (g,) = tf.gradients(loss, [x])
    xv = np.random.default_rng(1).normal(size=(3, 6))
    got, want, _ = run_both(g, {x: xv})
    assert_same(got, want)


def test_loop_plans_with_light_and_invariant_steps_keep_the_step_protocol() -> None:
    from jitflow.ops.while_loop import body_of
    from tests.compiler.step_checks import check_plan

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 6])
        w = tf.Variable(np.ones((6, 6), np.float32) * 0.1)

        def body(i, h):
            a, b = tf.split(tf.matmul(h, w, transpose_b=True), 2, axis=1)
            return i + 1, tf.concat([tf.tanh(a), b], 1)

        _, h = tf.while_loop(lambda i, h: i < 3, body, [0, x])
        (gx,) = tf.gradients(tf.reduce_sum(h), [x])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(gx, {x: np.ones((2, 6), np.float32)})
            ops = tf.get_default_graph().get_operations()
            loop = next(op for op in ops if op.type == "While")
            grad = next(op for op in ops if op.type == "WhileGrad")
            body_plan = body_of(loop).plan(sess, "body")
            seen = check_plan(body_plan) | check_plan(body_of(grad).plan(sess, "grad"))
            assert any(type(st).__name__ == "InvariantTransposeMatMul" for st in body_plan.steps)
    assert {("split", "cpu"), ("concat", "cpu"), ("matmul", "cpu")} <= seen, seen
