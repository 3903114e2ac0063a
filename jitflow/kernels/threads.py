"""How many threads a kernel call gets: both cores for big calls, the calling thread for small ones.

Every parallel region ends in a barrier that waits for all its threads, and OpenBLAS splits even
small GEMMs over its threads. On a loaded 2-core machine a barrier can wait a whole scheduler time
slice for a descheduled thread: W7i (batch-1 inference) took 42 ms with OpenBLAS on 2 threads and
3.3 ms on one (bench/README.md). So small calls run on the calling thread only (Numba's thread count
and OpenBLAS's are both thread-local settings here), and big calls still use both cores. On an idle
machine the thresholds below cost at most a few ms per call.
"""
from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np

# Elements a Numba kernel touches per call below which it runs on the calling thread only (~1 ms).
PARALLEL_ELEMENTS = 1 << 20
# Multiply-adds of a GEMM below which OpenBLAS runs it on the calling thread only (~0.1 ms on one core:
# batch-1 inference). On a loaded machine two threads lost even on a 32x2048x1024 GEMM (67 M: 100-190 ms
# on two, 14 ms on one), but on an idle one a 2^28 threshold made W4's 103 M-MAC GEMMs single-threaded
# and its step 1.7x slower (bench/README.md), so the threshold favours the idle machine.
PARALLEL_MACS = 1 << 22


def _openblas_local_setter() -> Any:
    """OpenBLAS's `openblas_set_num_threads_local` (thread-local, returns the previous value), or None."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "*openblas*.so*"))):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    return None


_SET_BLAS_LOCAL = _openblas_local_setter()


@contextmanager
def blas_threads_for(macs: int) -> Iterator[None]:
    """Runs the block with OpenBLAS on the calling thread only when the GEMM work is small."""
    if macs >= PARALLEL_MACS or _SET_BLAS_LOCAL is None:
        yield
        return
    prev = _SET_BLAS_LOCAL(1)
    try:
        yield
    finally:
        _SET_BLAS_LOCAL(prev)


@contextmanager
def threads_for(elements: int, macs: int = 0) -> Iterator[int]:
    """Runs the block with Numba's (and OpenBLAS's) thread counts chosen for its work; yields Numba's."""
    with blas_threads_for(macs):
        if elements >= PARALLEL_ELEMENTS:
            yield numba.get_num_threads()
            return
        prev = numba.get_num_threads()
        numba.set_num_threads(1)  # thread-local: other threads' kernels are unaffected
        try:
            yield 1
        finally:
            numba.set_num_threads(prev)
