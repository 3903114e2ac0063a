"""OpenBLAS's worker threads sleep soon after a GEMM instead of spinning for tens of milliseconds.

After each threaded call an OpenBLAS worker spins, waiting for the next one, for ``2**timeout`` CPU
cycles before it sleeps; NumPy's build uses the default exponent 28, about 80 ms. On a 2-core machine
that spinning worker shares a core with whatever runs next, so a parallel Numba kernel that follows a
GEMM gets half a core for its second thread. Measured (in one process, switching between the two
settings every few steps, bench/README.md): the dcgan example's training step 95 -> 76 ms (median; its
Winograd transforms and pooling kernels follow GEMMs), and W7, W7i and W8 unchanged within noise.
`short_spin()` restarts OpenBLAS's thread server with the exponent `SPIN_EXPONENT` (2**20 cycles of the
time-stamp counter: 0.4 ms at this machine's 2.6 GHz): long enough that the GEMMs of a compiled loop, a
few microseconds apart, find their workers awake, and that a worker's core has not gone idle for long
when the next GEMM comes: waking a thread whose virtual CPU has idled longer takes ~70 us here. Measured
against 2**16 (alternating processes, Dec 4): W7i's batch-1 run 434-474 us against 486-534 (its
1x3136x1024 GEMV 121-140 us against 143-240), W7's step and dcgan's unchanged (51 ms, 60 ms; 2**22 made
dcgan's step 62 ms), `recurrent_network` 5.70-6.05 s against 6.26-6.31 s.

OpenBLAS reads the exponent from ``OPENBLAS_THREAD_TIMEOUT`` when it reads its environment
(`openblas_read_env`, exported) and applies it when its thread server starts; `blas_thread_shutdown_`
(exported; the call its own fork handler makes) stops the server, and the next threaded call starts it
again. The variable is set only around that read, so child processes see the user's environment. A
timeout the user set is kept, as is any BLAS other than NumPy's bundled OpenBLAS. Like the OpenMP wait
policy (`omp.py`) this is a setting of the process, changed once, when jitflow is imported (a program's
imports run before its threads start, so no BLAS call can be in flight in another thread).
"""
from __future__ import annotations

import os
import threading

from jitflow.kernels import openblas

_VAR = "OPENBLAS_THREAD_TIMEOUT"
SPIN_EXPONENT = 20
_lock = threading.Lock()
_done: list[bool] = []


def short_spin() -> bool:
    """Restarts NumPy's OpenBLAS thread server with short spinning (once per process; see the module
    doc). True when it did; False when already done, the user chose a timeout, or the library lacks
    the calls."""
    with _lock:
        if _done:
            return False
        _done.append(True)
        if _VAR in os.environ:
            return False
        lib = openblas.library()
        try:
            shutdown, read_env = lib.blas_thread_shutdown_, lib.openblas_read_env
        except AttributeError:  # no library, or another OpenBLAS build: its default spinning stays
            return False
        os.environ[_VAR] = str(SPIN_EXPONENT)
        try:
            shutdown()
            read_env()
        finally:
            del os.environ[_VAR]
        return True
