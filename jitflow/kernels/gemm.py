"""Big GEMMs as slices handed to one thread per core (`threads.run_chunks`), small ones on one thread.

OpenBLAS splits a GEMM statically over its threads and waits for the slowest: on a loaded machine a
descheduled thread stalls the whole call (W7's dense layer, 128x3136x1024: a median 134 ms on two
OpenBLAS threads, 37 ms as eight slices taken by two single-threaded workers; bench/README.md). Slices
run along the larger of the output's two dimensions, so the other operand is read once per slice
from cache rather than split.
"""
from __future__ import annotations

import numba
import numpy as np

from jitflow.kernels import threads

# Slices per call: enough for a thread that was descheduled to hand its share to the other.
SLICES = 8


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a @ b for 2-D float arrays (`out` C-contiguous, not overlapping the inputs)."""
    m, n = out.shape
    macs = m * n * a.shape[1]
    workers = numba.get_num_threads() if macs >= threads.PARALLEL_MACS else 1  # thread-local: callers narrow it
    if workers < 2 or max(m, n) < 2 * SLICES:
        with threads.blas_threads_for(macs):
            np.matmul(a, b, out=out)
        return out
    if m >= n:
        threads.run_chunks(m, -(-m // SLICES), workers, lambda w, r0, r1: np.matmul(a[r0:r1], b, out=out[r0:r1]))
    else:
        threads.run_chunks(n, -(-n // SLICES), workers,
                           lambda w, c0, c1: np.matmul(a, b[:, c0:c1], out=out[:, c0:c1]))
    return out
