"""Big GEMMs as slices handed to one thread per core (`threads.run_chunks`), small ones on one thread.

OpenBLAS splits a GEMM statically over its threads and waits for the slowest: on a loaded machine a
descheduled thread stalls the whole call (W7's dense layer, 128x3136x1024: a median 134 ms on two
OpenBLAS threads, 37 ms as eight slices taken by two single-threaded workers; bench/README.md). Slices
run along the larger of the output's two dimensions, so the other operand is read once per slice
from cache rather than split.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from jitflow.kernels import threads

# Slices per call: enough for a thread that was descheduled to hand its share to the other.
SLICES = 8


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a @ b for 2-D float arrays (`out` C-contiguous, not overlapping the inputs)."""
    m, n = out.shape
    macs = m * n * a.shape[1]
    workers = threads.numba_threads() if macs >= threads.PARALLEL_MACS else 1  # thread-local: callers narrow it
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


def _blas(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.matmul(a, b, out=out)


class AllThreads:
    """How one step runs a big GEMM on all threads: OpenBLAS's own threads or `matmul`'s slices.

    Which is faster depends on what runs around the GEMM, not on its shape alone: measured idle, W4's
    256x784x512 took 1.0 ms on OpenBLAS's threads and 1.3 ms as slices; on a loaded machine slices let a
    descheduled thread hand its share on (the module doc). So each step times both on its first calls
    (after one uncounted call of each) and keeps the faster by its median. (Plans with chunked convs
    used to take slices always, while OpenBLAS's workers spun ~80 ms after each call; since they sleep
    after ~0.4 ms, `kernels/blas_spin.py`, measurement is as good there: W7 54.2 vs 55.6 ms, dcgan 66.4
    vs 67.0 ms median, switching in one process.)
    """

    __slots__ = ("chosen", "times")

    TRIES = 3

    def __init__(self) -> None:
        self.chosen: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
        self.times: tuple[list[float], list[float]] = ([], [])

    def __call__(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.chosen is not None:
            return self.chosen(a, b, out)
        k = 0 if len(self.times[0]) <= len(self.times[1]) else 1
        fn = (_blas, matmul)[k]
        t0 = time.perf_counter()
        fn(a, b, out)
        self.times[k].append(time.perf_counter() - t0)
        if min(len(t) for t in self.times) > self.TRIES:  # the first of each is not counted
            blas, slices = (sorted(t[1:])[len(t[1:]) // 2] for t in self.times)
            self.chosen = _blas if blas <= slices else matmul
        return out
