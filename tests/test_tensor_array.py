"""tf.TensorArray, tf.map_fn, tf.scan, tf.foldl/foldr: values, gradients, TF's errors."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf


def _fd_grad(sess, loss, x, x0, eps=1e-5):
    g = np.zeros_like(x0)
    for k in range(x0.size):
        d = np.zeros_like(x0)
        d.flat[k] = eps
        g.flat[k] = (sess.run(loss, {x: x0 + d}) - sess.run(loss, {x: x0 - d})) / (2 * eps)
    return g


def test_write_read_stack_gather_concat_size():
    with tf.Graph().as_default():
        ta = tf.TensorArray(tf.float32, size=3)
        ta = ta.write(0, [1.0, 2.0]).write(1, [3.0, 4.0]).write(2, [5.0, 6.0])
        ta2 = tf.TensorArray(tf.float32, size=0, dynamic_size=True, clear_after_read=False)
        ta2 = ta2.scatter([2, 0], tf.constant([[1.0], [2.0]])).write(1, [7.0])
        split = tf.TensorArray(tf.float32, size=2).split(tf.constant([1.0, 2.0, 3.0]), [1, 2])
        with tf.Session() as s:
            st, sz, r1 = s.run([ta.stack(), ta.size(), ta2.read(1)])
            np.testing.assert_allclose(st, [[1, 2], [3, 4], [5, 6]])
            assert sz == 3 and r1[0] == 7.0
            np.testing.assert_allclose(s.run(ta2.gather([2, 1])), [[1.0], [7.0]])
            np.testing.assert_allclose(s.run(ta2.concat()), [2.0, 7.0, 1.0])
            np.testing.assert_allclose(s.run(split.read(1)), [2.0, 3.0])
        assert ta.element_shape.as_list() == [2]


def test_errors():
    with tf.Graph().as_default():
        ta = tf.TensorArray(tf.float32, size=2).write(0, 1.0)
        r = ta.read(0)
        with tf.control_dependencies([r]):
            twice = ta.read(0) + 0.0
        with tf.Session() as s:
            with pytest.raises(tf.errors.InvalidArgumentError, match="index 5 but array size is: 2"):
                s.run(ta.read(5))
            with pytest.raises(tf.errors.InvalidArgumentError, match="not yet been written"):
                s.run(ta.read(1))
            with pytest.raises(tf.errors.InvalidArgumentError, match="twice"):
                s.run(twice)
            with pytest.raises(tf.errors.InvalidArgumentError, match="not resizeable"):
                s.run(ta.write(2, 1.0).stack())
        with pytest.raises(TypeError, match="dtype"):
            ta.write(1, tf.constant(1))


def test_loop_gradients_through_tensor_arrays():
    x0 = np.random.RandomState(1).randn(4, 3)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [4, 3])
        inp = tf.TensorArray(tf.float64, size=4).unstack(x)
        out = tf.TensorArray(tf.float64, size=4, clear_after_read=False)

        def body(t, h, o):
            h = tf.tanh(h * 0.5 + inp.read(t) * 2.0)
            return t + 1, h, o.write(t, h)

        _, h, o = tf.while_loop(lambda t, *_: t < 4, body, [0, tf.zeros([3], tf.float64), out])
        loss = tf.reduce_sum(o.stack() ** 2) + tf.reduce_sum(h) + tf.reduce_sum(o.gather([1, 1]))
        (gx,) = tf.gradients(loss, [x])
        with tf.Session() as s:
            np.testing.assert_allclose(s.run(gx, {x: x0}), _fd_grad(s, loss, x, x0), rtol=1e-5, atol=1e-8)


def test_map_fn_scan_folds():
    x0 = np.arange(1, 7, dtype=np.float64).reshape(3, 2)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [3, 2])
        m = tf.map_fn(lambda r: r * r, x)
        pair = tf.map_fn(lambda p: p[0] + p[1], (x, x * 10.0), dtype=tf.float64)
        sc = tf.scan(lambda a, r: a + r, x)
        sc_init = tf.scan(lambda a, r: a * r, x, initializer=tf.ones([2], tf.float64), reverse=True)
        fl = tf.foldl(lambda a, r: a - r, x)
        fr = tf.foldr(lambda a, r: a - r, x, initializer=tf.zeros([2], tf.float64))
        assert m.shape.as_list() == [3, 2]
        loss = tf.reduce_sum(sc * sc) + tf.reduce_sum(sc_init) + tf.reduce_sum(fl * fr)
        (gx,) = tf.gradients(loss, [x])
        with tf.Session() as s:
            r = s.run([m, pair, sc, sc_init, fl, fr], {x: x0})
            np.testing.assert_allclose(r[0], x0 ** 2)
            np.testing.assert_allclose(r[1], x0 * 11)
            np.testing.assert_allclose(r[2], np.cumsum(x0, 0))
            np.testing.assert_allclose(r[3], np.cumprod(x0[::-1], 0)[::-1])
            np.testing.assert_allclose(r[4], x0[0] - x0[1] - x0[2])
            np.testing.assert_allclose(r[5], -x0.sum(0))
            np.testing.assert_allclose(s.run(gx, {x: x0}), _fd_grad(s, loss, x, x0), rtol=1e-5, atol=1e-6)
