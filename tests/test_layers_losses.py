"""tf.layers and tf.losses against direct NumPy computations."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf


def test_dense_names_values_and_reuse():
    x = tf.placeholder(tf.float32, [None, 3])
    y = tf.layers.dense(x, 2, activation=tf.nn.relu)
    y2 = tf.layers.dense(x, 2, name="dense", reuse=True)
    z = tf.layers.dense(x, 4, use_bias=False)
    names = [v.name for v in tf.global_variables()]
    assert names == ["dense/kernel:0", "dense/bias:0", "dense_1/kernel:0"]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(tf.assign(tf.global_variables()[1], [1.0, -100.0]))
        xv = np.arange(6, dtype=np.float32).reshape(2, 3)
        k, b = sess.run(tf.global_variables()[:2])
        yv, y2v, zv = sess.run([y, y2, z], {x: xv})
        np.testing.assert_allclose(yv, np.maximum(xv @ k + b, 0), rtol=1e-6)
        np.testing.assert_allclose(y2v, xv @ k + b, rtol=1e-6)
        assert zv.shape == (2, 4)
    with pytest.raises(ValueError):
        tf.layers.dense(tf.placeholder(tf.float32, [None, None]), 2)


def test_conv_pool_flatten_shapes_and_values():
    img = tf.placeholder(tf.float32, [None, 6, 6, 2])
    c = tf.layers.conv2d(img, 3, 3, padding="valid")
    p = tf.layers.max_pooling2d(c, 2, 2)
    a = tf.layers.average_pooling2d(c, 2, 2)
    f = tf.layers.flatten(p)
    assert c.shape.as_list() == [None, 4, 4, 3] and f.shape.as_list() == [None, 12]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        iv = np.random.RandomState(0).randn(2, 6, 6, 2).astype(np.float32)
        k, b = sess.run([v for v in tf.global_variables() if "conv2d" in v.name])
        cv, pv, av = sess.run([c, p, a], {img: iv})
        want = np.zeros((2, 4, 4, 3), np.float32)
        for i in range(4):
            for j in range(4):
                want[:, i, j] = np.tensordot(iv[:, i:i + 3, j:j + 3, :], k, axes=3) + b
        np.testing.assert_allclose(cv, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pv, want.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(av, want.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4)), rtol=1e-4, atol=1e-5)


def test_dropout_follows_training_flag():
    x = tf.ones([1000])
    training = tf.placeholder_with_default(False, [])
    d = tf.layers.dropout(x, rate=0.5, training=training, seed=3)
    assert tf.layers.dropout(x, training=False).op.type == "Identity"
    with tf.Session() as sess:
        assert np.all(sess.run(d) == 1.0)
        on = sess.run(d, {training: True})
        assert set(np.unique(on)) <= {0.0, 2.0} and 300 < (on == 0).sum() < 700


def test_losses_match_numpy_and_collect():
    rng = np.random.RandomState(1)
    logits = rng.randn(6, 4).astype(np.float32)
    labels = rng.randint(0, 4, 6)
    w = np.array([1, 0, 2, 1, 0, 1], np.float32)
    lg = tf.constant(logits)
    sparse = tf.losses.sparse_softmax_cross_entropy(labels, lg, weights=w)
    onehot = tf.losses.softmax_cross_entropy(np.eye(4)[labels], lg)
    mse = tf.losses.mean_squared_error(np.ones((6, 4)), lg, reduction=tf.losses.Reduction.SUM)
    absd = tf.losses.absolute_difference(np.zeros((6, 4)), lg, reduction=tf.losses.Reduction.MEAN)
    hub = tf.losses.huber_loss(np.zeros((6, 4)), lg, delta=0.5)
    assert len(tf.losses.get_losses()) == 5
    total = tf.losses.get_total_loss()
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    per = -logp[np.arange(6), labels]
    with tf.Session() as sess:
        got = sess.run([sparse, onehot, mse, absd, hub, total])
    err = np.abs(logits)
    hub_np = np.where(err <= 0.5, 0.5 * err ** 2, 0.5 * (err - 0.5) + 0.125).mean()
    want = [(per * w).sum() / 4, per.mean(), ((logits - 1) ** 2).sum(), np.abs(logits).mean(), hub_np]
    np.testing.assert_allclose(got[:5], want, rtol=1e-5)
    np.testing.assert_allclose(got[5], sum(want), rtol=1e-5)
    with pytest.raises(ValueError):
        tf.losses.compute_weighted_loss(lg, reduction="bogus")


def test_dense_trains():
    rng = np.random.RandomState(0)
    xv = rng.randn(64, 3).astype(np.float32)
    yv = (xv @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 3])
    y = tf.placeholder(tf.float32, [None, 1])
    loss = tf.losses.mean_squared_error(y, tf.layers.dense(x, 1))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = sess.run(loss, {x: xv, y: yv})
        for _ in range(200):
            sess.run(train, {x: xv, y: yv})
        assert sess.run(loss, {x: xv, y: yv}) < 1e-3 < first
