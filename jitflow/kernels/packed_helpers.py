"""The Python side of the packed GEMMs (`kernels/packed_gemm.py`): packing the right operand once per run,
and the helper threads that take blocks of the jobs posted while a compiled loop runs, or while a plan runs
whose steps post them (`serving`: a batch-1 dense layer's vector-matrix product, a small batch's Winograd
conv as compiled blocks called through their addresses: `block_function`).

Kept apart from `packed_gemm`, which generated loops import: the compile cache digests every jitflow
module a generated kernel imports (and theirs), and this module's cached kernels import the cache's own.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import numba
import numpy as np

from jitflow.codegen.cache.library import njit as library_njit
from jitflow.kernels import packed_gemm as P
from jitflow.kernels import threads

# `_serve` compiles `packed_gemm`'s functions (and `stream_gemv`'s) in: its cached code must follow their edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.packed_gemm", "jitflow.kernels.stream_gemv", "jitflow.kernels.llvm_kit")
# Spins (each a `pause`, ~25 ns on the AVX-512 host) a helper waits for the next job before it returns to its
# Python loop, which serves again while armed.
IDLE_SPINS = 1 << 16
# Spins a helper goes on waiting after a plan run (`serving`) before it sleeps, so that runs a few hundred
# us apart find it awake: waking it at the start of each run cost the run's first step ~15 us (W7i's first
# conv, 57 -> 74 us). After a compiled loop it sleeps at once: OpenBLAS's threads may need the core next.
LINGER_SPINS = 1 << 16


@library_njit(nogil=True, error_model="numpy")
def _pack(src, out, k, n, nb, transposed):  # type: ignore[no-untyped-def]
    if transposed:
        _pack_transposed(src, out, k, n, nb)
        return
    for jb in range(-(-n // nb)):
        j0 = jb * nb
        w = min(nb, n - j0)
        for kk in range(k):
            dst = out[(jb * k + kk) * nb:(jb * k + kk + 1) * nb]
            row = src[kk, j0:j0 + w]
            for j in range(w):
                dst[j] = row[j]
            for j in range(w, nb):
                dst[j] = 0


@library_njit(nogil=True, error_model="numpy")
def _pack_transposed(src, out, k, n, nb):  # type: ignore[no-untyped-def]
    """`_pack` of B = src.T through nb x nb tiles (contiguous reads of src's rows and writes of the packed
    rows; reading src column-wise instead took 4x as long)."""
    tile = np.empty((nb, nb), out.dtype)
    for jb in range(-(-n // nb)):
        j0 = jb * nb
        w = min(nb, n - j0)
        for k0 in range(0, k, nb):
            kw = min(nb, k - k0)
            for j in range(w):
                row = src[j0 + j, k0:k0 + kw]
                t = tile[j]
                for kk in range(kw):
                    t[kk] = row[kk]
            for kk in range(kw):
                dst = out[(jb * k + k0 + kk) * nb:(jb * k + k0 + kk + 1) * nb]
                for j in range(w):
                    dst[j] = tile[j, kk]
                for j in range(w, nb):
                    dst[j] = 0


def pack(b: np.ndarray, out: np.ndarray, transposed: bool = False, bits: int = 0) -> np.ndarray:
    """Packs the right operand ``B`` into `out` (`packed_size` elements): ``B = b``, or ``b.T`` when
    `transposed` (then `b` is ``[n, k]``); for vectors of `bits` (default: the host's, as `control`)."""
    k, n = (b.shape[1], b.shape[0]) if transposed else b.shape
    _pack(b, out, k, n, P.block_columns(b.dtype, bits), transposed)
    return out



@library_njit(nogil=True, error_model="numpy")
def _serve(ctrl, idle_spins):  # type: ignore[no-untyped-def]
    """A helper's spin loop: takes blocks of each new job; returns after `idle_spins` without a job while
    armed, or ``ctrl[LINGER]`` once disarmed."""
    tail32 = np.empty(P.ROWS * 2 * 512 // 32, np.float32)  # room for a block at the widest vectors
    tail64 = np.empty(P.ROWS * 2 * 512 // 64, np.float64)
    seen = P.atomic_load(ctrl, P.SEQ)
    idle = 0
    while idle < (idle_spins if P.atomic_load(ctrl, P.ARMED) != 0 else P.atomic_load(ctrl, P.LINGER)):
        s = P.atomic_load(ctrl, P.SEQ)
        if s == seen:
            idle += 1
            P.pause()
            continue
        seen = s
        idle = 0
        P.atomic_add(ctrl, P.BUSY, 1)  # before the claim: the poster waits for it
        P.atomic_add(ctrl, P.HELPED, P.take_blocks(ctrl, tail32, tail64))
        P.atomic_add(ctrl, P.BUSY, -1)


class Helpers:
    """The helper threads of the packed GEMMs (one fewer than Numba's threads) and their control array."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._fresh()

    def _fresh(self) -> None:
        """No threads yet and a new control array (also a forked child's state: it has no helper threads, and
        a job or a count in flight in the parent must not make its GEMMs wait)."""
        self.ctrl = P.control()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.started = False
        self.armed_by = 0  # nested `armed` blocks (loops run by several threads at once)

    def _run(self) -> None:
        while True:
            self.wake.wait()
            _serve(self.ctrl, IDLE_SPINS)
            with self.lock:
                if self.armed_by == 0:
                    self.wake.clear()

    def arm(self) -> None:
        """Helpers spin for jobs until `disarm` (started on first use)."""
        if self.count <= 0:
            return
        with self.lock:
            if not self.started:
                _serve(self.ctrl, 0)  # compiled (or loaded) here, not in the helpers while jobs come
                for i in range(self.count):
                    threading.Thread(target=self._run, name=f"jitflow-gemm-{i}", daemon=True).start()
                self.started = True
            self.armed_by += 1
            self.ctrl[P.ARMED] = 1
            self.wake.set()

    def disarm(self, linger: int = 0) -> None:
        """Ends an `arm`; the last one lets the helpers go on spinning for `linger` spins before they sleep."""
        if self.count <= 0:
            return
        with self.lock:
            self.armed_by -= 1
            if self.armed_by == 0:
                self.ctrl[P.LINGER] = linger
                self.ctrl[P.ARMED] = 0
                self.wake.clear()


HELPERS = Helpers(min(int(numba.config.NUMBA_NUM_THREADS), os.cpu_count() or 1) - 1)  # type: ignore[attr-defined]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=HELPERS._fresh)


_ADDRESSES: dict[int, int] = {}
_BLOCK_SIG = (numba.types.int64, numba.types.int64)


def block_function(kernel: Any) -> int:
    """The address of `kernel` (a Numba function ``kernel(args, jb)`` of two int64s, returning nothing) as a C
    function, for `packed_gemm.run_blocks`: Numba's C wrapper of its (int64, int64) compilation."""
    addr = _ADDRESSES.get(id(kernel))
    if addr is None:
        dispatcher = kernel._resolve() if hasattr(kernel, "_resolve") else kernel  # (a LazyKernel)
        dispatcher.compile(_BLOCK_SIG)
        cres = dispatcher.overloads[_BLOCK_SIG]
        addr = _ADDRESSES[id(kernel)] = cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)
    return addr


@contextlib.contextmanager
def serving(blas: bool = True) -> Iterator[None]:
    """Helpers spin for jobs during the block, and OpenBLAS keeps to the calling thread (a second OpenBLAS
    thread would wait for the core a helper spins on): a plan run whose steps post jobs (`execute`). Nothing
    is armed while other processes keep the cores busy: a spinning helper would take a core from them.
    `blas=False`: the block's GEMMs are too small for OpenBLAS to thread (the setting costs ~4 us a run)."""
    if HELPERS.count <= 0 or threads.others_busy():
        yield
        return
    HELPERS.arm()
    local = blas and threads._SET_BLAS_LOCAL is not None
    prev = threads._SET_BLAS_LOCAL(1) if local else 0
    try:
        yield
    finally:
        if local:
            threads._SET_BLAS_LOCAL(prev)
        HELPERS.disarm(LINGER_SPINS)
