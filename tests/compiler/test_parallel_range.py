"""`threads.parallel_range`: the hand-written kernels' ranges split over threads, each index once."""
from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitflow.kernels import conv, depthwise, direct, pool, threads, winograd

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one Numba thread: no helpers")


@needs_two
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), st.integers(1, 4))
def test_every_index_is_covered_once(n: int, workers: int) -> None:
    seen = np.zeros(n, np.int64)

    def kernel(out: np.ndarray, lo: int, hi: int) -> None:
        out[lo:hi] += 1

    prev = numba.get_num_threads()
    numba.set_num_threads(min(workers, numba.config.NUMBA_NUM_THREADS))
    try:
        threads.parallel_range(kernel, n, seen)
    finally:
        numba.set_num_threads(prev)
    assert (seen == 1).all()


@needs_two
def test_small_calls_and_one_thread_stay_on_the_caller() -> None:
    calls: list[tuple[str, int, int]] = []

    def kernel(lo: int, hi: int) -> None:
        calls.append((threading.current_thread().name, lo, hi))

    threads.parallel_range(kernel, 100, elements=10)
    with threads.threads_for(0):
        threads.parallel_range(kernel, 100)
    assert calls == [(threading.current_thread().name, 0, 100)] * 2


@needs_two
def test_an_error_in_a_helpers_chunk_reaches_the_caller() -> None:
    def kernel(lo: int, hi: int) -> None:
        if lo <= 150 < hi:
            raise ValueError("index 150")

    with threads.threads_for(1 << 60), pytest.raises(ValueError, match="index 150"):
        threads.parallel_range(kernel, 200)


def _run_all(rng: np.random.Generator) -> list[np.ndarray]:
    """Every kernel family that goes through parallel_range, on shapes with more than one chunk."""
    x = rng.standard_normal((6, 9, 8, 8)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan  # max pooling's NaN rule holds on every thread
    dy2 = rng.standard_normal((6, 5, 4, 8)).astype(np.float32)
    out: list[np.ndarray] = []
    y = np.empty((6, 5, 4, 8), np.float32)
    pool.max_pool(x, 2, 2, 2, 2, 0, 0, y)
    out.append(y.copy())
    pool.avg_pool(x, 3, 3, 2, 2, 1, 1, y)
    out.append(y.copy())
    dx = np.empty_like(x)
    pool.max_pool_grad(x, dy2, 3, 3, 2, 2, 1, 1, dx)
    out.append(dx.copy())
    pool.avg_pool_grad(dy2, 3, 3, 2, 2, 1, 1, dx)
    out.append(dx.copy())
    parts = np.empty((2, 8), np.float32)
    pool.max_pool_grad_tiled(x, dy2, 2, 2, 2, 2, 0, 0, True, True, dx, parts)
    out += [dx.copy(), parts.sum(axis=0)]
    g = conv.ConvGeom(3, 3, 1, 1, 1, 1, 1, 1, 9, 8)
    f = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    full = np.empty((6, 9, 8, 8), np.float32)
    out.append(conv.conv2d(x, f, g, full, conv.fresh, chunk=6, bias=f[0, 0, 0], relu=True).copy())
    out.append(winograd.forward(np.nan_to_num(x), f, g, full, conv.fresh).copy())
    out.append(conv.conv2d_backprop_input(x, f, g, np.empty_like(x), conv.fresh, chunk=6))
    x1 = np.nan_to_num(x[..., :2])
    f1 = rng.standard_normal((3, 3, 2, 8)).astype(np.float32)
    out.append(direct.forward(x1, f1, g, full, conv.fresh).copy())
    out.append(direct.filter_grad(x1, full, g, np.empty_like(f1), conv.fresh, 2))
    fd = rng.standard_normal((3, 3, 8, 2)).astype(np.float32)
    yd = np.empty((6, 9, 8, 16), np.float32)
    depthwise.forward(x, fd, 1, 1, 1, 1, 1, 1, yd)
    out.append(yd.copy())
    depthwise.backprop_input(yd, fd, 1, 1, 1, 1, 1, 1, dx)
    out.append(dx.copy())
    parts_d = np.empty((2, 3, 3, 16), np.float32)
    dfd = np.empty_like(fd)
    depthwise.backprop_filter(x, yd, (1, 1, 1, 1, 1, 1), dfd, parts_d)
    out.append(dfd)
    return out


@needs_two
def test_kernels_on_two_threads_match_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split over threads, each kernel writes what it writes on one thread, bit for bit (partial sums are
    per part, not per thread)."""
    monkeypatch.setattr(threads, "PARALLEL_ELEMENTS", 0)  # every call splits when its thread may
    res: list[list[Any]] = []
    for workers in (1, 2):
        prev = numba.get_num_threads()
        numba.set_num_threads(workers)  # what parallel_range reads: 1 keeps every range on the caller
        try:
            res.append(_run_all(np.random.default_rng(3)))
        finally:
            numba.set_num_threads(prev)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
