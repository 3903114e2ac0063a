"""The 2 x 2 max pool gradient over vectors of channels (kernels/pool_grad_rows.py): bit for bit what the
generic tiled kernel of pool.py gives (ties and NaNs included), both dtypes, both vector widths the host
runs; and in a plan, against the interpreter, with ReLU's mask and the bias gradient fused in.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.kernels import packed_gemm, pool, pool_grad_rows
from tests.compiler.helpers import assert_same, run_both

_WIDTHS = [256, 512] if packed_gemm.VECTOR_BITS == 512 else [256]  # (512-bit code needs AVX-512)


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    """An even-sized NHWC input whose channels fill 1-6 vectors, with ties and NaNs sometimes."""
    dt = draw(st.sampled_from([np.float32, np.float64]))
    bits = draw(st.sampled_from(_WIDTHS))
    width = bits // (8 * np.dtype(dt).itemsize)
    n, h, w, vecs = (draw(st.integers(lo, hi)) for lo, hi in ((1, 4), (1, 6), (1, 9), (1, 6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    values = draw(st.sampled_from(["normal", "ties", "nan"]))
    shape = (n, 2 * h, 2 * w, vecs * width)
    x = (rng.integers(-2, 3, shape) if values == "ties" else rng.standard_normal(shape)).astype(dt)
    if values == "nan":
        x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan
    return {"x": x, "dy": rng.standard_normal((n, h, w, vecs * width)).astype(dt), "bits": bits,
            "relu": draw(st.booleans()), "parts": draw(st.integers(1, 3))}


@settings(max_examples=60, deadline=None)
@given(cases())
def test_same_bits_as_the_generic_tiled_kernel(case: dict[str, Any]) -> None:
    x, dy, relu = case["x"], case["dy"], case["relu"]
    assert pool_grad_rows.applies(x, 2, 2, 2, 2, 0, 0, case["bits"])
    want, want_db = np.empty_like(x), np.empty((case["parts"], x.shape[3]), x.dtype)
    pool.max_pool_grad_tiled(x, dy, 2, 2, 2, 2, 0, 0, relu, False, want, want_db)
    got, got_db = np.full_like(x, np.nan), np.full_like(want_db, np.nan)
    pool_grad_rows.max_pool_2x2_grad(x, dy, relu, got, got_db, case["bits"])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_db, want_db)


def test_applies_only_to_whole_vectors_of_unpadded_2x2_windows() -> None:
    x = np.zeros((1, 4, 4, 16), np.float32)
    assert pool_grad_rows.applies(x, 2, 2, 2, 2, 0, 0, 512)
    assert not pool_grad_rows.applies(x[..., :12], 2, 2, 2, 2, 0, 0, 512)  # a tail of channels
    assert not pool_grad_rows.applies(x[:, :3], 2, 2, 2, 2, 0, 0, 512)  # an odd row count
    assert not pool_grad_rows.applies(x, 3, 3, 3, 3, 0, 0, 512)
    assert not pool_grad_rows.applies(x, 2, 2, 2, 2, 1, 0, 512)


def test_in_a_plan_with_relu_and_bias_gradients() -> None:
    """Conv + bias + ReLU + pool's gradient as one fused step on the 2x2-rows kernel, as interpreted."""
    rng = np.random.default_rng(2)
    with tf.Graph().as_default():
        x = tf.constant(rng.standard_normal((3, 8, 10, 4)).astype(np.float32))
        f = tf.constant(rng.standard_normal((3, 3, 4, 32)).astype(np.float32))
        b = tf.constant(rng.standard_normal(32).astype(np.float32))
        y = tf.nn.max_pool(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, f, 1, "SAME"), b)), 2, 2, "VALID")
        r = tf.constant(rng.standard_normal((3, 4, 5, 32)).astype(np.float32))
        got, want, plan = run_both([y, *tf.gradients(tf.reduce_sum(y * r), [x, f, b])])
    for i, (a, w) in enumerate(zip(got, want)):
        assert_same(a, w, rtol=2e-4, atol=2e-4 * float(np.abs(w).max()), what=f"output {i}")
    sources = [e["source"] for e in plan.report["clusters"] if "MaxPoolGrad" in e["ops"][0]]
    assert sources == ["kernels/pool: tiled 2x2 rows +relu grad +bias grad"]
