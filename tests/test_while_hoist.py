"""Capture gradients of a backward loop summed after it (compiled) against the per-iteration sum
(interpreted) and finite differences: every MatMul transpose combination, a bias, zero iterations."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from tests.gradcheck import numeric_grad


def _loop_grads(ta: bool, tb: bool, n_iter: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], str]:
    rng = np.random.RandomState(1)
    x0 = rng.randn(3, 4)
    w0 = rng.randn(4, 4) * 0.4
    b0 = rng.randn(4) * 0.1
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [3, 4])
        w = tf.Variable(w0)
        b = tf.Variable(b0)

        def body(i, h):
            hh = tf.transpose(h) if ta else h
            return i + 1, tf.tanh(tf.nn.bias_add(tf.matmul(hh, w, transpose_a=ta, transpose_b=tb), b))

        _, h = tf.while_loop(lambda i, h: i < n_iter, body, [0, x])
        loss = tf.reduce_sum(h * h * tf.constant(np.arange(12.0).reshape(3, 4)))
        grads = tf.gradients(loss, [x, w, b])
        res = []
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
                s.run(tf.global_variables_initializer())
                res.append(s.run(grads, {x: x0}))
                if jit:
                    num = [numeric_grad(s, loss, [x, w, b], [x0, w0, b0], k) for k in range(3)]
        text = str(tf.explain(grads, {x: x0}))
    return res[0], res[1], num, text


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_hoisted_weight_gradients_match_interpreter_and_finite_differences(ta: bool, tb: bool) -> None:
    got, want, num, text = _loop_grads(ta, tb, 5)
    for g, w, nm in zip(got, want, num):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(g, nm, rtol=1e-5, atol=1e-7)
    assert "hoisted" in text and "(MatMul)" in text and "(Sum)" in text and "one GEMM over all iterations" in text


def test_zero_iterations_give_zero_capture_gradients() -> None:
    got, want, _, _ = _loop_grads(False, False, 0)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert not got[1].any() and not got[2].any()


def test_interpreter_sums_per_iteration() -> None:
    from jitflow.ops.while_loop import body_of

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 3])
        w = tf.Variable(np.ones((3, 3), np.float32))
        _, h = tf.while_loop(lambda i, h: i < 2, lambda i, h: (i + 1, tf.matmul(h, w)), [0, x])
        (gw,) = tf.gradients(tf.reduce_sum(h), [w])
        with tf.Session(config=tf.ConfigProto(jit=False)) as s:
            s.run(tf.global_variables_initializer())
            v = s.run(gw, {x: np.ones((2, 3), np.float32)})
            grad_op = next(op for op in tf.get_default_graph().get_operations() if op.type == "WhileGrad")
            assert "hoisted" not in body_of(grad_op).plan(s, "grad").report
        np.testing.assert_allclose(v, np.full((3, 3), 12.0, np.float32))  # x^T (1 w^T) + (x w)^T 1


def test_transposed_capture_copied_once_per_loop_run() -> None:
    from jitflow.compiler.loop_invariants import InvariantTransposeMatMul
    from jitflow.ops.while_loop import body_of

    rng = np.random.RandomState(2)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [2, 3])
        w = tf.placeholder(tf.float64, [3, 3])
        _, h = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w, transpose_b=True))),
                             [0, x])
        loss = tf.reduce_sum(h * h)
        gx, gw = tf.gradients(loss, [x, w])
        xv, wv = rng.randn(2, 3), rng.randn(3, 3)
        with tf.Session(config=tf.ConfigProto(jit=False)) as s:
            want = [s.run([h, gx, gw], {x: xv, w: wv * k}) for k in (1.0, -2.0)]
        with tf.Session() as s:
            first = s.run([h, gx, gw], {x: xv, w: wv})
            wv *= -2.0  # the same array, changed in place: the next run must not reuse the old copy
            second = s.run([h, gx, gw], {x: xv, w: wv})
            while_op = next(op for op in tf.get_default_graph().get_operations() if op.type == "While")
            wrapped = [st for st in body_of(while_op).plan(s, "body").steps
                       if isinstance(st, InvariantTransposeMatMul)]
        assert len(wrapped) == 1
        for got, exp in zip((first, second), want):
            for g, e in zip(got, exp):
                np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(st.booleans(), st.booleans(), st.lists(st.integers(1, 5), min_size=1, max_size=6), st.integers(1, 4),
       st.integers(1, 4))
def test_stash_sums_equal_per_iteration_sums(ta: bool, tb: bool, ks: list[int], m: int, n: int) -> None:
    """One GEMM over operands stacked along the contraction axis (whose length may change per iteration)
    equals the sum of the per-iteration products; one column sum equals the sum of column sums."""
    from jitflow.ops.while_hoist import Hoisted, Stash

    rng = np.random.default_rng(len(ks) * 100 + m * 10 + n)
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float64, [None, None])
        b = tf.placeholder(tf.float64, [None, None])
        mm = tf.matmul(a, b, transpose_a=ta, transpose_b=tb).op
        colsum = tf.reduce_sum(a, axis=0).op
    stash = Stash([Hoisted(0, mm), Hoisted(1, colsum)])
    want_mm = np.zeros((m, n))
    want_cs = np.zeros(m)
    for k in ks:
        av = rng.normal(size=(k, m) if ta else (m, k))
        bv = rng.normal(size=(n, k) if tb else (k, n))
        cv = rng.normal(size=(k, m))
        want_mm += (av.T if ta else av) @ (bv.T if tb else bv)
        want_cs += cv.sum(axis=0)
        stash.add([av, bv, cv])
    got = stash.finish()
    np.testing.assert_allclose(got[0], want_mm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want_cs, rtol=1e-12, atol=1e-12)


def test_stash_reports_a_size_mismatch_as_matmul_does() -> None:
    from jitflow.ops.while_hoist import Hoisted, Stash

    with tf.Graph().as_default():
        mm = tf.matmul(tf.placeholder(tf.float32, None), tf.placeholder(tf.float32, None), transpose_a=True).op
    stash = Stash([Hoisted(0, mm)])
    stash.add([np.ones((3, 2), np.float32), np.ones((4, 5), np.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Matrix size-incompatible: In\[0\]: \[2, 3\], "
                                                             r"In\[1\]: \[4, 5\]"):
        stash.finish()


def test_an_operand_of_two_hoisted_gradients_is_kept_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bias's and the weights' gradients are both summed after the loop from the same per-iteration
    value (the pre-activation's gradient): the compiled loop keeps it once, and both sums stay right."""
    from jitflow.ops import while_native_grad as wng

    made: list = []
    init = wng.GradProgram.__init__

    def spy(self: object, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(wng.GradProgram, "__init__", spy)
    got, want, num, _ = _loop_grads(False, False, 5)
    for g, w, nm in zip(got, want, num):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(g, nm, rtol=1e-5, atol=1e-7)
    assert made and any(gp.same_as for gp in made)
