"""A compiled loop's generated module: its source, compilation through the kernel cache, and its calls.

`Program` holds the loop function of one loop (forward or gradient) for one tuple of value shapes: the
generated source (`compiler/native_loop.py` translates the sub-plans), the compiled function (from
jitflow's compile cache, so a later process loads it from disk), and how to bind its arguments on each
run: constants it keeps, scratch buffers it owns (one set per concurrent run), run-time values the caller
passes, and loop-invariant transposed copies made once per run.

`run_chunks` calls the loop function a bounded number of iterations at a time and returns to Python in
between, so that Ctrl-C (handled by Python between bytecodes) interrupts a runaway loop: the chunk grows
until one call takes about `CHUNK_SECONDS`.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow.compiler import native_blas
from jitflow.compiler.native_loop import BAIL, DONE, HELPERS, NATIVE_VERSION, Module, Unsupported
from jitflow.kernels.threads import _SET_BLAS_LOCAL as SET_BLAS_LOCAL
from jitflow.kernels.threads import blas_threads_for

CHUNK_SECONDS = 0.05  # a compiled loop returns to Python (for Ctrl-C) about this often
_FIRST_CHUNK = 8
_MAX_CHUNK = 1 << 20
# Threads for the GEMMs inside a compiled loop (OpenBLAS's, or the packed GEMMs' helpers and the caller): 0
# decides as a MatMul step does (all cores on an idle machine, one while other processes keep the cores busy:
# `blas_threads_for`); JITFLOW_LOOP_BLAS_THREADS fixes it. W8's 20x400x800 GEMMs: 2 threads ~1.8x faster
# idle, many times slower on a busy machine.
LOOP_BLAS_THREADS = int(os.environ.get("JITFLOW_LOOP_BLAS_THREADS", "0"))
PACKED_RUNS = [0]  # compiled loop runs with packed GEMMs (tests read it)
_HEAD = ["import numpy as np", "from numba import njit, types", "from jitflow.codegen import vmath as V",
         "from jitflow.kernels import packed_gemm"]
_FIXED = ["it", "lim", "stop", "st", "err"]  # the loop function's leading arguments


class Program:
    """One compiled loop function and the binding of its arguments (see the module doc)."""

    def __init__(self, mod: Module, loop_lines: list[str], what: str, macs: int) -> None:
        self.args = dict(mod.args)
        self.names = list(self.args)
        self.fused = list(mod.fused)
        self.macs = macs  # the largest GEMM of one iteration: decides OpenBLAS's thread count
        self.packed = any(kind == "packed" for kind, _ in mod.args.values())
        self.pool: list[dict[str, np.ndarray]] = []
        src = "\n".join(_HEAD) + "\n" + native_blas.PREAMBLE + HELPERS + "\n\n" + "\n\n\n".join(mod.kernel_src)
        sig = ", ".join(_FIXED + self.names)
        body = "\n".join("    " + ln for ln in loop_lines)
        fixed = ["types.int64"] * 3 + ["types.Array(types.int64, 1, 'C')"] * 2
        types = ", ".join(fixed + [mod.types[n] for n in self.names])
        self.source = (f"{src}\n\n\n_SIG = types.int64({types})\n\n\n"
                       f"@njit(_SIG, cache=True, nogil=True, error_model='numpy')\ndef loop({sig}):\n{body}\n")
        if "_gemm_f" in body and not native_blas.ensure_symbols():  # (loops without GEMMs need no BLAS)
            raise Unsupported("NumPy's OpenBLAS (numpy.libs) is not available to call GEMM from compiled code")
        from jitflow.codegen.cache import KernelCompileError, get_kernel

        try:
            self.fn, self.origin = get_kernel(self.source, "loop", {"native_loop": NATIVE_VERSION},
                                              {"ops": [what]})
        except KernelCompileError as e:
            raise Unsupported(f"the compiled loop did not compile: {e}") from e

    def bind(self, runtime: dict[str, Any]) -> tuple[list[Any], dict[str, np.ndarray]]:
        """The argument list for one run (`runtime`: the caller's values) and the scratch set it takes."""
        try:
            scratch = self.pool.pop()
        except IndexError:
            scratch = {n: np.empty(max(spec[0], 1), spec[1]) for n, (kind, spec) in self.args.items()
                       if kind == "scratch"}
        out: list[Any] = []
        for n, (kind, spec) in self.args.items():
            if kind == "scratch":
                out.append(scratch[n])
            elif kind == "const":
                out.append(spec)
            elif kind == "transpose":
                src, shape = spec
                out.append(np.ascontiguousarray(runtime[src].reshape(shape).T).reshape(-1))
            elif kind == "ctrl":
                from jitflow.kernels import packed_helpers  # here: its import starts Numba's CPU target

                out.append(packed_helpers.HELPERS.ctrl)
            elif kind == "packed":
                from jitflow.kernels import packed_gemm, packed_helpers

                src, shape, transposed = spec
                b = runtime[src].reshape(shape)
                k, n = (shape[1], shape[0]) if transposed else shape
                out.append(packed_helpers.pack(b, np.empty(packed_gemm.packed_size(k, n, b.dtype), b.dtype),
                                            transposed))
            else:
                out.append(runtime[n])
        return out, scratch

    def release(self, scratch: dict[str, np.ndarray]) -> None:
        self.pool.append(scratch)


def run_chunks(fn: Callable[..., int], it: int, lim: int, end: int, args: list[Any], macs: int,
               grow: Callable[[int], int] | None = None, packed: bool = False) -> tuple[int, int]:
    """Runs the loop from iteration `it` until it is done, `end` is reached or it bails; returns
    (iterations done, status). `grow(it)` (when given) is asked for room before each chunk and returns
    the iteration the next chunk must stop at (a history's capacity). `packed`: the loop runs packed GEMMs,
    whose helpers then spin while it runs (and OpenBLAS, for any other GEMM, keeps to one thread)."""
    st = np.zeros(1, np.int64)
    err = np.zeros(1, np.int64)
    chunk = _FIRST_CHUNK
    if packed:
        PACKED_RUNS[0] += 1
    threads = _blas_threads(LOOP_BLAS_THREADS) if LOOP_BLAS_THREADS else blas_threads_for(macs)
    helped = packed and LOOP_BLAS_THREADS != 1 and not (isinstance(threads, blas_threads_for) and threads.small)
    with _blas_threads(1) if helped else threads, _armed(helped):
        while True:
            stop = min(it + chunk, end)
            if grow is not None:
                stop = min(stop, grow(it))
            t0 = time.perf_counter()
            st[0] = 0
            it = fn(it, lim, stop, st, err, *args)
            status = int(st[0])
            if status in (DONE, BAIL) or it == lim or it >= end:
                return it, (BAIL if status == BAIL else DONE)
            dt = time.perf_counter() - t0
            if dt < CHUNK_SECONDS / 2 and chunk < _MAX_CHUNK:  # Python (and Ctrl-C) gets control back
                chunk *= 2


@contextlib.contextmanager
def _armed(on: bool) -> Any:
    """The packed GEMMs' helpers spin for work during the block (when `on`)."""
    if not on:
        yield
        return
    from jitflow.kernels import packed_helpers

    packed_helpers.HELPERS.arm()
    try:
        yield
    finally:
        packed_helpers.HELPERS.disarm()


@contextlib.contextmanager
def _blas_threads(n: int) -> Any:
    """OpenBLAS on `n` threads for the block (0: as it is)."""
    if n <= 0 or SET_BLAS_LOCAL is None:
        yield
        return
    prev = SET_BLAS_LOCAL(n)
    try:
        yield
    finally:
        SET_BLAS_LOCAL(prev)
