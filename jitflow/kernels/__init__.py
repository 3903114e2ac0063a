"""Hand-written fast kernels for ops whose NumPy reference kernel is too slow (convolution, pooling).

Each module holds Numba kernels and the NumPy/BLAS drivers around them; `compiler/window_steps.py`
puts them into compiled plans. The ops' NumPy kernels (`ops/nn_ops.py`) stay the specification that
every kernel here is tested against.
"""
from __future__ import annotations

import numpy as np

# Numba's OpenMP threads wait passively in compiled plans: `omp.passive_wait` (the policy is the
# process's, but the environment variable is not left behind).


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of `a`. Numba types read-only and writable arrays apart and compiles a kernel once
    per type: a bias that is a variable's value is read-only, a fed or computed one (or the kernels' own
    zero placeholder) is not, so the kernels take every bias this way and compile once (a cold process
    compiled Winograd's output transform twice, 1.4 s each)."""
    v = a.view()
    v.flags.writeable = False
    return v
