"""The direct conv kernels (kernels/direct.py: stride 1, few input channels) against the interpreter.

Random shapes, dilations, SAME/VALID/explicit padding, NHWC and NCHW, float32 and float64, with and
without the fused bias/ReLU epilogue; the filter gradient through the same graph's tf.gradients.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.kernels import conv, direct
from tests.compiler.helpers import assert_same, run_both
from tests.compiler.test_window_steps import _nchw, _output_is_empty, _padding


@st.composite
def direct_cases(draw: Any) -> dict[str, Any]:
    """A stride-1 conv with 1-4 input channels (and sometimes a bias and ReLU after it)."""
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c, o = (draw(st.integers(lo, hi)) for lo, hi in ((1, 5), (1, 12), (1, 12), (1, 4), (1, 9)))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return {"x": _nchw(rng.standard_normal((n, h, w, c)).astype(dt), fmt),
            "f": rng.standard_normal((*k, c, o)).astype(dt), "b": rng.standard_normal(o).astype(dt),
            "dilations": d, "padding": _padding(draw, k, fmt), "fmt": fmt, "rng": rng,
            "epilogue": draw(st.sampled_from(["", "bias", "bias+relu"])), "strides": (1, 1)}


@settings(max_examples=40, deadline=None)
@given(direct_cases())
def test_direct_conv_and_filter_gradient_match_the_interpreter(case: dict[str, Any]) -> None:
    assume(not _output_is_empty(case))
    with tf.Graph().as_default():
        x, f = tf.constant(case["x"]), tf.constant(case["f"])
        y = tf.nn.conv2d(x, f, [1, 1, 1, 1], case["padding"], data_format=case["fmt"],
                         dilations=list(case["dilations"]))
        if case["epilogue"]:
            y = tf.nn.bias_add(y, tf.constant(case["b"]), data_format=case["fmt"])
        if case["epilogue"] == "bias+relu":
            y = tf.nn.relu(y)
        r = tf.constant(case["rng"].standard_normal(y.shape.as_list()).astype(case["x"].dtype))
        fetches = [y, *tf.gradients(tf.reduce_sum(y * r), [x, f])]
        got, want, plan = run_both(fetches)
    for i, (a, b) in enumerate(zip(got, want)):
        tol = 2e-4 if a.dtype == np.float32 else 1e-11
        assert_same(a, b, rtol=tol, atol=tol * (float(np.max(np.abs(b))) if b.size else 1.0), what=f"output {i}")
    sources = [e["source"] for e in plan.report["clusters"] if e["source"].startswith("kernels/conv")]
    pad = case["padding"]
    unpadded = isinstance(pad, str) or not np.any(np.asarray(pad))  # a 1x1 kernel pads nothing with SAME
    pointwise = case["f"].shape[:2] == (1, 1) and unpadded
    assert pointwise or sum("direct" in s for s in sources) == 2, sources


@pytest.mark.parametrize("padding", [[[0, 0], [0, 0], [0, 1], [0, 0]], [[0, 0], [0, 2], [0, 0], [0, 0]]])
def test_1x1_conv_with_only_bottom_or_right_padding_is_not_a_plain_matmul(padding: list) -> None:
    """Padding after the last row or column makes the output bigger than the input (hypothesis found a
    1x1 input with one column of right padding taking the pointwise GEMM path)."""
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    with tf.Graph().as_default():
        x, f = tf.constant(xv), tf.constant(rng.standard_normal((1, 1, 5, 6)).astype(np.float32))
        y = tf.nn.conv2d(x, f, [1, 1, 1, 1], padding)
        r = tf.constant(rng.standard_normal(y.shape.as_list()).astype(np.float32))
        got, want, _ = run_both([y, *tf.gradients(tf.reduce_sum(y * r), [x, f])])
    assert got[0].shape == (2, 3 + padding[1][1], 4 + padding[2][1], 6)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_same(a, b, rtol=2e-5, atol=2e-5, what=f"output {i}")


def test_direct_kernels_on_uneven_shapes_and_nan() -> None:
    """Odd output channels, rows longer than a forward block, a NaN in the input: as the GEMM path gives."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 40, 37, 2)).astype(np.float32)
    x[1, 10, 11, 1] = np.nan
    f = rng.standard_normal((3, 4, 2, 7)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    g = conv.ConvGeom(3, 4, 1, 1, 2, 1, 2, 1, 38, 37)
    assert conv.method(2, g) == "direct" and conv.method(2, g, "filter_grad") == "direct"
    want = np.empty((3, 38, 37, 7), np.float32)
    conv.conv2d(x, f, g, want, conv.fresh, bias=b, relu=True)
    got = direct.forward(x, f, g, np.empty_like(want), conv.fresh, b, True)
    assert_same(got, want, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    x[1, 10, 11, 1] = 0.5
    want_df = conv.conv2d_backprop_filter(x, dy, g, np.empty_like(f), conv.fresh)
    got_df = direct.filter_grad(x, dy, g, np.empty_like(f), conv.fresh, 3)
    assert_same(got_df, want_df, rtol=1e-4, atol=1e-3)
    x[1, 10, 11, 1] = np.inf  # met only by real dy values: inf where the GEMM path has it, not NaN
    want_df = conv.conv2d_backprop_filter(x, dy, g, np.empty_like(f), conv.fresh)
    assert conv.filter_grad(x, dy, g, got_df, conv.fresh, 2) == "direct"
    assert np.array_equal(np.isinf(got_df), np.isinf(want_df)) and np.isinf(want_df).any()
    assert_same(got_df, want_df, rtol=1e-4, atol=1e-3)
