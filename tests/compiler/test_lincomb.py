"""kernels/lincomb.py (Winograd's transforms' linear combinations of rows) against NumPy."""
from __future__ import annotations

from typing import Any

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jitflow.kernels import lincomb as L
from jitflow.kernels import packed_gemm

_WIDE = [False, True] if packed_gemm.VECTOR_BITS == 512 else [False]  # (512-bit code needs AVX-512)


@numba.njit
def _run(wide, dst, src, c, k, n, outputs):  # type: ignore[no-untyped-def]
    L.lincomb(dst, wide, L.address(dst), dst.shape[1], L.address(src), src.shape[1], L.address(c), c.shape[1], k, n,
              outputs)


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    dt = draw(st.sampled_from([np.float32, np.float64]))
    outputs, k, n = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 700))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    # rows longer than n (strides past the run) and coefficient rows longer than k, as the transforms pass them
    return {"src": rng.standard_normal((k, n + draw(st.integers(0, 5)))).astype(dt),
            "c": rng.standard_normal((outputs, k + draw(st.integers(0, 3)))).astype(dt), "k": k, "n": n,
            "outputs": outputs, "wide": draw(st.sampled_from(_WIDE)), "pad": draw(st.integers(0, 4))}


@settings(max_examples=60, deadline=None)
@given(cases())
def test_rows_match_numpy_and_stay_in_their_runs(case: dict[str, Any]) -> None:
    """Every output's first n columns are its combination; nothing past them (or past the outputs) is written."""
    src, c, k, n, outputs = case["src"], case["c"], case["k"], case["n"], case["outputs"]
    dst = np.full((outputs + 1, n + case["pad"]), np.nan, src.dtype)
    _run(case["wide"], dst, src, c, k, n, outputs)
    want = c[:, :k].astype(np.float64) @ src[:, :n].astype(np.float64)
    tol = 1e-5 if src.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dst[:outputs, :n], want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))
    assert np.isnan(dst[:outputs, n:]).all() and np.isnan(dst[outputs]).all()


def test_zero_coefficients_add_exactly_nothing() -> None:
    """A zero coefficient (the transforms' matrices have many) leaves the sum as skipping the tap would, signed
    zeros included."""
    src = np.array([[-3.0] * 40, [0.0] * 40, [2.5] * 40], np.float32)
    c = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [2.0, 0.0, 0.5]], np.float32)
    dst = np.empty((3, 40), np.float32)
    _run(_WIDE[-1], dst, src, c, 3, 40, 3)
    assert (dst[0] == 0).all() and not np.signbit(dst[0]).any()
    assert (dst[1] == 0).all() and not np.signbit(dst[1]).any()  # -1 * +0 = -0, but +0 + -0 = +0
    np.testing.assert_array_equal(dst[2], np.float32(2.0) * -3 + np.float32(0.5) * 2.5)
