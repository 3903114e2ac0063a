"""Compiled while loops (`ops/while_native.py`): every case against the interpreter on the same graph.

A loop compiles from its second run with the same input shapes (the first run replays it and learns the
shapes); `while_native.RUNS` counts the runs that went through the compiled loop.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler import native_program
from jitflow.ops import while_native


def _runs(build: Callable[[], tuple[list[Any], dict[Any, Any]]], jit: bool, n: int = 3) -> tuple[list, dict, Any]:
    """Runs the fetches of `build` `n` times; returns the results, the compiled-run counts and explain."""
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        fetches, feed = build()
        before = dict(while_native.RUNS)
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            res = [sess.run(fetches, feed) for _ in range(n)]
        runs = {k: v - before[k] for k, v in while_native.RUNS.items()}
        rep = tf.explain(fetches, feed) if jit else None
    return res, runs, rep


def _check(build: Callable[[], tuple[list[Any], dict[Any, Any]]], tol: float, grad: bool) -> Any:
    ref, _, _ = _runs(build, False)
    got, runs, rep = _runs(build, True)
    assert runs == {"forward": 2, "grad": 2 if grad else 0}
    for r_run, g_run in zip(ref, got):
        for r, g in zip(r_run, g_run):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=tol, atol=tol)
    return rep


def _lstm(dtype: Any, seq: bool, grad: bool) -> Callable[[], tuple[list[Any], dict[Any, Any]]]:
    def build() -> tuple[list[Any], dict[Any, Any]]:
        x = tf.placeholder(dtype, [3, 6, 4])
        cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.LSTMCell(5, dtype=dtype) for _ in range(2)])
        out, st = tf.nn.dynamic_rnn(cell, x, sequence_length=[6, 2, 4] if seq else None, dtype=dtype)
        fetches = [out, st[1].h, st[0].c]
        if grad:
            loss = tf.reduce_sum(out * out) + tf.reduce_sum(st[1].c)
            fetches += tf.gradients(loss, [*tf.trainable_variables(), x])
        xv = np.random.RandomState(0).randn(3, 6, 4).astype(dtype.as_numpy_dtype)
        return fetches, {x: xv}
    return build


@pytest.mark.parametrize("dtype,tol", [(tf.float32, 2e-5), (tf.float64, 1e-12)])
def test_lstm_forward_compiled(dtype: Any, tol: float) -> None:
    packed = native_program.PACKED_RUNS[0]
    rep = _check(_lstm(dtype, False, False), tol, False)
    text = str(rep)
    assert "body (compiled loop" in text and "2x GEMM" in text and "TensorArrayWriteV3" in text
    # the gate GEMMs multiply by the cell's kernel, a capture: packed once per run (kernels/packed_gemm.py)
    assert native_program.PACKED_RUNS[0] - packed == 2


@pytest.mark.parametrize("dtype,tol", [(tf.float32, 5e-5), (tf.float64, 1e-11)])
def test_lstm_gradients_with_sequence_length(dtype: Any, tol: float) -> None:
    rep = _check(_lstm(dtype, True, True), tol, True)
    assert "grad (compiled loop" in str(rep)


def test_gru_and_basic_rnn_gradients() -> None:
    def build() -> tuple[list[Any], dict[Any, Any]]:
        x = tf.placeholder(tf.float64, [2, 5, 3])
        cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.GRUCell(4, dtype=tf.float64),
                                            tf.nn.rnn_cell.BasicRNNCell(3, dtype=tf.float64)])
        out, _ = tf.nn.dynamic_rnn(cell, x, dtype=tf.float64)
        return [out, *tf.gradients(tf.reduce_sum(tf.sin(out)), [*tf.trainable_variables(), x])], \
            {x: np.random.RandomState(1).randn(2, 5, 3)}
    _check(build, 1e-11, True)


def test_maximum_iterations_stops_the_compiled_loop() -> None:
    def build() -> tuple[list[Any], dict[Any, Any]]:
        a = tf.placeholder(tf.float64, [4])
        i, r = tf.while_loop(lambda i, a: i < 100, lambda i, a: (i + 1, a * 1.5 + 1.0), [tf.constant(0), a],
                             maximum_iterations=7)
        return [i, r], {a: np.arange(4.0)}
    ref, _, _ = _runs(build, False)
    assert int(ref[0][0]) == 7
    _check(build, 0.0, False)


def test_scan_and_its_gradient() -> None:
    def build() -> tuple[list[Any], dict[Any, Any]]:
        x = tf.placeholder(tf.float32, [7, 3])
        w = tf.constant(np.random.RandomState(2).randn(3, 3).astype(np.float32))
        ys = tf.scan(lambda acc, xt: tf.tanh(tf.matmul(acc, w) + xt), tf.expand_dims(x, 1),
                     initializer=tf.zeros([1, 3]))
        return [ys, *tf.gradients(tf.reduce_sum(ys), [x])], {x: np.random.RandomState(3).randn(7, 3)}
    _check(build, 2e-5, True)


def test_body_that_cannot_compile_is_replayed_with_the_reason() -> None:
    def build() -> tuple[list[Any], dict[Any, Any]]:
        a = tf.placeholder(tf.float64, [3])

        def body(i: Any, v: Any) -> Any:
            y = tf.py_func(lambda z: z * 2.0, [v], tf.float64, stateful=False)
            y.set_shape([3])
            return i + 1, y

        _, r = tf.while_loop(lambda i, v: i < 4, body, [0, a])
        return [r], {a: np.ones(3)}
    ref, _, _ = _runs(build, False)
    got, runs, rep = _runs(build, True)
    assert runs == {"forward": 0, "grad": 0}
    np.testing.assert_array_equal(got[-1][0], ref[-1][0])
    assert "replayed per iteration: PyFunc" in str(rep)


def test_error_in_a_later_iteration_is_the_interpreters() -> None:
    """A TensorArray read past its end in the compiled loop: the loop is replayed, which raises TF's error."""
    with tf.Graph().as_default():
        n = tf.placeholder(tf.int32, [])
        ta = tf.TensorArray(tf.float32, size=4).unstack(tf.ones([4, 2]))
        _, s = tf.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, s + ta.read(i)), [0, tf.zeros([2])])
        before = dict(while_native.RUNS)
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(s, {n: 3}), [3.0, 3.0])
            np.testing.assert_array_equal(sess.run(s, {n: 4}), [4.0, 4.0])
            with pytest.raises(tf.errors.InvalidArgumentError, match="index 4 but array size is: 4"):
                sess.run(s, {n: 6})
            np.testing.assert_array_equal(sess.run(s, {n: 2}), [2.0, 2.0])
        assert while_native.RUNS["forward"] - before["forward"] == 2


def test_a_runaway_compiled_loop_can_be_interrupted() -> None:
    with tf.Graph().as_default():
        n = tf.placeholder(tf.int64, [])
        i, _ = tf.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v * 0.5 + 1.0),
                             [tf.constant(0, tf.int64), tf.zeros([3], tf.float64)])
        with tf.Session() as sess:
            assert sess.run(i, {n: 5}) == 5  # learns the loop's shapes
            assert sess.run(i, {n: 20000}) == 20000
            timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    sess.run(i, {n: 1 << 60})
            finally:
                timer.cancel()
            assert sess.run(i, {n: 7}) == 7  # the session still works


def test_replayed_gradient_reads_the_compiled_forward_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled forward loop whose backward loop is replayed: the history buffers read as per-iteration
    values (`NativeHistory`)."""
    from jitflow.ops import while_native_grad

    monkeypatch.setattr(while_native_grad, "run_grad", lambda *a, **k: None)
    ref, _, _ = _runs(_lstm(tf.float64, True, True), False)
    got, runs, _ = _runs(_lstm(tf.float64, True, True), True)
    assert runs == {"forward": 2, "grad": 0}
    for r, g in zip(ref[-1], got[-1]):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-11, atol=1e-11)


def test_dynamic_tensor_array_growing_past_its_size_is_replayed() -> None:
    """Rows past a dynamic TensorArray's size make the compiled loop stop; the replay grows the array."""
    def build() -> tuple[list[Any], dict[Any, Any]]:
        n = tf.placeholder(tf.int32, [])
        ta = tf.TensorArray(tf.float32, size=1, dynamic_size=True)

        def body(i: Any, t: Any) -> Any:
            return i + 1, t.write(i, tf.ones([2]) * tf.cast(i, tf.float32))

        _, out = tf.while_loop(lambda i, t: i < n, body, [0, ta])
        return [out.stack()], {n: 4}
    ref, _, _ = _runs(build, False)
    got, runs, rep = _runs(build, True)
    assert runs["forward"] == 0  # every compiled run stops at row 1 and is replayed
    assert "body (compiled loop" in str(rep)
    np.testing.assert_array_equal(got[-1][0], ref[-1][0])
    np.testing.assert_array_equal(ref[-1][0], np.repeat(np.arange(4.0), 2).reshape(4, 2))
