"""Scalar math for generated CUDA kernels, called as ``M.<name>_<f32|f64>(...)``.

`jitflow.codegen.cuda` renders the function calls of op formulas (`jitflow.ir.expr`) as calls of this
module, with the float type spelled out, because NumPy ufuncs are not all available in device code.

On a GPU every function is a device function over libdevice (NVIDIA's math library). On Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) kernels run as Python on NumPy scalars, so every function is the
NumPy ufunc itself. Both agree with the interpreter's ufuncs within a few ulps.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda

# ufunc names the generator may emit (one argument), then those of two arguments
UNARY = ("sqrt", "floor", "ceil", "rint", "trunc", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh",
         "cosh", "exp", "log", "log1p", "expm1", "tanh", "sigmoid", "isinf", "isfinite")
BINARY = ("fmod", "copysign", "arctan2")

# libdevice names of each function: (float32, float64)
_LIBDEVICE = {
    "sqrt": ("sqrtf", "sqrt"), "floor": ("floorf", "floor"), "ceil": ("ceilf", "ceil"),
    "rint": ("rintf", "rint"), "trunc": ("truncf", "trunc"), "sin": ("sinf", "sin"), "cos": ("cosf", "cos"),
    "tan": ("tanf", "tan"), "arcsin": ("asinf", "asin"), "arccos": ("acosf", "acos"),
    "arctan": ("atanf", "atan"), "sinh": ("sinhf", "sinh"), "cosh": ("coshf", "cosh"), "exp": ("expf", "exp"),
    "log": ("logf", "log"), "log1p": ("log1pf", "log1p"), "expm1": ("expm1f", "expm1"),
    "tanh": ("tanhf", "tanh"), "fmod": ("fmodf", "fmod"), "copysign": ("copysignf", "copysign"),
    "arctan2": ("atan2f", "atan2"),
}


def _sim_sigmoid(dt: Any) -> Callable[[Any], Any]:
    one = dt(1)

    def sigmoid(x: Any) -> Any:
        # exp of a non-positive argument only, as the interpreter's kernel does
        e = np.exp(-abs(dt(x)))
        return one / (one + e) if x >= 0 else e / (one + e)
    return sigmoid


def _simulated() -> dict[str, Any]:
    """NumPy scalar functions (the simulator runs kernels as Python)."""
    out: dict[str, Any] = {}
    for suffix, dt in (("f32", np.float32), ("f64", np.float64)):
        for name in UNARY + BINARY:
            if name == "sigmoid":
                out[f"{name}_{suffix}"] = _sim_sigmoid(dt)
            else:
                out[f"{name}_{suffix}"] = getattr(np, name)
    return out


def _device_unary(fn: Any) -> Any:
    @cuda.jit(device=True)
    def f(x):  # type: ignore[no-untyped-def]
        return fn(x)
    return f


def _device_binary(fn: Any) -> Any:
    @cuda.jit(device=True)
    def f(x, y):  # type: ignore[no-untyped-def]
        return fn(x, y)
    return f


def _device() -> dict[str, Any]:
    """Device functions over libdevice."""
    from numba.cuda import libdevice as ld

    out: dict[str, Any] = {}
    for name, (f32, f64) in _LIBDEVICE.items():
        make = _device_binary if name in BINARY else _device_unary
        out[f"{name}_f32"] = make(getattr(ld, f32))
        out[f"{name}_f64"] = make(getattr(ld, f64))
    isinff, isinfd, finitef, finited = ld.isinff, ld.isinfd, ld.finitef, ld.isfinited
    expf, expd = ld.expf, ld.exp

    @cuda.jit(device=True)
    def isinf_f32(x):  # type: ignore[no-untyped-def]
        return isinff(x) != 0

    @cuda.jit(device=True)
    def isinf_f64(x):  # type: ignore[no-untyped-def]
        return isinfd(x) != 0

    @cuda.jit(device=True)
    def isfinite_f32(x):  # type: ignore[no-untyped-def]
        return finitef(x) != 0

    @cuda.jit(device=True)
    def isfinite_f64(x):  # type: ignore[no-untyped-def]
        return finited(x) != 0

    @cuda.jit(device=True)
    def sigmoid_f32(x):  # type: ignore[no-untyped-def]
        e = expf(-abs(x))
        s = np.float32(1) / (np.float32(1) + e)
        return s if x >= np.float32(0) else e * s

    @cuda.jit(device=True)
    def sigmoid_f64(x):  # type: ignore[no-untyped-def]
        e = expd(-abs(x))
        s = 1.0 / (1.0 + e)
        return s if x >= 0.0 else e * s

    out.update(isinf_f32=isinf_f32, isinf_f64=isinf_f64, isfinite_f32=isfinite_f32, isfinite_f64=isfinite_f64,
               sigmoid_f32=sigmoid_f32, sigmoid_f64=sigmoid_f64)
    return out


# the simulator replaces the device list by a fake one: that is what was actually imported
SIMULATED: bool = "simulator" in type(cuda.gpus).__module__
globals().update(_simulated() if SIMULATED else _device())


def quiet() -> None:
    """Simulator only: inf/nan stay silent, as on a GPU (kernel threads do not inherit the run's state)."""
    np.seterr(all="ignore")
