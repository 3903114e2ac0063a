"""Probe for jitflow.codegen.vmath: W2 chain speed, vectorization and accuracy.

    python bench/vmath_probe.py            # W2 on 10M float32: vmath vs NumPy vs math.*
    python bench/vmath_probe.py --n 1000000 --repeat 15
    python bench/vmath_probe.py --fit      # re-derive the polynomial coefficients (mpmath)

W2: ``y = tanh(1.5x+0.3)*sigmoid(x) - 0.5x**2; out = exp(-|y|) + max(y, 0)``.
Times are medians of ``--repeat`` runs after a warm-up, measured side by side in one process.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from jitflow.codegen.vmath import VMATH, exp_f32, sigmoid_f32, tanh_f32

_A, _B, _H = np.float32(1.5), np.float32(0.3), np.float32(0.5)
_ZERO, _ONE = np.float32(0.0), np.float32(1.0)


@njit(parallel=True)
def w2_vmath(x: Any, out: Any) -> None:
    for i in prange(x.size):
        v = x[i]
        y = tanh_f32(_A * v + _B) * sigmoid_f32(v) - _H * v * v
        out[i] = exp_f32(-abs(y)) + (y if y > _ZERO else _ZERO)


@njit(parallel=True)
def w2_libm(x: Any, out: Any) -> None:
    for i in prange(x.size):
        v = x[i]
        y = math.tanh(_A * v + _B) * (_ONE / (_ONE + math.exp(-v))) - _H * v * v
        out[i] = math.exp(-abs(y)) + (y if y > _ZERO else _ZERO)


def w2_numpy(x: np.ndarray) -> np.ndarray:
    y = np.tanh(_A * x + _B) * (_ONE / (_ONE + np.exp(-x))) - _H * x * x
    return np.exp(-np.abs(y)) + np.maximum(y, _ZERO)


def w2_reference(x: np.ndarray) -> np.ndarray:
    """The chain in float64, the yardstick for accuracy."""
    d = x.astype(np.float64)
    y = np.tanh(1.5 * d + 0.3) / (1.0 + np.exp(-d)) - 0.5 * d * d
    return np.exp(-np.abs(y)) + np.maximum(y, 0.0)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def vector_widths(dispatcher: Any) -> set[str]:
    """The float vector types in the optimized LLVM IR of a compiled function."""
    text = "".join(dispatcher.inspect_llvm().values())
    return set(re.findall(r"<\d+ x (?:float|double)>", text))


def run_w2(n: int, repeat: int) -> None:
    x = np.random.default_rng(0).uniform(-10, 10, n).astype(np.float32)
    out = np.empty_like(x)
    t0 = time.perf_counter()
    w2_vmath(x, out)
    print(f"compile w2_vmath: {time.perf_counter() - t0:.2f} s")
    w2_libm(x, out)
    ref = w2_reference(x)
    w2_vmath(x, out)
    err_v = float(np.max(np.abs(out - ref) / np.abs(ref)))
    err_np = float(np.max(np.abs(w2_numpy(x) - ref) / np.abs(ref)))
    t_np = median_time(lambda: w2_numpy(x), repeat)
    t_v = median_time(lambda: w2_vmath(x, out), repeat)
    t_m = median_time(lambda: w2_libm(x, out), repeat)
    print(f"W2 n={n} float32, median of {repeat}")
    print(f"  numpy ufuncs     {t_np * 1e3:8.2f} ms   1.00 x   max rel err {err_np:.3g}")
    print(f"  fused math.*     {t_m * 1e3:8.2f} ms   {t_m / t_np:.3f} x")
    print(f"  fused vmath      {t_v * 1e3:8.2f} ms   {t_v / t_np:.3f} x   max rel err {err_v:.3g}")
    print(f"  vector types in w2_vmath IR: {sorted(vector_widths(w2_vmath))}")
    print(f"  vector types in w2_libm IR:  {sorted(vector_widths(w2_libm))}")


def run_each(n: int, repeat: int) -> None:
    """Per-function throughput: one vmath call per element vs the NumPy ufunc."""
    ufuncs: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
        "sin": np.sin, "cos": np.cos,
    }
    for (name, dt), fn in sorted(VMATH.items()):
        if name not in ufuncs:
            continue
        x = np.random.default_rng(1).uniform(0.01, 10, n).astype(dt)
        out = np.empty_like(x)
        kern = _map_kernel(fn)
        t_v = median_time(lambda k=kern: k(x, out), repeat)
        t_np = median_time(lambda u=ufuncs[name]: u(x, out=out), repeat)
        print(f"  {name:8s} {dt:8s} vmath {t_v * 1e3:7.2f} ms  numpy {t_np * 1e3:7.2f} ms  ratio {t_v / t_np:.2f}")


def _map_kernel(fn: Any) -> Any:
    @njit(parallel=True)
    def kern(x: Any, out: Any) -> None:
        for i in prange(x.size):
            out[i] = fn(x[i])

    return kern


def fit() -> None:
    """Print the minimax coefficients used in vmath (needs mpmath)."""
    from bench_vmath_fit import main as fit_main  # noqa: PLC0415 - optional dependency

    fit_main()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--each", action="store_true", help="also time each function against its ufunc")
    ap.add_argument("--fit", action="store_true", help="print the polynomial fits and exit")
    args = ap.parse_args()
    if args.fit:
        fit()
        return
    run_w2(args.n, args.repeat)
    if args.each:
        run_each(args.n, args.repeat)


if __name__ == "__main__":
    main()
