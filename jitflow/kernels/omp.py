"""Numba's OpenMP threads wait passively, without OMP_WAIT_POLICY staying in the environment.

Numba's OpenMP threads spin after each parallel region by default; on a 2-core machine that spinning
takes the cores from the BLAS threads of the GEMM that follows (measured: W7's second conv 3x slower,
bench/README.md). The OpenMP runtime (libgomp) reads its wait policy once, from the environment, when
it is loaded, and has no call that changes it afterwards or for one parallel region; Numba loads it,
through its threading layer, once per process. So the policy cannot be scoped to jitflow's kernels:
it is the process's. What can be scoped is the environment variable: `passive_wait()` sets
``OMP_WAIT_POLICY=PASSIVE`` only while it makes Numba load its threading layer, and removes it again,
so child processes and other libraries see the environment the user gave. A policy the user set is
kept; a threading layer already loaded (the user's own parallel Numba code ran first) is left as it is.
`compiler/lower.py` calls it before a plan gets compiled steps (the only place jitflow's parallel
kernels run).
"""
from __future__ import annotations

import os
import threading

_VAR = "OMP_WAIT_POLICY"
_lock = threading.Lock()
_done = False


def passive_wait() -> None:
    """Loads Numba's threading layer with the passive OpenMP wait policy (once per process; see the module doc)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        from numba.np.ufunc import parallel

        ours = _VAR not in os.environ
        if ours:
            os.environ[_VAR] = "PASSIVE"
        try:
            parallel._launch_threads()  # loads the layer (libgomp reads the policy now) and starts its pool
        finally:
            if ours:
                del os.environ[_VAR]
        _done = True
