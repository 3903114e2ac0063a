"""Random ops draw TensorFlow's own numbers: compared bit for bit with values TensorFlow produced
(tests/data/tf_random.npz, written by tests/data/make_tf_random.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from jitflow.ops import philox

REF = np.load(os.path.join(os.path.dirname(__file__), "..", "data", "tf_random.npz"))


def _graph_ops():
    return {
        "normal_f32": tf.random_normal([1001], seed=7),
        "normal_f64": tf.random_normal([301], seed=7, dtype=tf.float64),
        "normal_scaled": tf.random_normal([3, 5], mean=2.0, stddev=3.0, seed=11),
        "uniform_f32": tf.random_uniform([301], seed=3),
        "uniform_f64": tf.random_uniform([301], seed=3, dtype=tf.float64),
        "uniform_range": tf.random_uniform([7], -2.0, 5.0, seed=3),
        "truncated_f32": tf.truncated_normal([1001], seed=5),
        "truncated_f64": tf.truncated_normal([301], seed=5, dtype=tf.float64),
        "int32": tf.random_uniform([301], 3, 1000, dtype=tf.int32, seed=9),
        "int64": tf.random_uniform([301], -5, 10**12, dtype=tf.int64, seed=9),
        "dropout": tf.nn.dropout(tf.ones([64]), keep_prob=0.5, seed=4),
    }


def test_op_seeded_ops_match_tensorflow_over_two_runs():
    ops = _graph_ops()
    with tf.Session() as sess:
        first, second = sess.run(ops), sess.run(ops)
    for k in ops:
        for run, got in ((1, first[k]), (2, second[k])):
            want = REF[f"{k}/{run}"]
            assert got.dtype == want.dtype and got.shape == want.shape, k
            np.testing.assert_array_equal(got, want, err_msg=f"{k} run {run}")


def test_graph_seed_numbers_random_ops_like_tensorflow():
    tf.set_random_seed(42)
    a = tf.random_normal([4])
    b = tf.Variable(tf.random_uniform([3]))
    c = tf.get_variable("c", [2, 3])
    d = tf.get_variable("d", [3, 2], initializer=tf.truncated_normal_initializer(stddev=0.1))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run([a, b, c, d])
    for name, g in zip("abcd", got):
        np.testing.assert_array_equal(g, REF[f"graph_seed/{name}"], err_msg=name)


def test_new_session_restarts_the_sequence_and_unseeded_ops_differ():
    a = tf.random_normal([5], seed=1)
    u = tf.random_normal([5])
    with tf.Session() as s1:
        x1, x2 = s1.run(a), s1.run(a)
        u1 = s1.run(u)
    with tf.Session() as s2:
        y1 = s2.run(a)
        u2 = s2.run(u)
    assert np.array_equal(x1, y1) and not np.array_equal(x1, x2)
    assert not np.array_equal(u1, u2)


def test_philox_reference_vector():
    # Philox4x32-10 known-answer test (Salmon et al., Random123): counter 0, key 0.
    out = philox.philox((0, 0), 0, 1)[0]
    assert [hex(int(v)) for v in out] == ["0x6627e8d5", "0xe169c58d", "0xbc57ac4c", "0x9b00dbd8"]


@pytest.mark.parametrize("size", [1, 3, 4, 5, 1000])
def test_truncated_normal_values_stay_within_two_stddevs(size):
    st = philox.PhiloxState(3, 4)
    v = philox.truncated_normal(st, size, np.dtype(np.float32))
    assert v.shape == (size,) and np.all(np.abs(v) < 2.0)
