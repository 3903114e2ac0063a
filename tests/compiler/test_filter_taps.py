"""The direct conv's filter gradient (kernels/filter_taps.py) against im2col + GEMM.

Random geometries (dilations, paddings), output channels across several vector groups (groups of different
tap counts in one call) and their tails, both dtypes, both vector widths the host runs, one to three
threads' shares of the images; infs in the input.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jitflow.kernels import conv, filter_taps, packed_gemm
from tests.compiler.helpers import assert_same

_WIDTHS = [256, 512] if packed_gemm.VECTOR_BITS == 512 else [256]  # (512-bit code needs AVX-512)


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    """A stride-1 conv with 1-4 input channels, any dilation and padding, 1-90 output channels."""
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c = (draw(st.integers(lo, hi)) for lo, hi in ((1, 4), (1, 12), (1, 30), (1, 4)))
    o = draw(st.sampled_from([1, 3, 8, 16, 17, 32, 40, 64, 80, 90]))
    kh, kw, dh, dw = (draw(st.integers(1, hi)) for hi in (5, 5, 2, 2))
    pt, pl = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    pb, pr = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    oh, ow = h + pt + pb - (kh - 1) * dh, w + pl + pr - (kw - 1) * dw
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return {"x": rng.standard_normal((n, h, w, c)).astype(dt), "dy": rng.standard_normal((n, oh, ow, o)).astype(dt)
            if oh > 0 and ow > 0 else None, "f_shape": (kh, kw, c, o),
            "g": conv.ConvGeom(kh, kw, 1, 1, dh, dw, pt, pl, oh, ow), "bits": draw(st.sampled_from(_WIDTHS)),
            "workers": draw(st.integers(1, 3))}


@settings(max_examples=60, deadline=None)
@given(cases())
def test_matches_the_gemm_filter_gradient(case: dict[str, Any]) -> None:
    assume(case["dy"] is not None)
    x, dy, g = case["x"], case["dy"], case["g"]
    want = conv.conv2d_backprop_filter(x, dy, g, np.empty(case["f_shape"], x.dtype), conv.fresh)
    got = filter_taps.filter_grad(x, dy, g, np.full(case["f_shape"], np.nan, x.dtype), conv.fresh, case["workers"],
                                  case["bits"])
    tol = 2e-5 if x.dtype == np.float32 else 1e-12
    assert_same(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


def test_shares_of_the_images_repeat_bit_for_bit() -> None:
    """Every share of the images sums in a fixed order: three shares give the same bits run after run, and
    one share or three agree with float64 up to float32's rounding over 5488 terms."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 28, 28, 1)).astype(np.float32)
    dy = rng.standard_normal((7, 28, 28, 32)).astype(np.float32)
    g = conv.ConvGeom(5, 5, 1, 1, 1, 1, 2, 2, 28, 28)
    runs = [filter_taps.filter_grad(x, dy, g, np.empty((5, 5, 1, 32), np.float32), conv.fresh, w) for w in (1, 3, 3)]
    assert np.array_equal(runs[1], runs[2])
    want = conv.conv2d_backprop_filter(x.astype(np.float64), dy.astype(np.float64), g, np.empty((5, 5, 1, 32)),
                                       conv.fresh)
    for got in runs[:2]:
        assert_same(got, want.astype(np.float32), rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_an_inf_in_the_input_meets_only_real_output_gradients() -> None:
    """No junk positions: inf where the GEMM path has inf, NaN only where it has NaN."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 9, 11, 2)).astype(np.float32)
    x[1, 4, 5, 1] = np.inf
    g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 0, 0, 7, 9)  # VALID: the last columns feed only some windows
    dy = rng.standard_normal((2, 7, 9, 5)).astype(np.float32)
    want = conv.conv2d_backprop_filter(x, dy, g, np.empty((3, 3, 2, 5), np.float32), conv.fresh)
    got = filter_taps.filter_grad(x, dy, g, np.empty((3, 3, 2, 5), np.float32), conv.fresh, 2)
    assert np.isinf(want).any()
    assert_same(got, want, rtol=1e-5, atol=1e-5)


def test_writes_into_a_strided_output() -> None:
    """df may be a view with gaps (every other filter of a bigger array): written in place, nothing else."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 6, 7, 1)).astype(np.float32)
    dy = rng.standard_normal((2, 6, 7, 16)).astype(np.float32)
    g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 1, 1, 6, 7)
    want = conv.conv2d_backprop_filter(x, dy, g, np.empty((3, 3, 1, 16), np.float32), conv.fresh)
    big = np.zeros((3, 3, 1, 32), np.float32)
    got = filter_taps.filter_grad(x, dy, g, big[..., ::2], conv.fresh, 2)
    assert got.base is big
    assert_same(big[..., ::2], want, rtol=1e-5, atol=1e-5)
    assert not big[..., 1::2].any()
