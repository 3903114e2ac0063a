"""GEMMs cut into slices for worker threads (kernels/gemm.py) against one np.matmul."""
from __future__ import annotations

import numpy as np
import pytest

from jitflow.kernels import gemm, threads


@pytest.mark.parametrize("m, k, n", [(40, 7, 3), (3, 9, 50), (17, 5, 17), (2, 3, 4)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_sliced_matmul_matches_numpy(monkeypatch: pytest.MonkeyPatch, m: int, k: int, n: int, dt: type) -> None:
    monkeypatch.setattr(threads, "PARALLEL_MACS", 0)  # slice every GEMM (when two threads are available)
    rng = np.random.default_rng(m * n)
    a, b = rng.standard_normal((m, k)).astype(dt), rng.standard_normal((k, n)).astype(dt)
    for x, y in ((a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b))):  # transposed operands too
        out = gemm.matmul(x, y, np.empty((x.shape[0], y.shape[1]), dt))
        np.testing.assert_allclose(out, x @ y, rtol=1e-5 if dt == np.float32 else 1e-12, atol=1e-5)


def test_all_threads_choice_times_both_ways_then_keeps_one() -> None:
    from jitflow.kernels.gemm import AllThreads

    rng = np.random.RandomState(3)
    a, b = rng.rand(300, 200).astype(np.float32), rng.rand(200, 260).astype(np.float32)
    choice = AllThreads()
    assert choice.chosen is None
    for _ in range(2 * (AllThreads.TRIES + 1)):
        out = np.empty((300, 260), np.float32)
        np.testing.assert_allclose(choice(a, b, out), a @ b, rtol=1e-5)
    assert [len(t) for t in choice.times] == [AllThreads.TRIES + 1] * 2
    assert choice.chosen in (gemm._blas, gemm.matmul)
    out = np.empty((300, 260), np.float32)
    np.testing.assert_allclose(choice(a, b, out), a @ b, rtol=1e-5)
