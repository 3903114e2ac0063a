"""The pixel-block direct conv (kernels/pixel_conv.py) against the im2col + GEMM conv and the pool kernels.

Random geometries (dilations, paddings, channel counts across several vector groups and their tails),
both dtypes, both vector widths the host runs, with and without bias, ReLU and a fused 2 x 2 pool; NaNs
in the input; and the plan step that fuses a MaxPool/AvgPool into the conv at batch 1.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.kernels import conv, packed_gemm, pixel_conv, pool
from tests.compiler.helpers import assert_same, run_both

_WIDTHS = [256, 512] if packed_gemm.VECTOR_BITS == 512 else [256]  # (512-bit code needs AVX-512)


def _reference(x: np.ndarray, f: np.ndarray, g: conv.ConvGeom, bias: np.ndarray | None, relu: bool,
               mode: int) -> np.ndarray:
    want = np.empty((x.shape[0], g.oh, g.ow, f.shape[3]), x.dtype)
    conv.conv2d(x, f, g, want, conv.fresh, bias=bias)
    if relu:
        want = np.where(want < 0, want.dtype.type(0), want)  # (NaN stays NaN)
    if mode == pixel_conv.NO_POOL:
        return want
    pooled = np.empty((x.shape[0], g.oh // 2, g.ow // 2, f.shape[3]), x.dtype)
    run = pool.max_pool if mode == pixel_conv.MAX_2X2 else pool.avg_pool
    run(want, 2, 2, 2, 2, 0, 0, pooled)
    return pooled


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    """A stride-1 conv with 1-4 input channels, any dilation and padding, 1-70 output channels."""
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 13), (1, 30), (1, 4)))
    o = draw(st.sampled_from([1, 3, 8, 16, 17, 32, 40, 64, 70]))
    kh, kw, dh, dw = (draw(st.integers(1, hi)) for hi in (5, 5, 2, 2))
    pt, pl = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    pb, pr = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    oh, ow = h + pt + pb - (kh - 1) * dh, w + pl + pr - (kw - 1) * dw
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return {"x": rng.standard_normal((n, h, w, c)).astype(dt), "f": rng.standard_normal((kh, kw, c, o)).astype(dt),
            "b": rng.standard_normal(o).astype(dt) if draw(st.booleans()) else None, "relu": draw(st.booleans()),
            "g": conv.ConvGeom(kh, kw, 1, 1, dh, dw, pt, pl, oh, ow), "bits": draw(st.sampled_from(_WIDTHS)),
            "pool": draw(st.sampled_from([pixel_conv.NO_POOL, pixel_conv.MAX_2X2, pixel_conv.AVG_2X2]))}


@settings(max_examples=60, deadline=None)
@given(cases())
def test_matches_the_gemm_conv_and_the_pools(case: dict[str, Any]) -> None:
    g, x, f = case["g"], case["x"], case["f"]
    mode = case["pool"]
    assume(g.oh >= 1 and g.ow >= 1 and not (mode and (g.oh < 2 or g.ow < 2)))
    want = _reference(x, f, g, case["b"], case["relu"], mode)
    got = pixel_conv.forward(x, f, g, np.full_like(want, np.nan), conv.fresh, case["b"], case["relu"], mode,
                             case["bits"])
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    assert_same(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("bits", _WIDTHS)
@pytest.mark.parametrize("mode", [pixel_conv.NO_POOL, pixel_conv.MAX_2X2, pixel_conv.AVG_2X2])
def test_nans_stay_where_they_belong(bits: int, mode: int) -> None:
    """A NaN input spreads to exactly the windows that hold it, through the ReLU and both pools; the padding
    and the computed-and-dropped positions past each row's end never reach an output."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 13, 1)).astype(np.float32)
    x[0, 3, 4, 0] = x[1, 11, 12, 0] = np.nan
    f = rng.standard_normal((5, 5, 1, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    g = conv.ConvGeom(5, 5, 1, 1, 1, 1, 2, 2, 12, 13)
    want = _reference(x, f, g, b, True, mode)
    got = pixel_conv.forward(x, f, g, np.empty_like(want), conv.fresh, b, True, mode, bits)
    assert np.isnan(want).any() and not np.isnan(want).all()
    assert_same(got, want, rtol=1e-5, atol=1e-5)


def test_writes_into_a_strided_output() -> None:
    """out may be a view with gaps (every other image of a bigger array): written in place, nothing else."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 9, 10, 1)).astype(np.float32)
    f = rng.standard_normal((3, 3, 1, 16)).astype(np.float32)
    g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 1, 1, 9, 10)
    want = _reference(x, f, g, None, False, pixel_conv.NO_POOL)
    big = np.zeros((4, 9, 10, 16), np.float32)
    assert pixel_conv.forward(x, f, g, big[::2], conv.fresh).base is big
    assert_same(big[::2], want, rtol=1e-5, atol=1e-5)
    assert not big[1::2].any()


@pytest.mark.parametrize("pool_op", [tf.nn.max_pool, tf.nn.avg_pool])
@pytest.mark.parametrize("batch,size", [(1, 28), (3, 11)])
def test_a_conv_step_pools_its_own_rows(pool_op: Any, batch: int, size: int) -> None:
    """conv + bias + ReLU + a 2 x 2 pool at stride 2 in one step: the direct kernel pools its output rows
    (an odd size leaves a row and a column in no window), as the interpreter computes it."""
    rng = np.random.default_rng(2)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, size, size, 1])
        f = tf.constant(rng.standard_normal((5, 5, 1, 32)).astype(np.float32))
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"),
                                      tf.constant(rng.standard_normal(32).astype(np.float32))))
        p = pool_op(y, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
        got, want, plan = run_both([p], {x: rng.standard_normal((batch, size, size, 1)).astype(np.float32)})
    assert_same(got[0], want[0], rtol=1e-5, atol=1e-5)
    sources = [e["source"] for e in plan.report["clusters"]]
    assert any(s.startswith("kernels/conv: direct +bias+relu +" + p.op.type.lower()) for s in sources), sources


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from([pixel_conv.MAX_2X2, pixel_conv.AVG_2X2]))
def test_a_pooled_conv_also_writes_its_own_output(case: dict[str, Any], mode: int) -> None:
    """With `full`, the pooled kernel also writes the unpooled output (every row, an odd last one too): bit for
    bit the unpooled kernel's, and the pooled values unchanged."""
    g, x, f = case["g"], case["x"], case["f"]
    assume(g.oh >= 2 and g.ow >= 2)
    args = (conv.fresh, case["b"], case["relu"])
    plain = pixel_conv.forward(x, f, g, np.empty((x.shape[0], g.oh, g.ow, f.shape[3]), x.dtype), *args,
                               bits=case["bits"])
    pooled = np.empty((x.shape[0], g.oh // 2, g.ow // 2, f.shape[3]), x.dtype)
    alone = pixel_conv.forward(x, f, g, pooled.copy(), *args, mode, case["bits"])
    full = np.full_like(plain, np.nan)
    got = pixel_conv.forward(x, f, g, pooled, *args, mode, case["bits"], full=full)
    np.testing.assert_array_equal(full, plain)
    np.testing.assert_array_equal(got, alone)


def _conv_pool_training(c: int, size: int, pool_op: Any, early_reader: bool,
                        padding: str = "VALID") -> tuple[list, Any]:
    rng = np.random.default_rng(7)
    x = tf.placeholder(tf.float32, [None, size, size, c], name="x")
    k = tf.Variable(rng.standard_normal((5, 5, c, 16)).astype(np.float32) * 0.2, name="k")
    b = tf.Variable(rng.standard_normal(16).astype(np.float32) * 0.1, name="b")
    y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME"), b), name="y")
    extra = [tf.reduce_sum(y, name="early")] if early_reader else []
    with tf.control_dependencies(extra):  # the early reader of y runs before the pool
        p = pool_op(y, [1, 2, 2, 1], [1, 2, 2, 1], padding)
    loss = tf.reduce_sum(p * p) + sum(extra)
    grads = tf.gradients(loss, [x, k, b])
    return [loss, *grads], {x: rng.standard_normal((3, size, size, c)).astype(np.float32)}


@pytest.mark.parametrize("c", [1, 16])  # the direct kernel (pooling its rows on the spot) and Winograd
@pytest.mark.parametrize("pool_op", [tf.nn.max_pool, tf.nn.avg_pool])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_a_training_conv_step_pools_and_keeps_its_output(c: int, pool_op: Any, padding: str) -> None:
    """In training the conv's output is read again by the pool's and the ReLU's gradients: the conv step pools
    it and writes it as a second output (an odd size: the last row and column are in no window, or in a
    padded one)."""
    with tf.Graph().as_default():
        fetches, feed = _conv_pool_training(c, 11, pool_op, early_reader=False, padding=padding)
        got, want, plan = run_both(fetches, feed, init=True)
    for i, (a, b) in enumerate(zip(got, want)):  # (Winograd's rounding: relative to the largest value)
        assert_same(a, b, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(b).max())), what=f"fetch {i}")
    steps = [s for s in plan.steps if getattr(s, "pool_op", None) is not None]
    assert len(steps) == 1 and steps[0].extra_slot == plan.slots[steps[0].ops[2].outputs[0]]  # Relu's output


def test_no_pool_fusion_when_the_output_is_read_before_the_pool() -> None:
    with tf.Graph().as_default():
        fetches, feed = _conv_pool_training(1, 8, tf.nn.max_pool, early_reader=True)
        got, want, plan = run_both(fetches, feed, init=True)
    for a, b in zip(got, want):
        assert_same(a, b, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(b).max())))
    assert not [s for s in plan.steps if getattr(s, "pool_op", None) is not None]
