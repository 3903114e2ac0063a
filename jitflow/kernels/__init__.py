"""Hand-written fast kernels for ops whose NumPy reference kernel is too slow (convolution, pooling).

Each module holds Numba kernels and the NumPy/BLAS drivers around them; `compiler/window_steps.py`
puts them into compiled plans. The ops' NumPy kernels (`ops/nn_ops.py`) stay the specification that
every kernel here is tested against.
"""
from __future__ import annotations

import os

# Numba's OpenMP threads spin after each parallel region by default; on a 2-core machine that spinning
# takes the cores from the BLAS threads of the GEMM that follows (measured: W7's second conv 3x slower,
# bench/README.md). Must be set before the OpenMP runtime loads, i.e. before the first parallel kernel.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
