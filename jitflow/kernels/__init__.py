"""Hand-written fast kernels for ops whose NumPy reference kernel is too slow (convolution, pooling).

Each module holds Numba kernels and the NumPy/BLAS drivers around them; `compiler/window_steps.py`
puts them into compiled plans. The ops' NumPy kernels (`ops/nn_ops.py`) stay the specification that
every kernel here is tested against.
"""
from __future__ import annotations

# Numba's OpenMP threads wait passively in compiled plans: `omp.passive_wait` (the policy is the
# process's, but the environment variable is not left behind).
