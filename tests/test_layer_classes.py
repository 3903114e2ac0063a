"""tf.layers' class API (one build, then shared variables) and the 1-D layers against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf


def test_classes_name_and_share_their_variables_as_tensorflow() -> None:
    x = tf.placeholder(tf.float32, [None, 8, 8, 3])
    conv = tf.layers.Conv2D(4, 3, padding="same", activation=tf.nn.relu)
    y, y2 = conv(x), conv.apply(x)
    flat = tf.layers.Flatten()(tf.layers.MaxPooling2D(2, 2)(y))
    dense = tf.layers.Dense(5, name="logits")
    out = dense(flat)
    bn = tf.layers.BatchNormalization()
    z = tf.layers.Dropout(0.3)(bn(out, training=True), training=False)
    with tf.variable_scope("outer"):
        inner = tf.layers.Dense(2)
        inner(z)
        inner(z)
    assert [v.op.name for v in tf.global_variables()] == [
        "conv2d/kernel", "conv2d/bias", "logits/kernel", "logits/bias", "batch_normalization/gamma",
        "batch_normalization/beta", "batch_normalization/moving_mean", "batch_normalization/moving_variance",
        "outer/dense/kernel", "outer/dense/bias"]
    assert [v.op.name for v in conv.trainable_weights] == ["conv2d/kernel", "conv2d/bias"]
    assert [v.op.name for v in bn.non_trainable_weights] == ["batch_normalization/moving_mean",
                                                             "batch_normalization/moving_variance"]
    assert dense.kernel.op.name == "logits/kernel" and out.shape.as_list() == [None, 5]
    xv = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        a, b = sess.run([y, y2], {x: xv})
        np.testing.assert_array_equal(a, b)


def _conv1d_numpy(x: np.ndarray, k: np.ndarray, stride: int) -> np.ndarray:
    """SAME-padded 1-D cross-correlation, TF's padding split (extra on the right)."""
    n, w, _ = x.shape
    kw = k.shape[0]
    out_w = -(-w // stride)
    pad = max((out_w - 1) * stride + kw - w, 0)
    xp = np.pad(x, [(0, 0), (pad // 2, pad - pad // 2), (0, 0)])
    return np.stack([np.einsum("nkc,kcf->nf", xp[:, i * stride:i * stride + kw], k) for i in range(out_w)], 1)


@pytest.mark.parametrize("jit", [True, False])
def test_conv1d_and_1d_pooling_match_numpy(jit: bool) -> None:
    rng = np.random.RandomState(1)
    xv = rng.randn(2, 10, 3).astype(np.float32)
    kv = rng.randn(3, 3, 4).astype(np.float32)
    x = tf.placeholder(tf.float32, [2, 10, 3])
    y = tf.layers.conv1d(x, 4, 3, strides=2, padding="same", kernel_initializer=tf.constant_initializer(kv))
    mp = tf.layers.max_pooling1d(x, 2, 2)
    ap = tf.layers.AveragePooling1D(3, 1)(x)
    assert [v.op.name for v in tf.trainable_variables()] == ["conv1d/kernel", "conv1d/bias"]
    assert tf.trainable_variables()[0].shape.as_list() == [3, 3, 4]
    assert (y.shape.as_list(), mp.shape.as_list(), ap.shape.as_list()) == ([2, 5, 4], [2, 5, 3], [2, 8, 3])
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.global_variables_initializer())
        got, m, a = sess.run([y, mp, ap], {x: xv})
    np.testing.assert_allclose(got, _conv1d_numpy(xv, kv, 2), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m, xv.reshape(2, 5, 2, 3).max(2))
    np.testing.assert_allclose(a, np.stack([xv[:, i:i + 3].mean(1) for i in range(8)], 1), rtol=1e-6)
    with pytest.raises(ValueError, match="ndim=3"):
        tf.layers.conv1d(tf.placeholder(tf.float32, [2, 3]), 4, 3)
