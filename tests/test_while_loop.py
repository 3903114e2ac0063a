"""tf.while_loop: results, nesting with cond, gradients (against finite differences), bad input."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import jitflow as tf
from tests.gradcheck import numeric_grad


def _run(fetches, feed=None, jit=True, init=True):
    with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
        if init:
            s.run(tf.global_variables_initializer())
        return s.run(fetches, feed)


def _both(fetches, feed=None):
    """Runs compiled and interpreted; they must agree. Returns the compiled result."""
    a = _run(fetches, feed, jit=True)
    b = _run(fetches, feed, jit=False)
    for x, y in zip(_flat(a), _flat(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    return a


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in _flat(v)]
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in _flat(x[k])]
    return [x]


def test_counter_and_product():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        i, y = tf.while_loop(lambda i, y: i < 4, lambda i, y: (i + 1, y * 2.0 + 1.0), [tf.constant(0), x])
        r = _both([i, y], {x: np.array([1.0, 2.0, 3.0], np.float32)})
        assert r[0] == 4
        v = np.array([1.0, 2.0, 3.0])
        for _ in range(4):
            v = v * 2 + 1
        np.testing.assert_allclose(r[1], v)


def test_nested_structures_and_single_var():
    Pair = collections.namedtuple("Pair", "a b")
    with tf.Graph().as_default():
        lv = {"n": tf.constant(0), "p": Pair(tf.constant(1.0), tf.constant([2.0, 3.0]))}
        (out,) = tf.while_loop(lambda d: d["n"] < 3,
                            lambda d: {"n": d["n"] + 1, "p": Pair(d["p"].a * 2, d["p"].b + d["p"].a)}, [lv])
        assert isinstance(out, dict) and isinstance(out["p"], Pair)
        r = _both(out)
        assert r["n"] == 3 and r["p"].a == 8.0
        np.testing.assert_allclose(r["p"].b, [2 + 1 + 2 + 4, 3 + 7])
        single = tf.while_loop(lambda v: v < 10, lambda v: v * 3, [tf.constant(1)])
        assert _run(single) == 27


def test_maximum_iterations_stops():
    with tf.Graph().as_default():
        r = tf.while_loop(lambda v: tf.constant(True), lambda v: v + 1, [tf.constant(0)], maximum_iterations=7)
        assert _run(r) == 7


def test_shape_invariants():
    with tf.Graph().as_default():
        x = tf.constant(np.zeros((1, 2), np.float32))
        body = lambda i, x: (i + 1, tf.concat([x, x], 0))  # noqa: E731
        with pytest.raises(ValueError, match="shape_invariants"):
            tf.while_loop(lambda i, x: i < 3, body, [tf.constant(0), x])
        with pytest.raises(ValueError, match="not compatible with the initial shape"):
            tf.while_loop(lambda i, x: i < 3, body, [tf.constant(0), x],
                          shape_invariants=[tf.TensorShape([]), tf.TensorShape([3, 2])])
        _, y = tf.while_loop(lambda i, x: i < 3, body, [tf.constant(0), x],
                             shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 2])])
        assert y.shape.as_list() == [None, 2]
        assert _both(y).shape == (8, 2)


def test_cond_must_be_bool_scalar():
    with tf.Graph().as_default():
        with pytest.raises(TypeError, match="bool"):
            tf.while_loop(lambda v: v, lambda v: v - 1, [tf.constant(3)])
        with pytest.raises(ValueError, match="rank 0"):
            tf.while_loop(lambda v: v > 0, lambda v: v - 1, [tf.constant([3, 4])])


def test_cond_in_while_and_while_in_cond():
    with tf.Graph().as_default():
        p = tf.placeholder(tf.bool, [])
        # Collatz steps of 6: 6 3 10 5 16 8 4 2 1 -> 8 steps
        steps, _ = tf.while_loop(lambda k, n: n > 1,
                                 lambda k, n: (k + 1, tf.cond(tf.equal(n % 2, 0), lambda: n // 2,
                                                              lambda: 3 * n + 1)), [0, tf.constant(6)])
        w = tf.cond(p, lambda: tf.while_loop(lambda v: v < 100, lambda v: v * 2, [tf.constant(3)]),
                    lambda: tf.constant(-1))
        assert _both(steps, {p: True}) == 8
        assert _both(w, {p: True}) == 192
        assert _both(w, {p: False}) == -1


def test_body_reads_and_assigns_variable():
    with tf.Graph().as_default():
        v = tf.Variable(0.0)
        total = tf.Variable(1.0)

        def body(i):
            with tf.control_dependencies([tf.assign_add(v, 1.0)]):
                return i + tf.cast(tf.assign_add(total, total * 0 + 1.0) > 0, tf.int32)

        r = tf.while_loop(lambda i: i < 4, body, [tf.constant(0)])
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            assert s.run(r) == 4
            assert s.run(v) == 4.0
            assert s.run(total) == 5.0


def test_nested_while():
    with tf.Graph().as_default():
        outer_n = tf.placeholder(tf.int32, [])

        def body(i, acc):
            inner = tf.while_loop(lambda j, a: j < i, lambda j, a: (j + 1, a + tf.cast(j, tf.float32)),
                                  [0, tf.constant(0.0)])[1]
            return i + 1, acc + inner

        _, acc = tf.while_loop(lambda i, a: i < outer_n, body, [0, tf.constant(0.0)])
        expected = sum(sum(range(i)) for i in range(6))
        assert _both(acc, {outer_n: 6}) == expected


def test_gradients_match_finite_differences():
    rng = np.random.RandomState(0)
    w0 = rng.randn(3, 3).astype(np.float64) * 0.5
    x0 = rng.randn(2, 3)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [2, 3])
        w = tf.Variable(w0)

        def body(i, h):
            return i + 1, tf.tanh(tf.matmul(h, w) + x)

        _, h = tf.while_loop(lambda i, h: i < 4, body, [0, x])
        loss = tf.reduce_sum(h * h)
        gx, gw = tf.gradients(loss, [x, w])
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
                s.run(tf.global_variables_initializer())
                lv, a, b = s.run([loss, gx, gw], {x: x0})

                np.testing.assert_allclose(a, numeric_grad(s, loss, [x], [x0], 0), rtol=1e-5, atol=1e-7)
                # the variable's gradient: feeding its value stands in for assigning it
                np.testing.assert_allclose(b, numeric_grad(s, loss, [x, w], [x0, w0], 1), rtol=1e-5, atol=1e-7)


def test_gradient_through_cond_in_loop_and_nested_loop():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [])

        def inner(v):
            return tf.while_loop(lambda j, u: j < 2, lambda j, u: (j + 1, u * v), [0, tf.constant(1.0, tf.float64)])[1]

        def body(i, y):
            y2 = tf.cond(y > 5.0, lambda: y * 0.5, lambda: y * x)
            return i + 1, y2 + inner(x)

        _, y = tf.while_loop(lambda i, y: i < 3, body, [0, x])
        (gx,) = tf.gradients(y, [x])
        with tf.Session() as s:
            for x0 in (1.3, 2.1):
                f = lambda v: s.run(y, {x: v})  # noqa: E731
                np.testing.assert_allclose(s.run(gx, {x: x0}), (f(x0 + 1e-5) - f(x0 - 1e-5)) / 2e-5, rtol=1e-5)


def test_back_prop_false_gives_no_gradient():
    with tf.Graph().as_default():
        x = tf.constant(2.0)
        _, y = tf.while_loop(lambda i, y: i < 2, lambda i, y: (i + 1, y * y), [0, x], back_prop=False)
        assert tf.gradients(y, [x]) == [None]


def test_explain_shows_loop_sub_plans():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [4])
        _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, tf.tanh(v * 0.5 + 1.0)), [0, x])
        (g,) = tf.gradients(y, [x])
        rep = tf.explain(g, {x: np.ones(4, np.float32)})
        kinds = [(lp["kind"], lp["report"].n_ops > 0) for lp in rep.loops]
        assert kinds == [("cond", True), ("body", True), ("grad", True)]
        body = rep.loops[1]["report"]
        assert any("while/Tanh" in c["ops"] for c in body.clusters)
        assert "compiled loop" in str(rep)
        assert {f["type"] for f in rep.fallbacks} == {"While", "WhileGrad"}


def test_property_matches_python_loop():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    with tf.Graph().as_default():
        n = tf.placeholder(tf.int32, [])
        a = tf.placeholder(tf.float64, [None])
        _, y, s = tf.while_loop(lambda i, y, s: i < n, lambda i, y, s: (i + 1, y * 0.9 + 1.0, s + tf.reduce_sum(y)),
                                [0, a, tf.constant(0.0, tf.float64)], shape_invariants=None)
        (ga,) = tf.gradients(s, [a])
        sess = tf.Session()

        @settings(max_examples=12, deadline=None)
        @given(st.integers(0, 12), st.lists(st.floats(-10, 10), min_size=1, max_size=5))
        def check(steps, vals):
            v = np.array(vals)
            yv, acc, grad = v.copy(), 0.0, np.zeros_like(v)
            for k in range(steps):
                acc += yv.sum()
                grad += 0.9 ** k
                yv = yv * 0.9 + 1.0
            r = sess.run([y, s, ga], {n: steps, a: v})
            np.testing.assert_allclose(r[0], yv, rtol=1e-12)
            np.testing.assert_allclose(r[1], acc, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(r[2], grad, rtol=1e-12)

        check()
        sess.close()


@pytest.mark.parametrize("jit", [False, True])
def test_runaway_loop_can_be_interrupted(jit):
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        pytest.skip("needs SIGALRM in the main thread")
    with tf.Graph().as_default():
        limit = tf.placeholder(tf.int32, [])
        r = tf.while_loop(lambda i: tf.logical_or(limit < 0, i < limit), lambda i: i + 1, [tf.constant(0)])

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGALRM, interrupt)
        with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
            for _ in range(3):  # every kernel and the compiled loop are built before the alarm can land
                assert s.run(r, {limit: 5}) == 5
            try:
                signal.setitimer(signal.ITIMER_REAL, 0.3)
                with pytest.raises(KeyboardInterrupt):
                    s.run(r, {limit: -1})  # never ends by itself
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            assert s.run(r, {limit: 5}) == 5  # the session (and its plans) still work
