"""Winograd convolution (kernels/winograd.py) against the interpreter and against its own algebra.

Random stride-1 convs with 2..5-tap windows and >= 8 channels each way (where `conv.method` picks
Winograd), SAME/VALID/explicit padding, NHWC and NCHW, float32 and float64; each graph also
differentiates the conv, so the input and filter gradients run through Winograd too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.kernels import conv, threads, winograd
from tests.compiler.helpers import until_helpers_join
from tests.compiler.test_window_steps import _compare, _conv_graph, _nchw, _output_is_empty, _padding


@pytest.mark.parametrize("m, r", [(2, 2), (4, 2), (2, 3), (4, 3), (3, 4), (4, 4), (2, 5), (3, 5), (4, 5)])
def test_transforms_compute_a_correlation(m: int, r: int) -> None:
    """A^T ((G g) * (B^T d)) is the m outputs of an r-tap correlation, for random g and d (float64)."""
    at, g, bt = winograd.matrices(m, r)
    rng = np.random.default_rng(m * 10 + r)
    for _ in range(5):
        taps, d = rng.standard_normal(r), rng.standard_normal(m + r - 1)
        want = np.array([taps @ d[i:i + r] for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ taps) * (bt @ d)), want, rtol=1e-12, atol=1e-12)


@st.composite
def winograd_cases(draw: Any) -> dict[str, Any]:
    """A random conv2d that Winograd takes: stride 1, no dilation, 2..5 taps, 8..11 channels."""
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c, o = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (2, 11), (2, 11), (8, 11), (8, 11)))
    k = (draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    pad = _padding(draw, k, fmt)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    f = rng.standard_normal((*k, c, o)).astype(dt)
    return {"x": _nchw(x, fmt), "f": f, "strides": (1, 1), "dilations": (1, 1), "padding": pad, "fmt": fmt,
            "rng": rng}


def _sources(plan: Any) -> str:
    return " ".join(e["source"] for e in plan.report["clusters"])


@settings(max_examples=25, deadline=None)
@given(winograd_cases())
def test_winograd_conv_and_its_gradients_match_the_interpreter(case: dict[str, Any]) -> None:
    if _output_is_empty(case):
        return
    with tf.Graph().as_default():
        plan = _compare(_conv_graph(case))
    assert _sources(plan).count("kernels/conv: winograd") == 3


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("parallel", [True, False])
def test_chunks_on_worker_threads_match_the_interpreter(monkeypatch: pytest.MonkeyPatch, parallel: bool,
                                                        padding: str) -> None:
    """One image per chunk: on both cores (each thread takes chunks, filter gradients summed per thread)
    and on the calling thread only; VALID takes the adjoint input gradient, SAME the rotated-filter one."""
    monkeypatch.setattr(winograd, "WORKER_CHUNK_BYTES", 1)
    monkeypatch.setattr(threads, "PARALLEL_ELEMENTS", 0 if parallel else 1 << 60)
    monkeypatch.setattr(threads, "PARALLEL_MACS", 0 if parallel else 1 << 60)
    rng = np.random.default_rng(1)
    case = {"x": rng.standard_normal((7, 9, 8, 8)).astype(np.float32),
            "f": rng.standard_normal((5, 5, 8, 9)).astype(np.float32), "strides": (1, 1), "dilations": (1, 1),
            "padding": padding, "fmt": "NHWC", "rng": rng}
    with tf.Graph().as_default():
        plan = _compare(_conv_graph(case))
    assert _sources(plan).count("kernels/conv: winograd") == 3


@st.composite
def input_grad_cases(draw: Any) -> tuple[Any, ...]:
    """dy and a filter of a random stride-1 conv with explicit padding on all four sides."""
    dt = draw(st.sampled_from([np.float32, np.float64]))
    kh, kw = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    h, w = draw(st.integers(kh, 13)), draw(st.integers(kw, 13))
    pt, pb, pl, pr = (draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw))
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(8, 11)), draw(st.integers(8, 11))
    g = conv.ConvGeom(kh, kw, 1, 1, 1, 1, pt, pl, h + pt + pb - kh + 1, w + pl + pr - kw + 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    dy = rng.standard_normal((n, g.oh, g.ow, o)).astype(dt)
    return dy, rng.standard_normal((kh, kw, c, o)).astype(dt), g, (n, h, w, c)


@settings(max_examples=40, deadline=None)
@given(input_grad_cases())
def test_both_winograd_input_gradients_equal_gemm_and_col2im(case: tuple[Any, ...]) -> None:
    """The adjoint form (the forward's tiles, transposed maps) and the rotated-filter form give what
    GEMM + col2im gives, for every padding (the driver picks the one with fewer tiles)."""
    dy, f, g, shape = case
    want = conv.conv2d_backprop_input(dy, f, g, np.empty(shape, dy.dtype), conv.fresh)
    adjoint = winograd._input_grad_adjoint(dy, f, g, np.full(shape, np.nan, dy.dtype), conv.fresh)
    either = winograd.input_grad(dy, f, g, np.full(shape, np.nan, dy.dtype), conv.fresh)
    tol = 5e-5 if dy.dtype == np.float32 else 1e-11
    scale = max(float(np.abs(want).max()), 1.0)
    np.testing.assert_allclose(adjoint, want, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(either, want, rtol=0, atol=tol * scale)


def test_valid_conv_input_gradient_takes_the_adjoint_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """dcgan's second discriminator layer (12x12 inputs, 5x5 window, 8x8 outputs) has 4 forward tiles and
    9 in the rotated-filter form: the adjoint runs. A SAME conv has as many either way: the rotated form."""
    calls: list[tuple[int, int]] = []
    adjoint = winograd._input_grad_adjoint

    def spy(dy: np.ndarray, f: np.ndarray, g: Any, dx: np.ndarray, scratch: Any) -> np.ndarray:
        calls.append((g.oh, g.ow))
        return adjoint(dy, f, g, dx, scratch)

    monkeypatch.setattr(winograd, "_input_grad_adjoint", spy)
    rng = np.random.default_rng(2)
    f = rng.standard_normal((5, 5, 8, 8)).astype(np.float32)
    for pad, h, oh in ((0, 12, 8), (2, 14, 14)):
        dy = rng.standard_normal((2, oh, oh, 8)).astype(np.float32)
        g = conv.ConvGeom(5, 5, 1, 1, 1, 1, pad, pad, oh, oh)
        winograd.input_grad(dy, f, g, np.empty((2, h, h, 8), np.float32), conv.fresh)
    assert calls == [(8, 8)]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e38])
def test_non_finite_or_huge_inputs_take_the_gemm_path(bad: float) -> None:
    """An inf or NaN would spread over its tile (inf - inf) and a huge value could overflow the
    transforms: such inputs run im2col + GEMM, which gives the interpreter's values."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6, 8)).astype(np.float32)
    x[1, 2, 3, 4] = bad
    f = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 1, 1, 6, 6)
    out = np.empty((2, 6, 6, 8), np.float32)
    assert conv.forward(x, f, g, out, conv.fresh) == "im2col+gemm"
    want = np.empty_like(out)
    conv.conv2d(x, f, g, want, conv.fresh)
    np.testing.assert_array_equal(out, want)
    df = np.empty_like(f)
    assert conv.filter_grad(x, out, g, df, conv.fresh, 1) == "im2col+gemm"
    x[1, 2, 3, 4] = 0
    assert conv.forward(x, f, g, out, conv.fresh) == "winograd"
    assert conv.input_grad(out, f, g, np.empty_like(x), conv.fresh) == "winograd"


def test_explain_names_winograd() -> None:
    with tf.Graph().as_default():
        x = tf.Variable(np.ones((2, 14, 14, 8), np.float32))  # a variable: its input gradient is needed
        f = tf.Variable(tf.ones([5, 5, 8, 16]))
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"), tf.ones([16])))
        step = tf.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_sum(y))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(step)
        text = str(tf.explain(step))
    assert "kernels/conv: winograd F(4x4,5x5) +bias+relu" in text
    assert text.count("kernels/conv: winograd") >= 3


def test_thin_conv_gemms_ask_for_one_blas_thread() -> None:
    """A conv whose GEMMs have a side under THIN_GEMM (patch length kh*kw*C or O) reports no GEMM width, so
    its step runs OpenBLAS on one thread; a wide one reports its channel count."""
    from jitflow.compiler import window_steps

    with tf.Graph().as_default():
        thin = tf.nn.conv2d(tf.zeros([2, 8, 8, 1]), tf.zeros([2, 2, 1, 64]), [1, 2, 2, 1], "SAME")
        wide = tf.nn.conv2d(tf.zeros([2, 8, 8, 32]), tf.zeros([5, 5, 32, 64]), [1, 1, 1, 1], "SAME")
        assert window_steps._width(thin.op) == 0 and window_steps._width(wide.op) == 64


def test_filter_transform_cache_follows_in_place_updates() -> None:
    """The transformed filter is reused only while the filter's values are equal: an update in place (a
    training step's ApplyAdam writes into the same buffer) is seen on the next call."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 9, 9, 8))
    f = rng.standard_normal((5, 5, 8, 8))
    g = conv.ConvGeom(5, 5, 1, 1, 1, 1, 2, 2, 9, 9)
    got, want = np.empty((1, 9, 9, 8)), np.empty((1, 9, 9, 8))
    for _ in range(3):
        for kernel, out in ((winograd.forward, got), (conv.conv2d, want)):
            kernel(x, f, g, out, conv.fresh)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        dx, dx_want = np.empty_like(x), np.empty_like(x)
        winograd.input_grad(got, f, g, dx, conv.fresh)
        conv.conv2d_backprop_input(got, f, g, dx_want, conv.fresh)
        np.testing.assert_allclose(dx, dx_want, rtol=1e-10, atol=1e-10)
        f *= 0.5  # in place: same buffer, new values
        f[0, 0, 0, 0] += 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e38])
def test_a_filter_that_turns_bad_in_place_takes_the_gemm_path(bad: float) -> None:
    """The filter's safety is decided with its cached transform: a value written into the cached filter's
    buffer (NaN or inf) is a cache miss, the forward and both gradients leave Winograd for it, and come
    back when the value is finite again."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 8)).astype(np.float32)
    f = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 1, 1, 6, 6)
    out, want = np.empty((2, 6, 6, 8), np.float32), np.empty((2, 6, 6, 8), np.float32)
    assert conv.forward(x, f, g, out, conv.fresh) == "winograd"
    f[1, 1, 2, 3] = bad
    assert conv.forward(x, f, g, out, conv.fresh) == "im2col+gemm"
    conv.conv2d(x, f, g, want, conv.fresh)
    np.testing.assert_array_equal(out, want)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx, dx_want = np.empty_like(x), np.empty_like(x)
    assert conv.input_grad(dy, f, g, dx, conv.fresh) == "gemm+col2im"
    conv.conv2d_backprop_input(dy, f, g, dx_want, conv.fresh)
    np.testing.assert_array_equal(dx, dx_want)
    f[1, 1, 2, 3] = 0.5
    assert conv.forward(x, f, g, out, conv.fresh) == "winograd"
    conv.conv2d(x, f, g, want, conv.fresh)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


_TF_CASES = {"same_5x5": "SAME", "valid_3x3": "VALID", "explicit_4x2": [[0, 0], [3, 0], [1, 1], [0, 0]]}


@pytest.mark.parametrize("name", sorted(_TF_CASES))
def test_winograd_matches_tensorflows_conv_and_gradients(name: str) -> None:
    """TensorFlow's conv2d, input and filter gradients (recorded by tests/data/make_winograd_fixture.py)."""
    import os

    data = np.load(os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "winograd_tf.npz"))
    x, f, r = (data[f"{name}/{k}"] for k in ("x", "f", "r"))
    with tf.Graph().as_default():
        xt, ft = tf.constant(x), tf.constant(f)
        y = tf.nn.conv2d(xt, ft, [1, 1, 1, 1], _TF_CASES[name])
        fetches = [y, *tf.gradients(y, [xt, ft], grad_ys=tf.constant(r))]
        with tf.Session() as sess:
            got = sess.run(fetches)
        text = str(tf.explain(fetches))
    for k, value in zip(("y", "dx", "df"), got):
        want = data[f"{name}/{k}"]
        np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()), err_msg=k)
    assert text.count("kernels/conv: winograd") == 3


def test_every_kind_of_bias_shares_one_compiled_kernel() -> None:
    """A variable's value is read-only, a fed bias writable, no bias a zero placeholder: the kernels take
    each as a read-only view, so Numba compiles the output transform and the direct conv once for all."""
    from jitflow.kernels import direct, pixel_conv

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 9, 9, 8)).astype(np.float32)
    frozen = rng.standard_normal(8).astype(np.float32)
    frozen.flags.writeable = False
    for kernel, run, c in ((winograd._tiles_out_images, winograd.forward, 8),
                           (pixel_conv._images, direct.forward, 2)):
        f = rng.standard_normal((3, 3, c, 8)).astype(np.float32)
        g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 1, 1, 9, 9)
        run(x[..., :c], f, g, np.empty((2, 9, 9, 8), np.float32), conv.fresh, frozen.copy())
        seen = set(kernel.signatures)
        for bias in (frozen, None):
            run(x[..., :c], f, g, np.empty((2, 9, 9, 8), np.float32), conv.fresh, bias)
        assert set(kernel.signatures) == seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_small_batch_shares_its_blocks_with_the_helpers_and_keeps_its_bits(dtype: type) -> None:
    """A batch of one chunk runs its input transform, per-point GEMMs and output transform as blocks
    (`winograd_jobs`): with the helpers spinning they take some, and every value is the same as the caller's
    alone, and the conv's."""
    from jitflow.kernels import packed_helpers

    if packed_helpers.HELPERS.count <= 0:
        pytest.skip("one core: no helpers")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 14, 14, 32)).astype(dtype)
    f = (rng.standard_normal((5, 5, 32, 64)) * 0.1).astype(dtype)
    bias = rng.standard_normal(64).astype(dtype)
    g = conv.ConvGeom(5, 5, 1, 1, 1, 1, 2, 2, 14, 14)
    assert winograd.one_chunk(1, 32, 64, g, x.itemsize)
    alone = winograd.forward(x, f, g, np.full((1, 14, 14, 64), np.nan, dtype), conv.fresh, bias, True)
    until_helpers_join(lambda: np.testing.assert_array_equal(
        winograd.forward(x, f, g, np.full((1, 14, 14, 64), np.nan, dtype), conv.fresh, bias, True), alone))
    want = conv.conv2d(x, f, g, np.empty((1, 14, 14, 64), dtype), conv.fresh, bias=bias, relu=True)
    tol = 5e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(alone, want, rtol=0, atol=tol * max(float(np.abs(want).max()), 1.0))
