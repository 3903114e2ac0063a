"""Depthwise convolutions through their direct kernels (kernels/depthwise.py) against the interpreter.

Random shapes, multipliers, strides, dilations, SAME/VALID/explicit padding, NHWC and NCHW, float32 and
float64; each graph differentiates the op, so both backprop ops run through their kernels too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jitflow as tf
from tests.compiler.test_window_steps import _compare, _nchw, _padding, _window_steps

DEPTHWISE = ["DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropFilter", "DepthwiseConv2dNativeBackpropInput"]


@st.composite
def depthwise_cases(draw: Any) -> dict[str, Any]:
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c, m = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 9), (1, 9), (1, 6), (1, 3)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = draw(st.integers(1, 3))  # TF's depthwise kernels take equal row and column strides
    d = (1, 1) if s > 1 else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = _padding(draw, k, fmt)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    f = rng.standard_normal((*k, c, m)).astype(dt)
    return {"x": _nchw(x, fmt), "f": f, "strides": s, "dilations": d, "padding": pad, "fmt": fmt, "rng": rng}


def _graph(case: dict[str, Any]) -> list[Any] | None:
    x, f = tf.constant(case["x"]), tf.constant(case["f"])
    s, fmt = case["strides"], case["fmt"]
    strides = [1, 1, s, s] if fmt == "NCHW" else [1, s, s, 1]
    try:
        y = tf.nn.depthwise_conv2d_native(x, f, strides, case["padding"], data_format=fmt,
                                          dilations=[1, 1, *case["dilations"]] if fmt == "NCHW"
                                          else [1, *case["dilations"], 1])
    except ValueError:  # a VALID window larger than the padded input
        return None
    if 0 in y.shape.as_list():
        return None
    r = tf.constant(case["rng"].standard_normal(y.shape.as_list()).astype(case["x"].dtype))
    return [y, *tf.gradients(tf.reduce_sum(y * r), [x, f])]


@settings(max_examples=30, deadline=None)
@given(depthwise_cases())
def test_depthwise_and_its_gradients_match_the_interpreter(case: dict[str, Any]) -> None:
    with tf.Graph().as_default():
        fetches = _graph(case)
        assume(fetches is not None)
        plan = _compare(fetches)
    assert sorted(_window_steps(plan)) == DEPTHWISE


def test_separable_conv_and_explain() -> None:
    rng = np.random.default_rng(3)
    with tf.Graph().as_default():
        x = tf.constant(rng.standard_normal((2, 10, 10, 4)).astype(np.float32))
        dw = tf.constant(rng.standard_normal((3, 3, 4, 2)).astype(np.float32))
        pw = tf.constant(rng.standard_normal((1, 1, 8, 5)).astype(np.float32))
        y = tf.nn.separable_conv2d(x, dw, pw, [1, 2, 2, 1], "SAME")
        fetches = [y, *tf.gradients(tf.reduce_sum(y * y), [x, dw, pw])]
        plan = _compare(fetches)
        text = str(tf.explain(fetches))
    assert set(DEPTHWISE) <= set(_window_steps(plan))
    assert "kernels/depthwise: direct" in text


def test_runtime_shape_mismatch_raises_the_interpreters_error() -> None:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32)
        f = tf.placeholder(tf.float32)
        y = tf.nn.depthwise_conv2d_native(x, f, [1, 1, 1, 1], "VALID")
        with tf.Session() as sess:
            good = sess.run(y, {x: np.ones((1, 4, 4, 2)), f: np.ones((3, 3, 2, 2))})
            assert good.shape == (1, 2, 2, 4) and np.all(good == 9)
            with pytest.raises(tf.errors.InvalidArgumentError, match="same depth"):
                sess.run(y, {x: np.ones((1, 4, 4, 2)), f: np.ones((3, 3, 3, 1))})
