"""NumPy's own OpenBLAS: found once, for the calls jitflow makes into it directly.

`threads.py` sets its thread count around small GEMMs, `blas_spin.py` restarts its thread server with
short spinning, and `compiler/native_blas.py` hands its GEMM symbols to compiled loops: all three use the
library NumPy loaded (``numpy.libs/*openblas*.so``), never another copy.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
from typing import Any

import numpy as np

_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def library_path() -> str | None:
    """The OpenBLAS shared library NumPy ships (None when this NumPy has none: then BLAS calls go through
    NumPy only and the direct calls are skipped)."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    found = sorted(glob.glob(os.path.join(libdir, "*openblas*.so*")))
    return found[0] if found else None


def library() -> Any:
    """The loaded library (`ctypes.CDLL`), or None (see `library_path`)."""
    with _lock:
        if "lib" not in _loaded:
            path = library_path()
            try:
                _loaded["lib"] = ctypes.CDLL(path) if path is not None else None
            except OSError:
                _loaded["lib"] = None
        return _loaded["lib"]
