"""Probe for jitflow.codegen.vmath: W2 chain speed, vectorization, accuracy; coefficient fits.

A developer tool, run by hand (nothing in the test suite or the benchmarks runs it): it re-derives
vmath's polynomial coefficients and prints the accuracy table quoted in vmath's docstring.

    python bench/vmath_probe.py                 # W2 on 10M float32: vmath vs NumPy vs math.*
    python bench/vmath_probe.py --wide          # the same with 512-bit vectors allowed process-wide
    python bench/vmath_probe.py --each          # also each function vs its NumPy ufunc
    python bench/vmath_probe.py --accuracy      # max relative error of every function
    python bench/vmath_probe.py --fit           # re-derive the polynomial coefficients (mpmath)

W2: ``y = tanh(1.5x+0.3)*sigmoid(x) - 0.5x**2; out = exp(-|y|) + max(y, 0)``.
Every time is the median of ``--repeat`` runs after a warm-up, measured side by side in
one process; "1 thread" rows run the same kernels under ``numba.set_num_threads(1)``,
which is the stable number on a shared machine.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def times(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU time of the process) of ``repeat`` calls after a warm-up.

    CPU time (all threads) is the work a call costs; unlike wall time it hardly moves
    when other processes share the cores.
    """
    fn()
    ts, cs = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return float(np.median(ts)), float(np.min(ts)), float(np.median(cs))


def median_time(fn: Callable[[], object], repeat: int) -> float:
    return times(fn, repeat)[0]


def vector_types(dispatcher: Any) -> list[str]:
    """The float vector types in the optimized LLVM IR of a compiled function."""
    text = "".join(dispatcher.inspect_llvm().values())
    return sorted(set(re.findall(r"<\d+ x (?:float|double)>", text)))


def w2_numpy(x: np.ndarray) -> np.ndarray:
    a, b, h, zero, one = (np.float32(v) for v in (1.5, 0.3, 0.5, 0.0, 1.0))
    y = np.tanh(a * x + b) * (one / (one + np.exp(-x))) - h * x * x
    return np.exp(-np.abs(y)) + np.maximum(y, zero)


def w2_numpy_inplace(x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """The same chain on preallocated buffers: no temporaries, no page faults."""
    a, b, h, zero, one = (np.float32(v) for v in (1.5, 0.3, 0.5, 0.0, 1.0))
    np.negative(x, out=tmp)
    np.exp(tmp, out=tmp)
    np.add(tmp, one, out=tmp)
    np.divide(one, tmp, out=tmp)  # sigmoid(x)
    np.multiply(x, a, out=out)
    np.add(out, b, out=out)
    np.tanh(out, out=out)
    np.multiply(out, tmp, out=out)
    np.multiply(x, x, out=tmp)
    np.multiply(tmp, h, out=tmp)
    np.subtract(out, tmp, out=out)  # y
    np.maximum(out, zero, out=tmp)
    np.abs(out, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.add(out, tmp, out=out)
    return out


def w2_reference(x: np.ndarray) -> np.ndarray:
    """The chain in float64, the yardstick for accuracy."""
    d = x.astype(np.float64)
    y = np.tanh(1.5 * d + 0.3) / (1.0 + np.exp(-d)) - 0.5 * d * d
    return np.exp(-np.abs(y)) + np.maximum(y, 0.0)


def build_kernels() -> tuple[Any, Any]:
    """The fused W2 kernel with vmath functions and with math.* (libm) calls."""
    from numba import njit, prange

    from jitflow.codegen.vmath import exp_f32, sigmoid_f32, tanh_f32

    a, b, h, zero, one = (np.float32(v) for v in (1.5, 0.3, 0.5, 0.0, 1.0))

    @njit(parallel=True)
    def w2_vmath(x: Any, out: Any) -> None:
        for i in prange(x.size):
            v = x[i]
            y = tanh_f32(a * v + b) * sigmoid_f32(v) - h * v * v
            out[i] = exp_f32(-abs(y)) + (y if y > zero else zero)

    @njit(parallel=True)
    def w2_libm(x: Any, out: Any) -> None:
        for i in prange(x.size):
            v = x[i]
            y = math.tanh(a * v + b) * (one / (one + math.exp(-v))) - h * v * v
            out[i] = math.exp(-abs(y)) + (y if y > zero else zero)

    return w2_vmath, w2_libm


def enable_wide_vectors() -> bool:
    """Lets every Numba function of this (probe) process use 512-bit vectors on AVX-512 hosts.

    A process-wide Numba setting, fine for this tool; jitflow's kernels ask for 512-bit vectors per
    function instead (`vmath.wide_vectors`). It must precede the first compile; False when it cannot
    take effect (no AVX-512, or NUMBA_CPU_FEATURES set).
    """
    from llvmlite import binding as llvm
    from numba.core import config

    base = getattr(config, "CPU_FEATURES", None)
    feats = llvm.get_host_cpu_features().flatten()
    if base or "+avx512f" not in feats.split(","):
        return False
    setattr(config, "CPU_FEATURES", feats + ",-prefer-256-bit")  # noqa: B010 - not in numba's stubs
    return True


def run_w2(n: int, repeat: int) -> None:
    import numba

    w2_vmath, w2_libm = build_kernels()
    x = np.random.default_rng(0).uniform(-10, 10, n).astype(np.float32)
    out = np.empty_like(x)
    t0 = time.perf_counter()
    w2_vmath(x, out)
    print(f"compile w2_vmath (with its vmath functions): {time.perf_counter() - t0:.2f} s")
    w2_libm(x, out)
    ref = w2_reference(x)
    w2_vmath(x, out)
    err_v = float(np.max(np.abs(out - ref) / np.abs(ref)))
    base = w2_numpy(x)
    err_np = float(np.max(np.abs(base - ref) / np.abs(ref)))
    agree = float(np.max(np.abs(out - base) / np.abs(base)))
    print(f"W2 n={n} float32, {repeat} runs; wall ms: median (min); CPU ms: median; ratios of medians")
    t_np, m_np, c_np = times(lambda: w2_numpy(x), repeat)
    print(f"  numpy ufuncs        wall {t_np * 1e3:7.2f} ({m_np * 1e3:7.2f})  cpu {c_np * 1e3:7.2f}  1.000 x  "
          f"max rel err vs float64 {err_np:.3g}")
    buf, tmp = np.empty_like(x), np.empty_like(x)
    assert np.array_equal(w2_numpy_inplace(x, buf, tmp), base)
    t_ip, m_ip, c_ip = times(lambda: w2_numpy_inplace(x, buf, tmp), repeat)
    print(f"  numpy, out= buffers wall {t_ip * 1e3:7.2f} ({m_ip * 1e3:7.2f})  cpu {c_ip * 1e3:7.2f}  "
          f"{t_ip / t_np:.3f} x")
    for threads in (numba.config.NUMBA_NUM_THREADS, 1):
        numba.set_num_threads(threads)
        t_v, m_v, c_v = times(lambda: w2_vmath(x, out), repeat)
        t_m, m_m, c_m = times(lambda: w2_libm(x, out), repeat)
        print(f"  fused math.* {threads} thr wall {t_m * 1e3:7.2f} ({m_m * 1e3:7.2f})  cpu {c_m * 1e3:7.2f}  "
              f"{t_m / t_np:.3f} x")
        print(f"  fused vmath  {threads} thr wall {t_v * 1e3:7.2f} ({m_v * 1e3:7.2f})  cpu {c_v * 1e3:7.2f}  "
              f"{t_v / t_np:.3f} x  (vs out= numpy {t_v / t_ip:.3f} x; cpu/cpu {c_v / c_np:.3f} x)")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    print(f"  vmath max rel err vs float64 {err_v:.3g}; vs numpy float32 {agree:.3g}")
    print(f"  vector types in w2_vmath IR: {vector_types(w2_vmath)}")
    print(f"  vector types in w2_libm IR:  {vector_types(w2_libm)}")


def run_each(n: int, repeat: int) -> None:
    """Per-function time, one thread: a loop calling the vmath function vs the NumPy ufunc."""
    from numba import njit

    from jitflow.codegen.vmath import VMATH

    print(f"each function, n={n}, 1 thread, median of {repeat}")
    for (name, dt), fn in sorted(VMATH.items()):
        ufunc = getattr(np, name, None)
        if ufunc is None or name in ("pow", "atan2"):
            continue

        @njit
        def kern(x: Any, out: Any, f: Any = fn) -> None:
            for i in range(x.size):
                out[i] = f(x[i])

        x = np.random.default_rng(1).uniform(0.01, 10, n).astype(dt)
        out = np.empty_like(x)
        t_v = median_time(lambda k=kern, a=x, o=out: k(a, o), repeat)
        t_np = median_time(lambda u=ufunc, a=x, o=out: u(a, out=o), repeat)  # noqa: B023
        print(f"  {name:8s} {dt:8s} vmath {t_v * 1e3:7.2f} ms  numpy {t_np * 1e3:7.2f} ms  ratio {t_v / t_np:.2f}")


def run_accuracy(n: int) -> None:
    """Max relative error of every unary function over wide random grids, in eps units."""
    from numba import njit

    from jitflow.codegen.vmath import VMATH

    rng = np.random.default_rng(5)
    ranges = {"exp": 710.0, "expm1": 710.0, "sinh": 711.0, "cosh": 711.0, "log": 0.0, "log1p": 0.0,
              "sin": 1e6, "cos": 1e6, "tan": 1e6, "atan": 1e3, "asin": 1.0, "acos": 1.0}
    print(f"accuracy: max relative error over {n} random points (+ magnitudes 1e-30..1e30)")
    for (name, dt), fn in sorted(VMATH.items()):
        if name in ("pow", "atan2"):
            continue

        @njit
        def kern(x: Any, out: Any, f: Any = fn) -> None:
            for i in range(x.size):
                out[i] = f(x[i])

        span = min(ranges.get(name, 30.0), 90.0 if dt == "float32" else 1e9) or 30.0
        mags = 10.0 ** rng.uniform(-30, 30 if name in ("log", "log1p", "tanh", "sigmoid", "softplus") else 0, n)
        if name in ("log", "log1p"):
            x = np.concatenate([rng.uniform(0, 4, n), mags, -rng.uniform(0, 1, n) if name == "log1p" else mags])
        else:
            x = np.concatenate([rng.uniform(-span, span, n), rng.uniform(-2, 2, n), mags, -mags])
        x = x.astype(dt)
        out = np.empty_like(x)
        kern(x, out)
        wide = np.longdouble if dt == "float64" else np.float64
        d = x.astype(wide)
        with np.errstate(all="ignore"):
            if name == "sigmoid":
                ref = 1 / (1 + np.exp(-d))
            elif name == "softplus":
                ref = np.logaddexp(wide(0), d)
            else:
                ref = getattr(np, name)(d)
        fin = np.finfo(dt)
        ok = np.isfinite(ref) & (np.abs(ref) >= fin.tiny) & (np.abs(ref) <= fin.max)
        rel = (np.abs(out[ok] - ref[ok]) / np.abs(ref[ok])).astype(np.float64)
        print(f"  {name:8s} {dt:8s} max rel err {rel.max():.3g} = {rel.max() / fin.eps:.2f} eps")


# ---------------------------------------------------------------------------------------
# Coefficient fits: weighted-relative minimax (Remez exchange) in mpmath.
# ---------------------------------------------------------------------------------------


def remez(
    f: Callable[[Any], Any], a: Any, b: Any, deg: int, iters: int = 10, grid: int = 2000
) -> tuple[list[Any], Any]:
    """Coefficients c0..c_deg minimizing max |(f - p) / f| on [a, b], and that max."""
    import mpmath as mp

    n = deg + 1
    a, b = mp.mpf(a), mp.mpf(b)
    ref = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * i / n) for i in range(n + 1)]
    xs = [a + (b - a) * i / grid for i in range(grid + 1)]
    fx = [f(x) for x in xs]
    coeffs: list[Any] = []
    worst = mp.mpf(0)
    for _ in range(iters):
        mat, rhs = mp.matrix(n + 1, n + 1), mp.matrix(n + 1, 1)
        for i, x in enumerate(ref):
            fv = f(x)
            for k in range(n):
                mat[i, k] = x**k
            mat[i, n] = (-1) ** i * fv
            rhs[i] = fv
        sol = mp.lu_solve(mat, rhs)
        coeffs = [sol[k] for k in range(n)]
        err = [(fv - mp.polyval(coeffs[::-1], x)) / fv for x, fv in zip(xs, fx)]
        worst = max(abs(e) for e in err)
        ref = _alternating_extrema(xs, err, n + 1) or ref
    return coeffs, worst


def _alternating_extrema(xs: list[Any], err: list[Any], count: int) -> list[Any] | None:
    peaks = [i for i in range(len(err))
             if (i == 0 or abs(err[i]) >= abs(err[i - 1])) and (i == len(err) - 1 or abs(err[i]) >= abs(err[i + 1]))]
    merged: list[int] = []
    for i in peaks:  # one extremum per sign run, the largest
        if merged and (err[i] > 0) == (err[merged[-1]] > 0):
            if abs(err[i]) > abs(err[merged[-1]]):
                merged[-1] = i
        else:
            merged.append(i)
    while len(merged) > count:
        merged.pop(0 if abs(err[merged[0]]) < abs(err[merged[-1]]) else -1)
    return [xs[i] for i in merged] if len(merged) == count else None


def fit() -> None:
    """Print the fits used in vmath: (name, degree, max relative error, coefficients)."""
    import mpmath as mp

    mp.mp.dps = 60
    tiny = mp.mpf("1e-30")

    def guarded(g: Callable[[Any], Any], at0: Any) -> Callable[[Any], Any]:
        return lambda v: at0 if abs(v) < tiny else g(v)

    h = mp.log(2) / 2
    zlog = (3 - 2 * mp.sqrt(2)) ** 2  # s^2 for s = f/(2+f), f in [sqrt(1/2)-1, sqrt(2)-1]
    q4 = (mp.pi / 4) ** 2
    fits = [
        ("exp q(r)=(e^r-1-r)/r^2", guarded(lambda r: (mp.exp(r) - 1 - r) / r**2, mp.mpf(1) / 2), -h, h, (4, 9)),
        ("expm1 q(r)=(expm1(r)-r-r^2/2)/r^3",
         guarded(lambda r: (mp.expm1(r) - r - r**2 / 2) / r**3, mp.mpf(1) / 6), -h, h, (4, 8)),
        ("log P(z)=(2atanh(s)/s-2)/z",
         guarded(lambda z: (2 * mp.atanh(mp.sqrt(z)) / mp.sqrt(z) - 2) / z, mp.mpf(2) / 3), 0, zlog, (2, 6)),
        ("sin S(z)=(sin(r)-r)/r^3",
         guarded(lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)), -mp.mpf(1) / 6), 0, q4, (3, 5)),
        ("cos C(z)=(cos(r)-1+z/2)/z^2",
         guarded(lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / z**2, mp.mpf(1) / 24), 0, q4, (3, 5)),
        ("pow's log Q(z)=(2atanh(s)/s-2-2z/3)/z^2",
         guarded(lambda z: (2 * mp.atanh(mp.sqrt(z)) / mp.sqrt(z) - 2 - 2 * z / 3) / z**2, mp.mpf(2) / 5),
         0, zlog, (6,)),
        ("atan P(z)=(atan(t)-t)/t^3",
         guarded(lambda z: (mp.atan(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)), -mp.mpf(1) / 3),
         0, (mp.sqrt(2) - 1) ** 2, (4, 10)),
    ]
    for label, g, a, b, degrees in fits:
        for deg in degrees:
            coeffs, worst = remez(g, a, b, deg)
            print(f"{label} degree {deg}: max rel err {mp.nstr(worst, 4)}")
            print("   ", ", ".join(f'"{mp.nstr(c, 20, strip_zeros=False)}"' for c in coeffs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--each", action="store_true", help="also time each function against its ufunc")
    ap.add_argument("--wide", action="store_true", help="let LLVM use 512-bit vectors (AVX-512 hosts)")
    ap.add_argument("--fit", action="store_true", help="print the polynomial fits and exit")
    ap.add_argument("--accuracy", action="store_true", help="print max errors of every function and exit")
    args = ap.parse_args()
    if args.fit:
        fit()
        return
    if args.accuracy:
        run_accuracy(min(args.n, 200_000))
        return
    if args.wide:
        print("512-bit vectors:", "enabled" if enable_wide_vectors() else "not available")
    run_w2(args.n, args.repeat)
    if args.each:
        run_each(args.n, args.repeat)


if __name__ == "__main__":
    main()
