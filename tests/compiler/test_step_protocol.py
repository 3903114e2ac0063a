"""Every step kind of representative CPU plans implements the `Step` protocol (`compiler/step.py`)."""
from __future__ import annotations

import numpy as np

import jitflow as tf
from jitflow.ops.while_loop import body_of
from tests.compiler.helpers import last_plan
from tests.compiler.step_checks import check_plan


def _run(fetches: object, feed: dict, jit: bool = True, init: bool = True) -> set[tuple[str, str]]:
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        if init:
            sess.run(tf.global_variables_initializer())
        sess.run(fetches, feed)
        plan = last_plan(sess)
        seen = check_plan(plan)
        for op in plan.ops:
            if op.type == "While":  # the loop's cond and body sub-plans, compiled or interpreted
                for kind in ("cond", "body"):
                    seen |= check_plan(body_of(op).plan(sess, kind))
        return seen


def test_training_plan_steps() -> None:
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 8], name="x")
        y = tf.placeholder(tf.int32, [None], name="y")
        w = tf.Variable(rng.standard_normal((8, 10)).astype(np.float32), name="w")
        b = tf.Variable(np.zeros(10, np.float32), name="b")
        h = tf.nn.relu(tf.matmul(x, w) + b)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h))
        probs = tf.identity(tf.nn.softmax(h), name="probs")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        feed = {x: rng.standard_normal((32, 8)).astype(np.float32), y: rng.integers(0, 10, 32).astype(np.int32)}
        seen = _run([train, loss, probs, w], feed)
    kinds = {k for k, _ in seen}
    assert {"op", "cluster", "matmul", "sparse_xent", "xent_grad", "softmax"} <= kinds, kinds
    assert ("cluster", "cpu") in seen and ("op", "interp") in seen


def test_conv_plan_steps() -> None:
    rng = np.random.default_rng(1)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 8, 8, 3], name="x")
        k = tf.Variable(rng.standard_normal((3, 3, 3, 4)).astype(np.float32), name="k")
        b = tf.Variable(np.zeros(4, np.float32), name="b")
        y = tf.nn.max_pool(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME"), b)),
                           [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
        loss = tf.reduce_sum(y * y)
        grads = tf.gradients(loss, [x, k])
        seen = _run([loss, *grads], {x: rng.standard_normal((2, 8, 8, 3)).astype(np.float32)})
    assert ("window", "cpu") in seen, seen


def test_interpreted_plan_steps() -> None:
    """Interpreted plans: one-output and multi-output ops, `cond` (dead-aware steps) and a while loop."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [4], name="x")
        a, b = tf.split(x, 2)
        c = tf.cond(tf.reduce_sum(a) > 0, lambda: a * 2.0, lambda: b - 1.0)
        _, s = tf.while_loop(lambda i, s: i < 3, lambda i, s: (i + 1, s + c), [tf.constant(0), tf.zeros([2])])
        interpreted = _run([c, s], {x: np.arange(4, dtype=np.float32)}, jit=False, init=False)
        compiled = _run([c, s], {x: np.arange(4, dtype=np.float32)}, init=False)
    assert interpreted == {("op", "interp")}, interpreted
    assert ("cluster", "cpu") in compiled, compiled  # the loop body's addition


def test_slice_and_loop_plan_steps() -> None:
    """Split/concat steps, and a loop body whose MatMul reads a loop-invariant weight."""
    rng = np.random.default_rng(2)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [4, 6], name="x")
        a, b = tf.split(x, 2, axis=1)
        y = tf.concat([b, a * 2.0], axis=1)
        w = tf.constant(rng.standard_normal((6, 6)).astype(np.float32))
        _, h = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w, transpose_b=True))),
                             [tf.constant(0), y])
        seen = _run([y, h], {x: rng.standard_normal((4, 6)).astype(np.float32)}, init=False)
    assert {"split", "concat", "matmul"} <= {k for k, _ in seen}, seen
