"""OpenBLAS's thread server restarted with short spinning at import (jitflow/kernels/blas_spin.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jitflow.kernels import openblas

ROOT = Path(__file__).resolve().parents[2]
CHILD = r'''
import ctypes, os, sys
import numpy as np
a = np.random.RandomState(0).rand(300, 400)
before = a @ a.T  # the server runs (threaded GEMM) before jitflow restarts it
import jitflow
from jitflow.kernels import openblas
lib = ctypes.CDLL(openblas.library_path())
after = a @ a.T
import resource, time
t0 = resource.getrusage(resource.RUSAGE_SELF)
time.sleep(0.2)  # a spinning worker burns CPU time here; a sleeping one does not
t1 = resource.getrusage(resource.RUSAGE_SELF)
spun_ms = 1e3 * (t1.ru_utime + t1.ru_stime - t0.ru_utime - t0.ru_stime)
print(lib.openblas_thread_timeout(), os.environ.get("OPENBLAS_THREAD_TIMEOUT"), np.array_equal(before, after),
      int(spun_ms))
'''


def _child(env_extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="2", **env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(openblas.library_path() is None, reason="NumPy without its bundled OpenBLAS")
def test_import_sets_short_spinning_and_leaves_the_environment_alone() -> None:
    from jitflow.kernels.blas_spin import SPIN_EXPONENT

    timeout, env_after, same, spun_ms = _child({})
    assert timeout == str(SPIN_EXPONENT) and env_after == "None" and same == "True"
    assert int(spun_ms) < 30  # the worker went to sleep (OpenBLAS's default spins ~80 ms after a GEMM)


@pytest.mark.skipif(openblas.library_path() is None, reason="NumPy without its bundled OpenBLAS")
def test_a_timeout_the_user_set_is_kept() -> None:
    timeout, env_after, same, _ = _child({"OPENBLAS_THREAD_TIMEOUT": "22"})
    assert timeout == "22" and env_after == "22" and same == "True"


def test_second_call_does_nothing() -> None:
    from jitflow.kernels.blas_spin import short_spin

    assert short_spin() is False  # jitflow's import already made the one restart
