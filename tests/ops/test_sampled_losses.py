"""nce_loss and sampled_softmax_loss against TensorFlow's values for given sampled_values
(tests/data/sampled_losses/tf_values.npz, recorded by make_fixture.py there with the same calls), with
gradients; the log-uniform sampler's distribution, uniqueness and expected counts."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sampled_losses")
TF = np.load(os.path.join(HERE, "tf_values.npz"))


def _fixture_module():  # type: ignore[no-untyped-def]
    return fixture_script.load(os.path.join(HERE, "make_fixture.py"))


@pytest.mark.parametrize("jit", [True, False])
def test_sampled_losses_match_tensorflow(jit: bool) -> None:
    fx = _fixture_module()
    w, b, x = tf.constant(fx.W), tf.constant(fx.B), tf.constant(fx.X)
    fetch = fx.build(tf, w, b, x)
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        got = sess.run(fetch)
    for k, v in got.items():
        np.testing.assert_allclose(v, TF[k], rtol=2e-5, atol=2e-5, err_msg=k)


def test_log_uniform_sampler() -> None:
    labels = tf.constant([[0], [5]], tf.int64)
    s_u, t_u, e_u = tf.nn.log_uniform_candidate_sampler(labels, 1, 10, True, 50, seed=3)
    s_n, t_n, e_n = tf.nn.log_uniform_candidate_sampler(labels, 1, 2000, False, 50, seed=4)
    p = (np.log(np.arange(50) + 2.0) - np.log(np.arange(50) + 1.0)) / np.log(51.0)
    with tf.Session() as sess:
        su, tu, eu = sess.run([s_u, t_u, e_u])
        sn, tn, en = sess.run([s_n, t_n, e_n])
        assert not np.array_equal(sess.run(s_u), su)  # a new draw per run
    assert su.dtype == np.int64 and len(set(su.tolist())) == 10 and su.min() >= 0 and su.max() < 50
    assert np.all(tu > p[[0, 5]][:, None] * 0.99) and np.all((eu > 0) & (eu <= 1))
    np.testing.assert_allclose(tn, p[[0, 5]][:, None] * 2000, rtol=1e-5)
    np.testing.assert_allclose(en, p[sn] * 2000, rtol=1e-5)
    counts = np.bincount(sn, minlength=50) / 2000.0
    assert np.abs(counts[:5] - p[:5]).max() < 0.04  # the distribution: frequent low ids, as Zipf's law
    with tf.Session() as sess:  # the same seed draws the same candidates in a new session
        np.testing.assert_array_equal(sess.run(s_u), su)


def test_losses_with_the_builtin_sampler_train() -> None:
    x = tf.constant(np.random.RandomState(0).randn(8, 4).astype(np.float32))
    w = tf.Variable(tf.random_normal([30, 4], seed=1))
    b = tf.Variable(tf.zeros([30]))
    labels = tf.constant(np.arange(8).reshape(8, 1) % 30)
    loss = tf.reduce_mean(tf.nn.sampled_softmax_loss(w, b, labels, x, 6, 30)) + \
        tf.reduce_mean(tf.nn.nce_loss(w, b, labels, x, 6, 30))
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = sess.run(loss)
        for _ in range(30):
            sess.run(train)
        assert sess.run(loss) < first
