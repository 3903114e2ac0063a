"""The packed GEMMs of compiled loops (`kernels/packed_gemm.py`, `kernels/packed_helpers.py`)."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitflow.kernels import packed_gemm as P
from jitflow.kernels import packed_helpers as H


def _gemm(a: np.ndarray, b: np.ndarray, transposed: bool = False, helpers: H.Helpers | None = None,
          bits: int = 0) -> np.ndarray:
    """A @ B through `pack` and `gemm` (`b` is B, or B.T when `transposed`), armed helpers when given,
    vectors of `bits` (default: the host's)."""
    m, k = a.shape
    n = b.shape[0] if transposed else b.shape[1]
    bp = H.pack(b, np.empty(P.packed_size(k, n, b.dtype, bits), b.dtype), transposed, bits)
    c = np.full(m * n, np.nan, a.dtype)
    ctrl = helpers.ctrl if helpers is not None else P.control(bits)
    P.gemm(np.ascontiguousarray(a).reshape(-1), bp, c, m, n, k, k, ctrl)
    return c.reshape(m, n)


def _check(a: np.ndarray, b: np.ndarray, got: np.ndarray) -> None:
    exact = a.astype(np.float64) @ b.astype(np.float64)
    k = a.shape[1]
    eps = np.finfo(a.dtype).eps
    bound = 2 * k * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + np.finfo(a.dtype).tiny
    assert got.shape == exact.shape
    assert np.all(np.abs(got - exact) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(20, 400, 800), (20, 800, 400), (7, 3, 5), (1, 1, 1), (13, 17, 70),
                                   (6, 5, 33), (64, 300, 333)])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("bits", [512, 256])
def test_packed_gemm_matches_the_product(dtype: type, m: int, k: int, n: int, transposed: bool, bits: int) -> None:
    """Row tails (m not a multiple of ROWS), a partial last column block, and a right operand packed from
    its transpose; at both vector widths (AVX-512 hosts run 512, others 256)."""
    rng = np.random.default_rng(m * 1000 + n)
    a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    got = _gemm(a, np.ascontiguousarray(b.T) if transposed else b, transposed, bits=bits)
    _check(a, b, got)


def test_empty_operands() -> None:
    assert _gemm(np.zeros((0, 3), np.float32), np.ones((3, 4), np.float32)).shape == (0, 4)
    np.testing.assert_array_equal(_gemm(np.zeros((3, 0), np.float32), np.ones((0, 4), np.float32)),
                                  np.zeros((3, 4), np.float32))


def test_helpers_share_the_blocks_and_give_the_same_bits() -> None:
    """With helpers armed, a GEMM above PARALLEL_MACS is computed by several threads: every output is still
    the same dot product in the same order, so the result is bit for bit the single-thread one."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(20, 400)).astype(np.float32), rng.normal(size=(400, 800)).astype(np.float32)
    assert 20 * 400 * 800 >= P.PARALLEL_MACS
    alone = _gemm(a, b)
    helpers = H.Helpers(1)
    helpers.arm()
    helpers.arm()  # nested: loops run by two threads at once
    try:
        deadline = time.monotonic() + 20
        while helpers.ctrl[P.HELPED] == 0 and time.monotonic() < deadline:  # until the helper has joined in
            np.testing.assert_array_equal(_gemm(a, b, helpers=helpers), alone)
        assert helpers.ctrl[P.HELPED] > 0
        a2, b2 = a[:13, :300], rng.normal(size=(300, 600)).astype(np.float32)
        alone2 = _gemm(a2, b2)
        for i in range(300):  # jobs back to back, two shapes: a helper late for one job must not touch the next
            if i % 2:
                np.testing.assert_array_equal(_gemm(a, b, helpers=helpers), alone)
            else:
                np.testing.assert_array_equal(_gemm(a2, b2, helpers=helpers), alone2)
        helpers.disarm()
        assert helpers.ctrl[P.ARMED] == 1  # still armed by the outer block
    finally:
        helpers.disarm()
    assert helpers.ctrl[P.ARMED] == 0 and helpers.ctrl[P.BUSY] == 0
    np.testing.assert_array_equal(_gemm(a, b, helpers=helpers), alone)  # disarmed: the caller alone


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 12), k=st.integers(1, 40), n=st.integers(1, 70), double=st.booleans(),
       transposed=st.booleans())
def test_random_shapes(m: int, k: int, n: int, double: bool, transposed: bool) -> None:
    dtype = np.float64 if double else np.float32
    rng = np.random.default_rng(m + 13 * k + 101 * n)
    a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    _check(a, b, _gemm(a, np.ascontiguousarray(b.T) if transposed else b, transposed))


def test_two_callers_at_once_each_get_their_product() -> None:
    """Loops in two threads share the helpers: one posts its jobs, the other computes alone meanwhile."""
    import threading

    rng = np.random.default_rng(6)
    ops = [(rng.normal(size=(20, 300)).astype(np.float32), rng.normal(size=(300, 700)).astype(np.float32))
           for _ in range(2)]
    want = [_gemm(a, b) for a, b in ops]
    helpers = H.Helpers(1)
    bad: list[int] = []

    def work(i: int) -> None:
        for _ in range(100):
            if not np.array_equal(_gemm(*ops[i], helpers=helpers), want[i]):
                bad.append(i)

    helpers.arm()
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        helpers.disarm()
    assert bad == [] and helpers.ctrl[P.POSTER] == 0 and helpers.ctrl[P.BUSY] == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_starts_fresh() -> None:
    """A child forked while the helpers are armed has no helper threads: its state starts over, so its GEMMs
    neither wait for a helper of the parent nor post to one."""
    import os

    H.HELPERS.arm()
    try:
        H.HELPERS.ctrl[P.BUSY] = 1  # as if the parent's helper were inside a block at the fork
        pid = os.fork()
        if pid == 0:
            ok = (H.HELPERS.ctrl[P.BUSY] == 0 and H.HELPERS.ctrl[P.ARMED] == 0 and not H.HELPERS.started)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        H.HELPERS.ctrl[P.BUSY] = 0
        H.HELPERS.disarm()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _gemv(x: np.ndarray, b: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
    """x @ b through `packed_gemm.gemv` (b's rows may be a column slice of a wider array)."""
    k, n = b.shape
    ldb = b.strides[0] // b.itemsize
    flat = np.lib.stride_tricks.as_strided(b, ((k - 1) * ldb + n if k else 0,), (b.itemsize,))
    c = np.full(n, np.nan, x.dtype)
    P.gemv(x, flat, ldb, c, np.empty(P.gemv_blocks(k) * n, x.dtype), n, k, ctrl)
    return c


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,n", [(3136, 1024), (5, 7), (64, 33), (300, 70), (1, 16), (200, 1), (517, 100)])
@pytest.mark.parametrize("bits", [512, 256])
def test_gemv_matches_the_product(dtype: type, k: int, n: int, bits: int) -> None:
    """Row blocks with a short last one, rows that are not a multiple of the unroll, columns past the last
    whole vector, at both vector widths; and a right operand whose rows are a slice of a wider array."""
    rng = np.random.default_rng(k * 7 + n)
    x, b = rng.normal(size=k).astype(dtype), rng.normal(size=(k, n + 3)).astype(dtype)
    _check(x[None], b[:, :n], _gemv(x, b[:, :n], P.control(bits))[None])
    _check(x[None], b, _gemv(x, b, P.control(bits))[None])


def test_gemv_of_no_rows_is_zero() -> None:
    np.testing.assert_array_equal(_gemv(np.zeros(0, np.float32), np.zeros((0, 5), np.float32), P.control()),
                                  np.zeros(5, np.float32))


def test_helpers_share_gemv_blocks_and_give_the_same_bits() -> None:
    """Each row block's partial sum is the same whoever computes it, and the partials are added in block
    order: a shared product is bit for bit the caller's alone, also with packed GEMMs posted in between."""
    rng = np.random.default_rng(8)
    x, b = rng.normal(size=3136).astype(np.float32), rng.normal(size=(3136, 1024)).astype(np.float32)
    a2, b2 = rng.normal(size=(13, 300)).astype(np.float32), rng.normal(size=(300, 600)).astype(np.float32)
    alone, alone2 = _gemv(x, b, P.control()), _gemm(a2, b2)
    helpers = H.Helpers(1)
    helpers.arm()
    try:
        deadline = time.monotonic() + 20
        while helpers.ctrl[P.HELPED] == 0 and time.monotonic() < deadline:
            np.testing.assert_array_equal(_gemv(x, b, helpers.ctrl), alone)
        assert helpers.ctrl[P.HELPED] > 0
        for _ in range(100):
            np.testing.assert_array_equal(_gemv(x, b, helpers.ctrl), alone)
            np.testing.assert_array_equal(_gemm(a2, b2, helpers=helpers), alone2)
    finally:
        helpers.disarm()
    assert helpers.ctrl[P.BUSY] == 0 and helpers.ctrl[P.POSTER] == 0


@pytest.mark.skipif(H.HELPERS.count <= 0, reason="one core: no helpers")
def test_a_batch1_dense_layer_shares_its_gemv_in_a_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan with a big 1-row MatMul arms the helpers from its second run on (the first finds out the shape)
    and posts the product as a shared gemv; the result is the product's, whether shared or not."""
    import jitflow as tf
    from jitflow.kernels import threads

    monkeypatch.setattr(threads, "others_busy", lambda: False)  # a loaded machine never arms them
    rng = np.random.default_rng(9)
    w = rng.normal(size=(3136, 1024)).astype(np.float32)
    xv = rng.normal(size=(1, 3136)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 3136])
        y = tf.nn.relu(tf.matmul(x, tf.constant(w)))
    with tf.Session(graph=g) as sess:
        first = sess.run(y, {x: xv})
        seq = H.HELPERS.ctrl[P.SEQ]
        runs = [sess.run(y, {x: xv}) for _ in range(5)]
        assert H.HELPERS.ctrl[P.SEQ] > seq  # jobs were posted
        assert H.HELPERS.ctrl[P.ARMED] == 0  # and nothing stays armed after the runs
        batch = sess.run(y, {x: np.repeat(xv, 3, 0)})  # 3 rows: OpenBLAS, as before
    exact = np.maximum(xv.astype(np.float64) @ w.astype(np.float64), 0)
    bound = 2 * 3136 * np.finfo(np.float32).eps * (np.abs(xv).astype(np.float64) @ np.abs(w).astype(np.float64))
    for got in [first, *runs, batch[:1]]:
        assert got.shape == (1, 1024) and np.all(np.abs(got - exact) <= bound)  # ReLU moves no value further
    alone = np.maximum(_gemv(xv[0], w, P.control()), 0)
    for got in runs:
        np.testing.assert_array_equal(got[0], alone)


def test_compiled_functions_have_names_of_their_own() -> None:
    """Numba names a compiled function by module, qualified name, a per-process counter and argument types,
    and cached callers embed their callees: two instances of one factory's function with equal argument
    types could share a symbol across processes' cached code and a call reach the wrong one (it did: a
    512-bit microkernel ran where a 256-bit one was called, corrupting the heap). Every compiled function
    the helpers run has a name of its own."""
    import numba

    from jitflow.kernels import filter_taps, lincomb, pixel_conv, pool_grad_rows, stream_gemv, winograd_jobs

    functions = {}
    made = {f"{name}{d}": fn for d in (False, True)  # (factories called as callers compile, not at import)
            for name, fn in (("pixel", pixel_conv._blocks(d)), ("rows", lincomb._rows(d)),
                             ("taps", filter_taps._blocks(d)), ("pool", pool_grad_rows._rows(d)))}
    for mod in (P, stream_gemv, winograd_jobs, pixel_conv, lincomb, filter_taps, pool_grad_rows, made):
        for value in (mod if isinstance(mod, dict) else vars(mod)).values():
            fn = getattr(value, "py_func", None) or getattr(value, "_fn", None)  # a dispatcher or a LazyKernel
            if isinstance(value, numba.core.registry.CPUDispatcher) or hasattr(value, "_resolve"):
                assert fn is not None and "<locals>" not in fn.__qualname__, fn
                functions[id(fn)] = (fn.__module__, fn.__qualname__)  # (modules import each other's)
    names = list(functions.values())
    assert len(names) == len(set(names)) and len(names) > 10


@pytest.mark.skipif(H.HELPERS.count <= 0, reason="one core: no helpers")
def test_serving_runs_in_two_threads_at_once_keep_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions serve a batch-1 conv net (a Winograd conv, a big 1-row MatMul) from two threads at once:
    both arm the helpers, one posts at a time while the other computes alone, and every result is the one
    a run by itself gives."""
    import threading

    import jitflow as tf
    from jitflow.kernels import threads

    monkeypatch.setattr(threads, "others_busy", lambda: False)
    rng = np.random.default_rng(11)
    f = (rng.normal(size=(5, 5, 16, 32)) * 0.1).astype(np.float32)
    w = (rng.normal(size=(14 * 14 * 32, 600)) * 0.05).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, 14, 14, 16])
        h = tf.nn.relu(tf.nn.conv2d(x, tf.constant(f), [1, 1, 1, 1], "SAME"))
        y = tf.matmul(tf.reshape(h, [-1, 14 * 14 * 32]), tf.constant(w))
    feeds = [rng.normal(size=(1, 14, 14, 16)).astype(np.float32) for _ in range(2)]
    sessions = [tf.Session(graph=g) for _ in range(2)]
    want = []
    for s, xv in zip(sessions, feeds):
        s.run(y, {x: xv})
        want.append(s.run(y, {x: xv}))  # the second run is a serving run
    bad: list[int] = []

    def serve(i: int) -> None:
        for _ in range(40):
            if not np.array_equal(sessions[i].run(y, {x: feeds[i]}), want[i]):
                bad.append(i)

    workers = [threading.Thread(target=serve, args=(i,)) for i in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert bad == []
    assert H.HELPERS.ctrl[P.ARMED] == 0 and H.HELPERS.ctrl[P.POSTER] == 0 and H.HELPERS.ctrl[P.BUSY] == 0
    for s in sessions:
        s.close()


@pytest.mark.skipif(not __import__("os").path.exists("/proc/stat"), reason="needs /proc/stat")
def test_serving_counts_other_processes_load_not_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """`threads.others_busy` (whether a serving run arms the helpers): another process spinning on a core is
    load; this process's own busy thread is not (its training step's pressure made serving runs go without
    the helpers for a second)."""
    import subprocess
    import sys
    import threading

    from jitflow.kernels import threads

    def interval(busy: Callable[[], None]) -> bool:
        monkeypatch.setattr(threads, "_others", [-1e9, 0.0, -1.0, 0.0])
        monkeypatch.setattr(threads, "OTHERS_INTERVAL", 0.0)
        threads.others_busy()  # the first read only starts the interval
        busy()
        return threads.others_busy()

    def child() -> None:
        spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.2: pass"
        subprocess.run([sys.executable, "-c", spin], check=True)

    def own() -> None:
        stop = time.monotonic() + 1.2
        spin = threading.Thread(target=lambda: [None for _ in iter(lambda: time.monotonic() < stop, False)])
        spin.start()
        spin.join()

    assert interval(child)
    for _ in range(3):  # (another process's load, or the host's steal time, may fall in one interval)
        if not interval(own):
            return
        if interval(lambda: time.sleep(1.2)):
            pytest.skip("other processes or the host kept half a core busy while this process slept")
    raise AssertionError("this process's own busy thread counted as other processes' load")
