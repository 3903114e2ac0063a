"""tf.clip_by_global_norm, tf.global_norm, tf.clip_by_norm against NumPy."""
from __future__ import annotations

import numpy as np

import jitflow as tf


def test_clip_by_global_norm_and_norms():
    a0, b0 = np.array([3.0, 4.0]), np.array([[12.0]])
    with tf.Graph().as_default():
        a, b = tf.constant(a0), tf.constant(b0)
        (ca, none, cb), n = tf.clip_by_global_norm([a, None, b], 6.5)
        assert none is None
        (ua, ub), _ = tf.clip_by_global_norm([a, b], 100.0)
        by_norm = tf.clip_by_norm(tf.constant([[3.0, 4.0], [0.0, 0.0]]), 1.0, axes=[1])
        with tf.Session() as s:
            r = s.run([ca, cb, n, ua, ub, tf.global_norm([a, b]), by_norm])
    np.testing.assert_allclose(r[0], a0 / 2)
    np.testing.assert_allclose(r[1], b0 / 2)
    assert r[2] == 13.0 and r[5] == 13.0
    np.testing.assert_allclose(r[3], a0)
    np.testing.assert_allclose(r[4], b0)
    np.testing.assert_allclose(r[6], [[0.6, 0.8], [0.0, 0.0]])
