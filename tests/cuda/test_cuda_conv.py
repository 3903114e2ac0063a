"""Convolution, pooling and BiasAddGrad on /gpu:0 (CUDA simulator) against the interpreter on the same graph.

The simulator runs a Python thread per CUDA thread: shapes stay tiny and examples few.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.compiler.gpu.conv import CudaWindowStep
from jitflow.ops.op_util import make_op, out
from tests.compiler.helpers import assert_same
from tests.cuda.helpers import needs_cuda, run_gpu

pytestmark = needs_cuda


def window_steps(plan: Any) -> list[CudaWindowStep]:
    return [s for s in plan.steps if isinstance(s, CudaWindowStep)]


def _same_all(got: list, want: list, rtol: float) -> None:
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol=rtol, atol=1e-5 if np.asarray(w).dtype == np.float32 else 1e-12, what=f"output {i}")


def _conv_net(dtype: Any, fmt: str, strides: int, padding: Any, dilation: int, seed: int) -> tuple[list, dict]:
    """conv -> bias -> relu -> max pool -> avg pool, a loss, and the gradients of everything."""
    rng = np.random.default_rng(seed)
    n, h, w, c, o = 2, 6, 5, 2, 3
    shape = (n, h, w, c) if fmt == "NHWC" else (n, c, h, w)
    x = tf.placeholder(dtype, shape)
    xv = rng.normal(size=shape).astype(dtype)
    spatial = [1, strides, strides, 1] if fmt == "NHWC" else [1, 1, strides, strides]
    dil = [1, dilation, dilation, 1] if fmt == "NHWC" else [1, 1, dilation, dilation]
    pool = [1, 2, 2, 1] if fmt == "NHWC" else [1, 1, 2, 2]
    with tf.device("/gpu:0"):
        f = tf.constant(rng.normal(size=(3, 2, c, o)).astype(dtype))
        b = tf.constant(rng.normal(size=o).astype(dtype))
        y = tf.nn.conv2d(x, f, spatial, padding, data_format=fmt, dilations=dil)
        r = tf.nn.relu(tf.nn.bias_add(y, b, data_format=fmt))
        p = tf.nn.max_pool(r, pool, [1, 1, 1, 1], "SAME", data_format=fmt)
        q = tf.nn.avg_pool(p, pool, pool, "VALID" if fmt == "NHWC" else "SAME", data_format=fmt)
        loss = tf.reduce_sum(q * q) + tf.reduce_sum(p)
        grads = tf.gradients(loss, [x, f, b])
    return [r, p, q, *grads], {x: xv}


@pytest.mark.parametrize("dtype,fmt,strides,padding,dilation", [
    (np.float32, "NHWC", 1, "SAME", 1),
    (np.float64, "NHWC", 2, "VALID", 1),
    (np.float32, "NHWC", 1, [[0, 0], [1, 2], [2, 0], [0, 0]], 2),
    (np.float64, "NCHW", 2, "SAME", 1),
])
def test_conv_net_forward_and_gradients(dtype: Any, fmt: str, strides: int, padding: Any, dilation: int) -> None:
    if isinstance(padding, list) and fmt == "NCHW":
        padding = [padding[0], padding[3], padding[1], padding[2]]
    fetches, feed = _conv_net(dtype, fmt, strides, padding, dilation, 0)
    got, want, plan = run_gpu(fetches, feed)
    _same_all(got, want, 2e-5 if dtype == np.float32 else 1e-10)
    kinds = {s.op.type for s in window_steps(plan)}
    assert {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MaxPool", "MaxPoolGrad", "AvgPool",
            "AvgPoolGrad"} <= kinds
    reports = {e["ops"][0]: e for e in plan.report["clusters"] if e["backend"] == "cuda"}
    conv = next(s for s in window_steps(plan) if s.op.type == "Conv2D")
    assert "codegen/cuda_conv: implicit GEMM" in reports[conv.op.name]["source"]
    # the bias and the ReLU run inside the conv's kernel (NCHW: bias_add is an Add of the reshaped bias)
    assert conv.epi is not None and {op.type for op in conv.epi.c.ops} >= {"Relu"}
    assert "+Relu" in reports[conv.op.name]["source"]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3), st.integers(1, 2), st.sampled_from(["SAME", "VALID"]), st.integers(1, 2),
       st.integers(0, 2**16))
def test_conv_ops_match_interpreter_on_random_geometry(kh: int, stride: int, padding: str, dilation: int,
                                                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, h, w, c, o = 1 + seed % 2, 5, 4 + seed % 3, 1 + seed % 3, 2
    stride = 1 if dilation > 1 else stride  # TF: no strides > 1 with dilations > 1
    if padding == "VALID" and (kh - 1) * dilation + 1 > min(h, w):
        padding = "SAME"
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [n, h, w, c])
        dy_shape = None
        with tf.device("/gpu:0"):
            f = tf.constant(rng.normal(size=(kh, 2, c, o)).astype(np.float32))
            y = tf.nn.conv2d(x, f, [1, stride, stride, 1], padding, dilations=[1, dilation, dilation, 1])
            dy_shape = y.shape.as_list()
            dy = tf.constant(rng.normal(size=dy_shape).astype(np.float32))
            dx = tf.nn.conv2d_backprop_input([n, h, w, c], f, dy, [1, stride, stride, 1], padding,
                                             dilations=[1, dilation, dilation, 1])
            df = tf.nn.conv2d_backprop_filter(x, [kh, 2, c, o], dy, [1, stride, stride, 1], padding,
                                              dilations=[1, dilation, dilation, 1])
        got, want, plan = run_gpu([y, dx, df], {x: rng.normal(size=(n, h, w, c)).astype(np.float32)})
        _same_all(got, want, 2e-5)
        assert len(window_steps(plan)) == 3


def test_bias_add_grad_op_nhwc_and_nchw() -> None:
    rng = np.random.default_rng(3)
    g = tf.placeholder(tf.float32, [3, 4, 5, 6])
    with tf.device("/gpu:0"):
        outs = [out(make_op("BiasAddGrad", [g], {"T": tf.float32, "data_format": fmt}, name="BiasAddGrad"))
                for fmt in ("NHWC", "NCHW")]
    got, want, plan = run_gpu(outs, {g: rng.normal(size=(3, 4, 5, 6)).astype(np.float32)})
    _same_all(got, want, 1e-5)
    assert [s.op.type for s in window_steps(plan)] == ["BiasAddGrad"] * 2
    assert plan.report["fallbacks"] == []


def test_bad_inputs_give_the_interpreters_errors() -> None:
    x = tf.placeholder(tf.float32, [None, 5, 5, None])
    sizes = tf.placeholder(tf.int32, [4])
    with tf.device("/gpu:0"):
        y = tf.nn.conv2d(x, tf.ones([3, 3, 2, 4]), [1, 1, 1, 1], "VALID")
        dx = tf.nn.conv2d_backprop_input(sizes, tf.ones([3, 3, 2, 4]), tf.ones([1, 3, 3, 4]), [1, 1, 1, 1], "VALID")
    for fetch, feed in [(y, {x: np.ones((1, 5, 5, 3), np.float32)}),  # in-channels do not match the filter
                        (dx, {sizes: np.array([1, 6, 6, 2], np.int32)})]:  # dy is not the conv's output shape
        errors = []
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
                with pytest.raises(tf.errors.InvalidArgumentError) as e:
                    sess.run(fetch, feed)
                errors.append(str(e.value).splitlines()[0])
        assert errors[0] == errors[1]
    with tf.Session() as sess:  # the same steps still run good inputs on the device afterwards
        got = sess.run(y, {x: np.ones((1, 5, 5, 2), np.float32)})
    np.testing.assert_allclose(got, np.full((1, 3, 3, 4), 18.0, np.float32))


def test_explain_names_the_device_kernels() -> None:
    fetches, feed = _conv_net(np.float32, "NHWC", 1, "SAME", 1, 1)
    text = str(tf.explain(fetches, feed))
    assert "[cuda]" in text and "codegen/cuda_conv: implicit GEMM" in text and "+BiasAdd+Relu" in text
    assert "split k" in text and "gather per input" in text and "per output" in text


def test_cnn_training_steps_on_the_device() -> None:
    rng = np.random.default_rng(5)
    xv = rng.normal(size=(2, 6, 6, 1)).astype(np.float32)
    yv = np.array([0, 2], np.int64)
    x = tf.placeholder(tf.float32, [2, 6, 6, 1])
    labels = tf.placeholder(tf.int64, [2])
    with tf.device("/gpu:0"):
        f = tf.Variable(rng.normal(0, 0.5, (3, 3, 1, 2)).astype(np.float32))
        b = tf.Variable(np.full(2, 0.1, np.float32))
        w = tf.Variable(rng.normal(0, 0.5, (18, 3)).astype(np.float32))
        h = tf.nn.max_pool(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"), b)),
                           [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
        logits = tf.matmul(tf.reshape(h, [2, 18]), w)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    results = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train], {x: xv, labels: yv})[0] for _ in range(3)]
            results.append([*losses, *sess.run([f, b, w])])
    _same_all(results[0], results[1], 1e-4)
