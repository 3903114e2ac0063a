"""jitflow.codegen.vmath: accuracy on dense grids, special values, and vectorization.

Every function is compiled once per module into a small map kernel (compiling the ~35
kernels is most of the file's ~10 s of CPU); the grids are evaluated through them, so
the checks themselves take about a second.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, prange

from jitflow.codegen import vmath

DTYPES = ("float32", "float64")
NAMES = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "sin", "cos", "tan", "sinh", "cosh",
         "atan", "asin", "acos")
BINARY = ("pow", "atan2")

# Extended precision for the float64 reference where the platform has it.
_HAS_LONGDOUBLE = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant
# Max error allowed, in units of the dtype's eps (relative): float32 ~2-3 ulp, float64 a few ulp.
_EPS_BUDGET = {"float32": 3.0, "float64": 4.0}


def _map_kernel(fn: Any) -> Any:
    @njit
    def kern(x: Any, out: Any) -> None:
        for i in range(x.size):
            out[i] = fn(x[i])

    return kern


def _map2_kernel(fn: Any) -> Any:
    @njit
    def kern(x: Any, y: Any, out: Any) -> None:
        for i in range(x.size):
            out[i] = fn(x[i], y[i])

    return kern


@pytest.fixture(scope="module")
def kernels() -> dict[tuple[str, str], Any]:
    return {key: (_map2_kernel(fn) if key[0] in BINARY else _map_kernel(fn)) for key, fn in vmath.VMATH.items()}


def _apply(kernels: dict[tuple[str, str], Any], name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    kernels[(name, x.dtype.name)](x, out)
    return out


def _reference(name: str, x: np.ndarray) -> np.ndarray:
    """The exact-enough answer as float64 (float32 inputs) or extended precision (float64)."""
    wide = np.longdouble if (x.dtype == np.float64 and _HAS_LONGDOUBLE) else np.float64
    d = x.astype(wide)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1 / (1 + np.exp(-d))
        if name == "softplus":
            return np.logaddexp(wide(0), d)
        return getattr(np, {"atan": "arctan", "asin": "arcsin", "acos": "arccos"}.get(name, name))(d)


def _grid(name: str, dtype: str) -> np.ndarray:
    """Dense, log-spaced and uniform points covering the whole useful domain."""
    big = 88.0 if dtype == "float32" else 709.0
    fin = np.finfo(dtype)
    tiny_exp = int(np.log10(fin.smallest_subnormal)) + 1
    huge_exp = int(np.log10(fin.max))
    mags = np.logspace(tiny_exp, huge_exp, 40_000)
    if name in ("log",):
        parts = [mags, np.linspace(0.25, 4.0, 40_001)]
    elif name == "log1p":
        parts = [mags, -np.logspace(tiny_exp, 0, 20_000)[:-1], np.linspace(-0.999, 3.0, 40_001)]
    elif name in ("exp", "expm1"):
        small = mags[mags < 1]
        parts = [np.linspace(-big - 20, big + 1, 60_001), np.linspace(-2, 2, 40_001), small, -small]
    elif name in ("asin", "acos"):  # the domain, its ends, and outside it (nan)
        near_one = 1 - np.logspace(-17, -0.1, 20_000)
        parts = [np.linspace(-1.5, 1.5, 60_001), near_one, -near_one, mags[mags < 1], -mags[mags < 1]]
    elif name in ("sinh", "cosh"):  # up to and past the overflow edge
        small = mags[mags < 1]
        parts = [np.linspace(-big - 2, big + 2, 60_001), np.linspace(-2, 2, 40_001), small, -small]
    elif name in ("sin", "cos", "tan"):
        inside = mags[mags < 2.0**50]  # the documented domain of the argument reduction
        near_quadrants = np.arange(-2000, 2000) * (np.pi / 2)
        parts = [np.linspace(-10, 10, 40_001), inside, -inside, near_quadrants, near_quadrants * 1e6]
    else:
        parts = [np.linspace(-50, 50, 60_001), np.linspace(-2, 2, 40_001), mags, -mags]
    return np.concatenate(parts).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_dense_grid_accuracy(kernels: dict[tuple[str, str], Any], name: str, dtype: str) -> None:
    x = _grid(name, dtype)
    got = _apply(kernels, name, x).astype(np.float64)
    ref = _reference(name, x)
    fin = np.finfo(dtype)
    with np.errstate(over="ignore"):
        ref_rounded = ref.astype(dtype).astype(np.float64)
    # the same inf/nan/zero pattern as the reference rounded to the dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref_rounded))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref_rounded))
    finite = np.isfinite(ref_rounded)
    normal = finite & (np.abs(ref_rounded) >= fin.tiny)
    rel = (np.abs(got[normal] - ref[normal]) / np.abs(ref[normal])).astype(np.float64)
    worst = int(np.argmax(rel))
    assert rel[worst] <= _EPS_BUDGET[dtype] * float(fin.eps), (
        f"{name}_{dtype}: rel err {rel[worst]:.3g} at x={x[normal][worst]!r}"
    )
    if dtype == "float32":
        assert rel[worst] <= 1e-6
    # subnormal results: within one subnormal step (gradual underflow, rounded once)
    sub = finite & ~normal
    if sub.any():
        absdiff = np.abs(got[sub] - ref[sub]).astype(np.float64)
        assert absdiff.max() <= float(fin.smallest_subnormal)


F32_MAX = float(np.finfo(np.float32).max)
F64_MAX = float(np.finfo(np.float64).max)
INF, NAN = float("inf"), float("nan")

# (name, input, expected); -0.0 vs 0.0 is checked by sign bit.
SPECIALS: list[tuple[str, float, float]] = [
    ("exp", INF, INF), ("exp", -INF, 0.0), ("exp", NAN, NAN), ("exp", 0.0, 1.0), ("exp", -0.0, 1.0),
    ("expm1", INF, INF), ("expm1", -INF, -1.0), ("expm1", NAN, NAN), ("expm1", 0.0, 0.0),
    ("expm1", -0.0, -0.0), ("expm1", -1000.0, -1.0),
    ("log", 0.0, -INF), ("log", -0.0, -INF), ("log", -1.0, NAN), ("log", -INF, NAN), ("log", INF, INF),
    ("log", NAN, NAN), ("log", 1.0, 0.0),
    ("log1p", -1.0, -INF), ("log1p", -2.0, NAN), ("log1p", -INF, NAN), ("log1p", INF, INF),
    ("log1p", NAN, NAN), ("log1p", 0.0, 0.0), ("log1p", -0.0, -0.0),
    ("tanh", INF, 1.0), ("tanh", -INF, -1.0), ("tanh", NAN, NAN), ("tanh", 0.0, 0.0), ("tanh", -0.0, -0.0),
    ("tanh", 30.0, 1.0), ("tanh", -30.0, -1.0),
    ("sigmoid", INF, 1.0), ("sigmoid", -INF, 0.0), ("sigmoid", NAN, NAN), ("sigmoid", 0.0, 0.5),
    ("sigmoid", 1000.0, 1.0), ("sigmoid", -1000.0, 0.0),
    ("softplus", INF, INF), ("softplus", -INF, 0.0), ("softplus", NAN, NAN), ("softplus", 1000.0, 1000.0),
    ("softplus", -1000.0, 0.0),
    ("sin", INF, NAN), ("sin", -INF, NAN), ("sin", NAN, NAN), ("sin", 0.0, 0.0), ("sin", -0.0, -0.0),
    ("cos", INF, NAN), ("cos", NAN, NAN), ("cos", 0.0, 1.0), ("cos", -0.0, 1.0),
    ("tan", INF, NAN), ("tan", NAN, NAN), ("tan", 0.0, 0.0), ("tan", -0.0, -0.0),
    # outside the accurately reducible range the answer is nan, never a wrong number
    ("sin", 2.0**51, NAN), ("cos", -(2.0**60), NAN), ("tan", 2.0**52, NAN),
    ("sinh", INF, INF), ("sinh", -INF, -INF), ("sinh", NAN, NAN), ("sinh", 0.0, 0.0), ("sinh", -0.0, -0.0),
    ("sinh", 1000.0, INF), ("sinh", -1000.0, -INF),
    ("cosh", INF, INF), ("cosh", -INF, INF), ("cosh", NAN, NAN), ("cosh", 0.0, 1.0), ("cosh", -1000.0, INF),
    ("atan", INF, float(np.pi / 2)), ("atan", -INF, float(-np.pi / 2)), ("atan", NAN, NAN), ("atan", -0.0, -0.0),
    ("asin", 1.0, float(np.pi / 2)), ("asin", -0.0, -0.0), ("asin", 1.5, NAN), ("asin", -INF, NAN), ("asin", NAN, NAN),
    ("acos", 1.0, 0.0), ("acos", -1.0, float(np.pi)), ("acos", 0.0, float(np.pi / 2)), ("acos", -2.0, NAN),
    ("acos", NAN, NAN),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(kernels: dict[tuple[str, str], Any], dtype: str) -> None:
    failures = []
    for name, arg, exact in SPECIALS:
        got = float(_apply(kernels, name, np.array([arg], dtype=dtype))[0])
        want = float(np.array(exact, dtype=dtype))  # e.g. pi/2 correctly rounded to the dtype
        same = (np.isnan(got) and np.isnan(want)) or (got == want and np.signbit(got) == np.signbit(want))
        if not same:
            failures.append(f"{name}({arg}) = {got}, want {want}")
    assert not failures, failures


@pytest.mark.parametrize(("dtype", "big"), [("float32", F32_MAX), ("float64", F64_MAX)])
def test_overflow_and_underflow_edges(kernels: dict[tuple[str, str], Any], dtype: str, big: float) -> None:
    fin = np.finfo(dtype)
    x = np.array([big, -big, np.log(big) * 1.0001, np.log(big) * 0.9999], dtype=dtype)
    e = _apply(kernels, "exp", x)
    assert np.isinf(e[0]) and e[1] == 0.0 and np.isinf(e[2]) and np.isfinite(e[3])
    assert np.isinf(_apply(kernels, "expm1", x)[0]) and _apply(kernels, "expm1", x)[1] == -1.0
    # log of the extremes of the finite range, subnormals included
    ends = np.array([fin.smallest_subnormal, fin.tiny, fin.max], dtype=dtype)
    got = _apply(kernels, "log", ends)
    np.testing.assert_allclose(got, _reference("log", ends).astype(np.float64), rtol=2 * float(fin.eps))
    # log1p near the largest finite value must not overflow
    assert np.isfinite(_apply(kernels, "log1p", np.array([fin.max], dtype=dtype))[0])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(DTYPES), st.data())
def test_any_input_matches_the_reference(kernels: dict[tuple[str, str], Any], dtype: str, data: Any) -> None:
    width = 32 if dtype == "float32" else 64
    values = data.draw(st.lists(st.floats(width=width), min_size=1, max_size=64))
    x = np.array(values, dtype=dtype)
    fin = np.finfo(dtype)
    for name in NAMES:
        xs = x[np.abs(x) < 2.0**30] if name in ("sin", "cos", "tan") else x  # their documented full-accuracy domain
        got = _apply(kernels, name, xs).astype(np.float64)
        with np.errstate(all="ignore"):
            want = _reference(name, xs).astype(dtype).astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=(_EPS_BUDGET[dtype] + 0.5) * float(fin.eps),
                                   atol=float(fin.smallest_subnormal), err_msg=f"{name}_{dtype}")


_VEC_RE = re.compile(r"<(\d+) x (float|double)>")
_LIBM_RE = re.compile(r"call [^\n]*@(expf?|logf?|log1pf?|expm1f?|tanhf?|sinf?|cosf?|tanf?|sinhf?|coshf?)\(")


def _apply2(kernels: dict[tuple[str, str], Any], name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    kernels[(name, x.dtype.name)](x, y, out)
    return out


def _pow(kernels: dict[tuple[str, str], Any], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _apply2(kernels, "pow", x, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_accuracy(kernels: dict[tuple[str, str], Any], dtype: str) -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    big = 88.0 if dtype == "float32" else 700.0
    # y*log(x) up to the overflow edge, where a plain float64 log would lose ~10 ulp
    xb = rng.uniform(1.05, 1.45, n)
    x = np.concatenate([rng.uniform(0, 4, n), 10 ** rng.uniform(-30, 30, n), -rng.uniform(0, 4, n), xb])
    y = np.concatenate([rng.uniform(-20, 20, n), rng.uniform(-4, 4, n), np.round(rng.uniform(-20, 20, n)),
                        rng.uniform(-big, big, n) / np.log(xb)])
    x, y = x.astype(dtype), y.astype(dtype)
    got = _pow(kernels, x, y).astype(np.float64)
    wide = np.longdouble if (dtype == "float64" and _HAS_LONGDOUBLE) else np.float64
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(wide), y.astype(wide))
        ref_rounded = ref.astype(dtype).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref_rounded))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref_rounded))
    fin = np.finfo(dtype)
    normal = np.isfinite(ref_rounded) & (np.abs(ref_rounded) >= fin.tiny)
    rel = (np.abs(got[normal] - ref[normal]) / np.abs(ref[normal])).astype(np.float64)
    assert rel.max() <= _EPS_BUDGET[dtype] * float(fin.eps), f"pow_{dtype}: rel err {rel.max():.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_of_two_is_the_rounded_square(kernels: dict[tuple[str, str], Any], dtype: str) -> None:
    """x**2 (`tf.pow(d, 2)` in a loss) takes a fast path: the correctly rounded square, as NumPy's power
    gives it, for every x (the general path's exp(2 log x) was off by an ulp now and then, 30x slower)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(20_000) * 10.0 ** rng.uniform(-20, 20, 20_000),
                        [0.0, -0.0, INF, -INF, NAN, 1e30, -1e-30]]).astype(dtype)
    got = _pow(kernels, x, np.full_like(x, 2.0))
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, np.power(x, np.asarray(2.0, dtype)))
        np.testing.assert_array_equal(got, x * x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "ufunc"), [("pow", np.power), ("atan2", np.arctan2)])
def test_binary_special_values_match_numpy(kernels: dict[tuple[str, str], Any], name: str, ufunc: Any,
                                           dtype: str) -> None:
    vals = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 2.5, INF, -INF, NAN]
    xs, ys = (a.ravel() for a in np.meshgrid(np.array(vals, dtype), np.array(vals, dtype)))
    got = _apply2(kernels, name, xs, ys)
    with np.errstate(all="ignore"):
        want = ufunc(xs, ys)
    for x, y, g, w in zip(xs, ys, got, want):
        if np.isnan(w):
            assert np.isnan(g), f"{name}({x}, {y}) = {g}, want nan"
        elif np.isinf(w) or w == 0 or abs(w) == 1:
            assert g == w and np.signbit(g) == np.signbit(w), f"{name}({x}, {y}) = {g}, want {w}"
        else:
            assert abs(g - w) <= 2 * np.spacing(abs(w)), f"{name}({x}, {y}) = {g}, want {w}"
            assert np.signbit(g) == np.signbit(w), f"{name}({x}, {y}) = {g}, want {w}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_atan2_accuracy(kernels: dict[tuple[str, str], Any], dtype: str) -> None:
    rng = np.random.default_rng(11)
    n = 50_000
    signs = rng.choice([-1.0, 1.0], (2, n))
    y = np.concatenate([rng.normal(0, 1, n), signs[0] * 10 ** rng.uniform(-20, 20, n)]).astype(dtype)
    x = np.concatenate([rng.normal(0, 1, n), signs[1] * 10 ** rng.uniform(-20, 20, n)]).astype(dtype)
    got = _apply2(kernels, "atan2", y, x).astype(np.float64)
    wide = np.longdouble if (dtype == "float64" and _HAS_LONGDOUBLE) else np.float64
    ref = np.arctan2(y.astype(wide), x.astype(wide))
    fin = np.finfo(dtype)
    normal = np.abs(ref) >= fin.tiny
    rel = (np.abs(got[normal] - ref[normal]) / np.abs(ref[normal])).astype(np.float64)
    assert rel.max() <= _EPS_BUDGET[dtype] * float(fin.eps), f"atan2_{dtype}: rel err {rel.max():.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BINARY)
def test_loop_calling_binary_function_vectorizes(kernels: dict[tuple[str, str], Any], name: str,
                                                 dtype: str) -> None:
    kern = kernels[(name, dtype)]
    x = np.ones(4, dtype=dtype)
    kern(x, x, np.empty_like(x))
    text = "".join(kern.inspect_llvm().values())
    assert _VEC_RE.search(text), f"the loop calling {name} was not vectorized"
    assert not re.search(r"call [^\n]*@(powf?|atan2f?)\(", text), "a scalar libm call survived"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_loop_calling_function_vectorizes(kernels: dict[tuple[str, str], Any], name: str, dtype: str) -> None:
    kern = kernels[(name, dtype)]
    if not kern.signatures:  # the accuracy test compiles it; compile here if run alone
        x = np.ones(4, dtype=dtype)
        kern(x, np.empty_like(x))
    text = "".join(kern.inspect_llvm().values())
    elem = "float" if dtype == "float32" else "double"
    widths = {int(n) for n, t in _VEC_RE.findall(text) if t == elem}
    assert widths and max(widths) >= 2, f"no <N x {elem}> in the loop calling {name}_{dtype}"
    assert not _LIBM_RE.search(text), "a scalar libm call survived"


def test_fastmath_caller_keeps_special_values() -> None:
    # Numba lets callees inherit fastmath; the functions must opt out or nan/inf checks vanish
    tanh, exp, log, sigmoid = vmath.tanh_f32, vmath.exp_f32, vmath.log_f32, vmath.sigmoid_f32

    @njit(fastmath=True)
    def kern(x: Any, out: Any) -> None:
        for i in range(x.size):
            out[0, i] = tanh(x[i])
            out[1, i] = exp(x[i])
            out[2, i] = log(x[i])
            out[3, i] = sigmoid(x[i])

    x = np.array([NAN, INF, -INF, 0.0, -1.0, 1.0], dtype=np.float32)
    out = np.empty((4, x.size), dtype=np.float32)
    kern(x, out)
    with np.errstate(all="ignore"):
        want = np.stack([np.tanh(x), np.exp(x), np.log(x), 1 / (1 + np.exp(-x))])
    np.testing.assert_allclose(out, want, rtol=3e-7, equal_nan=True)


def test_prange_kernel_vectorizes_and_is_correct() -> None:
    exp = vmath.exp_f32

    @njit(parallel=True)
    def kern(x: Any, out: Any) -> None:
        for i in prange(x.size):
            out[i] = exp(x[i])

    x = np.linspace(-90, 90, 10_001, dtype=np.float32)
    out = np.empty_like(x)
    kern(x, out)
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(out, want, rtol=3e-7, atol=float(np.finfo(np.float32).smallest_subnormal))
    text = "".join(kern.inspect_llvm().values())
    assert re.search(r"<\d+ x float>", text), "the prange loop calling exp_f32 was not vectorized"


def test_callable_from_python_too() -> None:
    # handy when debugging a kernel; the compiled functions keep their Python wrappers
    assert vmath.exp_f32(np.float32(1.0)) == pytest.approx(np.e, rel=2e-7)
    assert vmath.pow_f64(2.0, 0.5) == pytest.approx(np.sqrt(2.0), rel=1e-15)


_WIDE_SCRIPT = """
import re
from numba import njit, types
from jitflow.codegen import vmath as V
exp = V.exp_f32
sig = types.void(types.float32[::1], types.float32[::1])
@njit(sig)
def wide(x, out):
    V.wide_vectors()
    for i in range(x.size):
        out[i] = exp(x[i])
@njit(sig)
def plain(x, out):
    for i in range(x.size):
        out[i] = exp(x[i])
for f in (wide, plain):
    ir = "".join(f.inspect_llvm().values())
    print(max(int(n) for n in re.findall(r"<(\\d+) x float>", ir)), '"prefer-vector-width"="512"' in ir)
"""


def test_wide_vectors_is_a_per_function_setting() -> None:
    """Compiled (not run) for an AVX-512 Xeon, whose LLVM tuning prefers 256-bit vectors: the function that
    asks for wide vectors gets 16 floats per vector, the one next to it keeps 8."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_FEATURES"}
    env["NUMBA_CPU_NAME"] = "skylake-avx512"
    res = subprocess.run([sys.executable, "-c", _WIDE_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert res.stdout.split() == ["16", "True", "8", "False"]


_DEBUGINFO_SCRIPT = """
import numpy as np
from numba import njit, types
from jitflow.codegen.vmath import exp_f32
@njit(types.void(types.float32[::1], types.float32[::1]))
def k(x, out):
    for i in range(x.size):
        out[i] = exp_f32(x[i])
x = np.linspace(-3, 3, 37).astype(np.float32)
out = np.empty_like(x)
k(x, out)
print(float(np.max(np.abs(out / np.exp(x) - 1))))
"""


def test_kernels_compile_under_numba_debuginfo() -> None:
    """NUMBA_DEBUGINFO=1 (also set by NUMBA_ENABLE_PROFILING) marks every function noinline; the vmath
    functions, which ask to be inlined, must still compile (LLVM refuses both attributes on one function)."""
    env = dict(os.environ, NUMBA_DEBUGINFO="1", NUMBA_CACHE_DIR=tempfile.mkdtemp())
    res = subprocess.run([sys.executable, "-c", _DEBUGINFO_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=300, check=True)
    assert float(res.stdout.split()[-1]) < 1e-6


def test_lookup_by_name_and_dtype_forms() -> None:
    assert vmath.lookup("exp", "float32") is vmath.exp_f32
    assert vmath.lookup("exp", np.float64) is vmath.exp_f64
    assert vmath.lookup("tanh", np.dtype("float32")) is vmath.tanh_f32
    assert vmath.lookup("exp", "int32") is None
    assert vmath.lookup("no_such_function", "float32") is None
    assert vmath.lookup("exp", "not a dtype") is None
    assert vmath.lookup("exp", None) is None  # type: ignore[arg-type]
    assert vmath.lookup("exp", "float16") is None
    assert set(vmath.NAMES) == {*NAMES, *BINARY}
    assert all((n, d) in vmath.VMATH for n in vmath.NAMES for d in DTYPES)
