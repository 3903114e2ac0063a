"""GEMM from generated Numba code: NumPy's bundled OpenBLAS (ILP64) called by symbol name.

NumPy ships OpenBLAS as ``numpy.libs/libscipy_openblas64_-*.so``, exporting ``scipy_cblas_sgemm64_`` and
``scipy_cblas_dgemm64_`` (64-bit integers). `ensure_symbols` makes their addresses known to LLVM under
those names, so generated code declares them as external functions (`PREAMBLE`) and calls them from
nopython code; the call is resolved by name when the code is linked, so the compiled code can be
cached on disk (a ctypes function object would embed its address). Pointers pass as 64-bit ints.
"""
from __future__ import annotations

import ctypes
import threading

from jitflow.kernels import openblas

SGEMM = "scipy_cblas_sgemm64_"
DGEMM = "scipy_cblas_dgemm64_"
_lock = threading.Lock()
_state: dict[str, bool] = {}

# Declares gemm32 / gemm64 in a generated module (after `from numba import types`); `_gemm_f32` and
# `_gemm_f64` multiply row-major matrices given as flat arrays: C[m, n] = op(A) @ op(B).
PREAMBLE = f'''
_I32, _I64 = types.int32, types.int64
gemm32 = types.ExternalFunction("{SGEMM}", types.void(_I32, _I32, _I32, _I64, _I64, _I64, types.float32, _I64,
                                  _I64, _I64, _I64, types.float32, _I64, _I64))
gemm64 = types.ExternalFunction("{DGEMM}", types.void(_I32, _I32, _I32, _I64, _I64, _I64, types.float64, _I64,
                                  _I64, _I64, _I64, types.float64, _I64, _I64))


@njit
def _gemm_f32(a, b, c, ta, tb, m, n, k, lda, ldb):
    if m == 0 or n == 0:
        return
    if k == 0:
        c[:m * n] = 0
        return
    gemm32(np.int32(101), np.int32(112 if ta else 111), np.int32(112 if tb else 111), m, n, k, np.float32(1.0),
           a.ctypes.data, lda, b.ctypes.data, ldb, np.float32(0.0), c.ctypes.data, n)


@njit
def _gemm_f64(a, b, c, ta, tb, m, n, k, lda, ldb):
    if m == 0 or n == 0:
        return
    if k == 0:
        c[:m * n] = 0
        return
    gemm64(np.int32(101), np.int32(112 if ta else 111), np.int32(112 if tb else 111), m, n, k, 1.0,
           a.ctypes.data, lda, b.ctypes.data, ldb, 0.0, c.ctypes.data, n)
'''


def ensure_symbols() -> bool:
    """Registers the GEMM symbols with LLVM (once); False when NumPy's OpenBLAS is not available."""
    with _lock:
        if "ok" in _state:
            return _state["ok"]
        ok = False
        lib = openblas.library()
        if lib is not None:
            try:
                import llvmlite.binding as llvm

                for name in (SGEMM, DGEMM):
                    llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
                ok = True
            except AttributeError:  # another build of NumPy: loops stay replayed
                ok = False
        _state["ok"] = ok
        return ok
