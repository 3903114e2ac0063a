"""Depthwise/separable convolutions against TensorFlow's recorded values; tf.layers.conv2d_transpose."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import jitflow as tf

DATA = np.load(Path(__file__).parents[1] / "data" / "depthwise_tf.npz")  # tests/data/make_depthwise_fixture.py
CASES = {"same_s2": ([1, 2, 2, 1], "SAME", [1, 1]), "valid_d2": ([1, 1, 1, 1], "VALID", [2, 2])}


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("case", sorted(CASES))
def test_depthwise_and_separable_match_tensorflow(case: str, jit: bool) -> None:
    d = {k.split("/")[1]: DATA[k] for k in DATA.files if k.startswith(case + "/")}
    strides, pad, rate = CASES[case]
    with tf.Graph().as_default():
        x, f, pw = tf.constant(d["x"]), tf.constant(d["f"]), tf.constant(d["pw"])
        y = tf.nn.depthwise_conv2d(x, f, strides, pad, rate=rate)
        z = tf.nn.separable_conv2d(x, f, pw, strides, pad, rate=rate)
        grads = tf.gradients(z, [x, f, pw], grad_ys=tf.constant(d["r"]))
        assert y.shape.as_list() == list(d["y"].shape) and y.name == "depthwise:0"
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            got = sess.run([y, z, *grads])
    for name, g in zip(("y", "z", "dx", "df", "dpw"), got):
        np.testing.assert_allclose(g, d[name], rtol=2e-5, atol=2e-5, err_msg=name)


def test_depthwise_channel_mismatch_is_tfs_error() -> None:
    with tf.Graph().as_default(), pytest.raises(ValueError, match="Dimensions must be equal, but are 3 and 4"):
        tf.nn.depthwise_conv2d(tf.zeros([1, 8, 8, 3]), tf.zeros([3, 3, 4, 2]), [1, 1, 1, 1], "SAME")


@pytest.mark.parametrize("padding, kernel, want", [("valid", 4, 14), ("same", 3, 12), ("valid", 2, 12)])
def test_layers_conv2d_transpose_shapes_and_gradient(padding: str, kernel: int, want: int) -> None:
    """Output size as Keras' deconv_output_length; kernel [k, k, filters, in]; matches conv2d's gradient."""
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((2, 6, 6, 5)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 6, 6, 5])
        y = tf.layers.conv2d_transpose(x, 3, kernel, strides=2, padding=padding)
        assert y.shape.as_list() == [None, want, want, 3]
        kernel_var = [v for v in tf.trainable_variables() if v.name.endswith("kernel:0")][0]
        assert kernel_var.name == "conv2d_transpose/kernel:0" and kernel_var.shape.as_list() == [kernel, kernel, 3, 5]
        # the transpose of conv2d: <conv2d_transpose(x), u> == <x, conv2d(u)> (bias is zero-initialized)
        u = tf.constant(rng.standard_normal((2, want, want, 3)).astype(np.float32))
        back = tf.nn.conv2d(u, kernel_var, [1, 2, 2, 1], padding.upper())
        lhs, rhs = tf.reduce_sum(y * u), tf.reduce_sum(x * back)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            a, b = sess.run([lhs, rhs], {x: xv})
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_layer_names_restart_in_a_reopened_scope() -> None:
    """TF1: a reused scope numbers its unnamed layers from the start again (conv2d, not conv2d_1)."""
    with tf.Graph().as_default():
        for reuse in (False, True):
            with tf.variable_scope("D", reuse=reuse):
                y = tf.layers.conv2d(tf.zeros([1, 6, 6, 2]), 4, 3)
        assert [v.name for v in tf.trainable_variables()] == ["D/conv2d/kernel:0", "D/conv2d/bias:0"]
        assert y.shape.as_list() == [1, 4, 4, 4]
