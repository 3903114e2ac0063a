"""How many threads a kernel call gets: both cores for big calls, the calling thread for small ones.

Every parallel region ends in a barrier that waits for all its threads, and OpenBLAS splits even
small GEMMs over its threads. On a loaded 2-core machine a barrier can wait a whole scheduler time
slice for a descheduled thread: W7i (batch-1 inference) took 42 ms with OpenBLAS on 2 threads and
3.3 ms on one (bench/README.md). So small calls run on the calling thread only, and big calls still
use both cores. Numba's thread count is a setting of the calling thread; OpenBLAS's is not: its
`openblas_set_num_threads_local` sets the process-wide count and returns the previous one (measured: a
helper thread that set 1 left the main thread's GEMMs on one core), so every change of it here is undone
when the call ends, and concurrent runs in several threads can only change each other's thread counts,
never results. On an idle
machine the thresholds below cost at most a few ms per call.

The thresholds follow the machine's state: when other processes keep the cores busy (Linux's CPU
pressure, /proc/pressure/cpu, read at most once a second) they are BUSY_FACTOR times higher, so only
big calls use both cores; on an idle machine small GEMMs use both (a batch-1 dense layer's
1x3136x1024 GEMV: 165 us on one thread, 102 us on two; under load two threads took up to 20 ms).
"""
from __future__ import annotations

import ctypes
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba

from jitflow.kernels import openblas

# Elements a Numba kernel touches per call below which it runs on the calling thread only (~1 ms).
PARALLEL_ELEMENTS = 1 << 20
# Multiply-adds of a GEMM below which OpenBLAS runs it on the calling thread only (~0.05 ms on one core:
# batch-1 inference). On a loaded machine two threads lost even on a 32x2048x1024 GEMM (67 M: 100-190 ms
# on two, 14 ms on one), but on an idle one a 2^28 threshold made W4's 103 M-MAC GEMMs single-threaded
# and its step 1.7x slower (bench/README.md): this is the idle machine's threshold, BUSY_FACTOR the load's.
PARALLEL_MACS = 1 << 21
# How much higher both thresholds are while the machine is busy (W4's 103 M-MAC GEMMs then run on one
# thread; W7's conv GEMMs, 260 M and up per chunk, on two).
BUSY_FACTOR = 64
# CPU pressure ("some avg10": % of the last 10 s in which some runnable task waited for a core) from
# which the machine counts as busy. jitflow's own threads wait passively, so they add little to it.
BUSY_PRESSURE = 50.0
_PSI = "/proc/pressure/cpu"
_busy = [-1e9, False]  # [when last read (time.monotonic), busy]


def machine_busy() -> bool:
    """True while other processes keep the cores busy (CPU pressure >= BUSY_PRESSURE); False where the
    kernel does not report pressure. Read at most once a second (a read costs ~30 us)."""
    now = time.monotonic()
    if now - _busy[0] < 1.0:
        return bool(_busy[1])
    _busy[0] = now
    try:
        with open(_PSI, "rb") as fh:
            some = fh.readline().split()
        _busy[1] = float(some[1].split(b"=")[1]) >= BUSY_PRESSURE
    except (OSError, IndexError, ValueError):
        _busy[1] = False
    return bool(_busy[1])


# Cores' worth of CPU time other processes (and other VMs: steal time) used over the last interval from which
# a spinning helper thread would take a core from them (`others_busy`).
OTHERS_BUSY_CORES = 0.5
OTHERS_INTERVAL = 1.0  # seconds: the shortest interval measured
_others: list[float] = [-1e9, 0.0, -1.0, 0.0]  # [when read, busy (0/1), all CPUs' busy seconds, this process's]


def others_busy() -> bool:
    """True when other processes used more than OTHERS_BUSY_CORES cores over the interval since the last read
    (at most once a second; /proc/stat's busy time less this process's own). Unlike `machine_busy`, this
    process's own load does not count: CPU pressure stays high for seconds after a training step ran on
    every core, and a batch-1 serving run then went without its helper (520 against 390 us for W7i)."""
    now = time.monotonic()
    if now - _others[0] < OTHERS_INTERVAL:
        return bool(_others[1])
    try:
        with open("/proc/stat", "rb") as fh:
            f = [int(v) for v in fh.readline().split()[1:9]]
        total = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / _TICKS  # user nice system irq softirq steal
        own = sum(os.times()[:2])  # (children are other processes: their time counts)
    except (OSError, ValueError, IndexError):
        _others[:] = [now, 0.0, -1.0, 0.0]
        return False
    if _others[2] >= 0:
        used = (total - _others[2]) - (own - _others[3])
        _others[1] = float(used / (now - _others[0]) >= OTHERS_BUSY_CORES)
    _others[0], _others[2], _others[3] = now, total, own
    return bool(_others[1])


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _factor() -> int:
    return BUSY_FACTOR if machine_busy() else 1


def _openblas_local_setter() -> Any:
    """OpenBLAS's `openblas_set_num_threads_local` (process-wide in this build; returns the previous value)."""
    lib = openblas.library()
    fn = getattr(lib, "openblas_set_num_threads_local", None) if lib is not None else None
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SET_BLAS_LOCAL = _openblas_local_setter()


def set_blas_threads(n: int) -> int:
    """Sets OpenBLAS's (process-wide) thread count; returns the previous one (0 where it cannot be set)."""
    return int(_SET_BLAS_LOCAL(n)) if _SET_BLAS_LOCAL is not None else 0


class blas_threads_for:  # noqa: N801 - used as a function: `with blas_threads_for(macs):`
    """Runs the block with OpenBLAS on the calling thread only when the GEMM work is small (a class, not a
    generator: it is entered around every kernel call, ~1 us cheaper)."""

    __slots__ = ("small", "prev")

    def __init__(self, macs: int) -> None:
        self.small = _SET_BLAS_LOCAL is not None and macs < PARALLEL_MACS * _factor()
        self.prev = 0

    def __enter__(self) -> None:
        if self.small:
            self.prev = _SET_BLAS_LOCAL(1)

    def __exit__(self, *exc: object) -> None:
        if self.small:
            _SET_BLAS_LOCAL(self.prev)


@contextmanager
def reduction_gemms(workers: int) -> Iterator[None]:
    """Runs the block's filter-gradient GEMMs (a small output, K = every patch row) with OpenBLAS on one
    thread when the caller walks the chunks itself (`workers` == 1). OpenBLAS splits only the output, so
    a second thread has little to do, and on a loaded machine some processes hit a pathological
    two-thread case: 4x12544 @ 12544x64 (dcgan's last transposed conv) took 212-216 ms instead of
    0.16-0.6 ms, in about one process in four."""
    if workers > 1:  # run_chunks already puts every thread's OpenBLAS on one thread
        yield
        return
    with blas_threads_for(0):
        yield


class threads_for:  # noqa: N801 - used as a function: `with threads_for(elements, macs) as n:`
    """Runs the block with Numba's (and OpenBLAS's) thread counts chosen for its work; yields Numba's."""

    __slots__ = ("blas", "small", "prev")

    def __init__(self, elements: int, macs: int = 0) -> None:
        self.blas = blas_threads_for(macs)
        self.small = elements < PARALLEL_ELEMENTS * _factor()
        self.prev = 0

    def __enter__(self) -> int:
        self.blas.__enter__()
        if not self.small:
            return numba_threads()
        self.prev = numba_threads()
        set_numba_threads(1)  # thread-local: other threads' kernels are unaffected
        return 1

    def __exit__(self, *exc: object) -> None:
        if self.small:
            set_numba_threads(self.prev)
        self.blas.__exit__()


# Numba's thread count of the calling thread: `numba.get_num_threads` / `set_num_threads` check that the
# threading layer is up (a process-wide lock) on every call, ~1 us each, about 20 times in a batch-1 CNN
# run. Once it is up, its own getter and setter are called directly (where this Numba has them).
_NUMBA_CALLS: list[Any] = []


def _numba_calls() -> list[Any]:
    if not _NUMBA_CALLS:
        numba.get_num_threads()  # starts the threading layer (once)
        from numba.np.ufunc import parallel

        get, put = getattr(parallel, "_get_num_threads", None), getattr(parallel, "_set_num_threads", None)
        direct = callable(get) and callable(put) and get() == numba.get_num_threads()
        _NUMBA_CALLS[:] = [get, put] if direct else [numba.get_num_threads, numba.set_num_threads]
    return _NUMBA_CALLS


def numba_threads() -> int:
    """`numba.get_num_threads()` of the calling thread."""
    return int((_NUMBA_CALLS or _numba_calls())[0]())


def set_numba_threads(n: int) -> None:
    """`numba.set_num_threads(n)` for the calling thread (1 <= n <= NUMBA_NUM_THREADS)."""
    (_NUMBA_CALLS or _numba_calls())[1](n)


# -- chunks handed out to worker threads -----------------------------------------------------------------


_LOCAL = threading.local()


def set_one_core(on: bool) -> bool:
    """Marks the calling thread as running a step beside another (`compiler/inter_op.py`): its chunked
    kernels keep to the calling thread (Numba's count, set separately, covers the others). Returns the
    previous mark."""
    prev = bool(getattr(_LOCAL, "one_core", False))
    _LOCAL.one_core = on
    return prev


def chunk_workers(elements: int) -> int:
    """Threads for a call that hands out chunks (`run_chunks`): all of Numba's for big calls, busy machine
    or not (a descheduled thread only delays its own chunk: W7 on the loaded machine, 315-424 ms per
    step against 360-457 ms on one thread; bench/README.md), the calling thread for small ones and in a
    step that runs beside another (`set_one_core`)."""
    if elements < PARALLEL_ELEMENTS or getattr(_LOCAL, "one_core", False):
        return 1
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


class Workers:
    """Persistent helper threads that take tasks first in, first out, each with Numba on one thread (and
    `setup` run once in it): `run_chunks`' chunk helpers, and `compiler/inter_op.py`'s step takers."""

    def __init__(self, name: str, setup: Callable[[], object] | None = None) -> None:
        self.name, self.setup = name, setup
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()

    def ensure(self, n: int) -> None:
        """At least `n` helper threads."""
        with self.lock:
            while len(self.threads) < n:
                t = threading.Thread(target=self._loop, name=f"{self.name}-{len(self.threads)}", daemon=True)
                t.start()
                self.threads.append(t)

    def _loop(self) -> None:
        set_numba_threads(1)  # Numba's count is per thread; OpenBLAS's is set by the caller of a task
        if self.setup is not None:
            self.setup()
        while True:
            self.tasks.get()()


_WORKERS = Workers("jitflow-chunks")


class _Chunks:
    """One call's chunks: handed out in order, counted when finished; the first error is kept. With
    `guided` (the number of threads taking them; 0: every chunk is `step` long), a chunk is 1 / (2 * guided)
    of what is left, never under `step`: few calls for most of the range, small ones at its end, where a
    thread that finishes early would otherwise wait for a big one."""

    def __init__(self, n: int, step: int, work: Callable[[int, int, int], object], guided: int = 0) -> None:
        self.n, self.step, self.work = n, step, work
        self.split = 2 * guided
        self.next = 0
        self.left = n  # elements not yet finished
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def loop(self, w: int) -> None:
        while True:
            with self.cond:
                n0 = self.next
                size = max(self.step, (self.n - n0) // self.split) if self.split else self.step
                self.next = n1 = min(self.n, n0 + size)
            if n0 >= self.n:
                return
            try:
                self.work(w, n0, n1)
            except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                self.error = self.error or e
            with self.cond:
                self.left -= n1 - n0
                if self.left == 0:
                    self.cond.notify_all()


def run_chunks(n: int, step: int, workers: int, work: Callable[[int, int, int], object]) -> None:
    """Calls work(w, n0, n1) for the chunks [n0, n1) of range(n), `step` at a time, on `workers` threads
    (the caller and workers - 1 helpers), each taking the next chunk when it is free.

    Dynamic hand-out instead of one parallel region per chunk: a thread the scheduler takes away only
    delays its own chunk, where a barrier would stall every thread (W7's second conv on the loaded
    machine: 24 ms against 40 ms; bench/README.md). The caller waits for chunks, not for helpers: a
    helper that starts late finds nothing left. Every thread runs OpenBLAS and Numba on one thread, and
    `w` (0..workers-1) tells `work` which per-thread buffers to use.
    """
    chunks = _Chunks(n, step, work)
    with threads_for(0):  # OpenBLAS (for every thread) and the caller's Numba on one thread until all are done
        _share(chunks, workers)


def _share(chunks: _Chunks, workers: int) -> None:
    """Runs `chunks` on the calling thread and up to workers - 1 helpers; returns when all are done."""
    helpers = max(0, min(workers, -(-chunks.n // chunks.step)) - 1)
    if helpers:
        _WORKERS.ensure(helpers)
    for w in range(1, helpers + 1):
        _WORKERS.tasks.put(lambda w=w: chunks.loop(w))
    chunks.loop(0)
    with chunks.cond:
        while chunks.left > 0:
            chunks.cond.wait()
    if chunks.error is not None:
        raise chunks.error


# The smallest chunk `parallel_range` hands out, as a fraction 1 / SMALLEST_CHUNK of one thread's share: the
# range's end is split this fine so that threads finish together (chunks shrink towards it, `_Chunks`).
SMALLEST_CHUNK = 32


def parallel_range(kernel: Callable[..., object], n: int, *args: Any, elements: int = -1) -> None:
    """Calls kernel(*args, lo, hi) for chunks [lo, hi) covering range(n): on the calling thread alone when
    its Numba thread count is 1 (small calls, set by `threads_for`; every thread inside `run_chunks`) or
    when the call touches fewer than PARALLEL_ELEMENTS `elements` (a pass over a step's small input, such
    as the padding copy before a direct conv), otherwise on that many threads, the caller and `run_chunks`'
    helpers taking chunks as they are free.

    The kernels are plain nogil Numba functions over [lo, hi) rather than `prange` loops: a parallel
    Numba function compiles about 3x slower (conv_forward: 2.1 s against 0.7 s), which made a small
    CNN's first run with an empty compile cache take ~23 s, most of it compiling these kernels.
    """
    workers = min(numba_threads(), n)
    if workers < 2 or 0 <= elements < PARALLEL_ELEMENTS:
        kernel(*args, 0, n)
        return
    # Not `run_chunks`: these kernels call neither BLAS nor parallel code, so thread counts need no change
    # (that costs ~10 us, a tenth of a pooling call).
    _share(_Chunks(n, -(-n // (workers * SMALLEST_CHUNK)), lambda w, lo, hi: kernel(*args, lo, hi), workers), workers)
