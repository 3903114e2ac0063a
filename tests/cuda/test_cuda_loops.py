"""A while_loop placed on /gpu:0 (CUDA simulator): the body's clusters are CUDA clusters, the loop state
stays on the device across iterations (what crosses per run does not grow with the iteration count), and
values and gradients equal the interpreter's."""
from __future__ import annotations

from typing import Any

import numpy as np

import jitflow as tf
from jitflow.ops.while_loop import body_of
from tests.compiler.helpers import assert_same
from tests.cuda.helpers import backends, needs_cuda

pytestmark = needs_cuda

X0 = np.linspace(-1, 1, 6).astype(np.float32).reshape(2, 3)


def _both(fetches: Any, feed: dict, runs: int = 1) -> list[Any]:
    """The fetches compiled (run `runs` times) and interpreted, in sessions with initialized variables."""
    results = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
            s.run(tf.global_variables_initializer())
            for _ in range(runs):
                res = s.run(fetches, feed)
            results.append(res)
    return results


def test_loop_on_gpu_matches_interpreter():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 3])
        with tf.device("/gpu:0"):
            w = tf.Variable(np.full((3, 3), 0.3, np.float32))
            _, h = tf.while_loop(lambda i, h: i < 4, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w) + x)), [0, x])
            loss = tf.reduce_sum(h * h)
            grads = tf.gradients(loss, [x, w])
        got, want = _both([h, *grads], {x: X0})
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            s.run(h, {x: X0})
            assert "cuda" in backends(body_of(h.op).plan(s, "body"))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _rnn_loop(iters: int) -> tuple[Any, Any]:
    x = tf.placeholder(tf.float32, [2, 3])
    with tf.device("/gpu:0"):
        w = tf.Variable(np.full((3, 3), 0.3, np.float32))
        _, h, c = tf.while_loop(lambda i, h, c: i < iters,
                                lambda i, h, c: (i + 1, tf.tanh(tf.matmul(h, w) + x), c + tf.reduce_sum(h, axis=0)),
                                [0, x, tf.zeros([3])])
    return x, [h, c]


def _transfers(build: Any, iters: int, host_copies: list, uploads: list) -> tuple[list, list]:
    """(host copies, uploads) of a warm run of `build(iters)`'s fetches; its values checked against the
    interpreter's."""
    with tf.Graph().as_default():
        x, fetches = build(iters)
        got, want = _both(fetches, {x: X0})
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            s.run(fetches, {x: X0})  # plans built, kernels compiled
            host_copies.clear()
            uploads.clear()
            s.run(fetches, {x: X0})
            seen = (sorted(host_copies), sorted(uploads))
    for a, b in zip(got, want):
        assert_same(a, b, rtol=2e-5, atol=1e-6)
    return seen


def test_loop_state_stays_on_the_device(host_copies: list, uploads: list) -> None:
    seen = {iters: _transfers(_rnn_loop, iters, host_copies, uploads) for iters in (2, 7)}
    assert seen[2] == seen[7], f"transfers grow with the iterations: {seen}"
    copies, ups = seen[7]
    assert copies == [(2, 3), (3,)], "only the final values leave the device"
    # x (the first h and a capture: one upload), c's start, w: once per run
    assert ups == [(2, 3), (3,), (3, 3)], f"the loop's inputs and captures, once per run: {ups}"


def _rnn_grads(iters: int) -> tuple[Any, Any]:
    x, outs = _rnn_loop(iters)
    w = tf.trainable_variables()[0]
    with tf.device("/gpu:0"):  # (gradient ops go where the caller's device scope says, as in TF)
        return x, tf.gradients(tf.reduce_sum(outs[0] * outs[0]) + tf.reduce_sum(outs[1]), [x, w])


def test_gradient_loop_keeps_its_state_on_the_device(host_copies: list, uploads: list) -> None:
    seen = {iters: _transfers(_rnn_grads, iters, host_copies, uploads) for iters in (2, 6)}
    assert seen[2] == seen[6], f"transfers grow with the iterations: {seen}"


def test_condition_on_the_device_crosses_once_per_iteration(host_copies: list) -> None:
    x = tf.placeholder(tf.float32, [4])
    with tf.device("/gpu:0"):
        y = tf.while_loop(lambda v: tf.reduce_sum(v) < 100.0, lambda v: v * 2.0 + 1.0, [x])
    xv = np.array([0.5, 1.0, -0.25, 2.0], np.float32)
    got, want = _both(y, {x: xv})
    assert_same(got, want)
    n_iter = int(np.log2((100 + 4) / (xv.sum() + 4))) + 2  # sum doubles (+4) per iteration
    assert host_copies.count(()) in (n_iter, n_iter + 1, n_iter + 2) and host_copies.count((4,)) <= 2


def test_loop_with_a_host_op_and_maximum_iterations() -> None:
    x = tf.placeholder(tf.float32, [3])
    with tf.device("/gpu:0"):
        def body(i: Any, v: Any) -> tuple[Any, Any]:
            u = tf.py_func(lambda a: (a[::-1] * 0.5).astype(np.float32), [tf.exp(v * 0.1)], tf.float32)
            u.set_shape([3])
            return i + 1, tf.sin(u) + v

        _, y = tf.while_loop(lambda i, v: i < 100, body, [0, x], maximum_iterations=5)
        g = tf.gradients(tf.reduce_sum(y * y), x)[0]
    got, want = _both([y], {x: np.array([0.1, -0.3, 0.7], np.float32)})
    assert_same(got[0], want[0], rtol=1e-5)
    assert g is not None


def test_explain_shows_the_loop_state_on_the_device() -> None:
    x, outs = _rnn_loop(3)
    report = tf.explain(outs, {x: X0})
    body = next(lp["report"] for lp in report.loops if lp["kind"] == "body")
    assert [b for b in (c["backend"] for c in body.clusters)].count("cuda") >= 2
    assert len(body.to_dict()["loop_state"]) == 2  # h and c; the counter i stays on the host
    assert "loop state on the device: " in str(report)
