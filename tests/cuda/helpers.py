"""Helpers for CUDA tests: run a graph placed on /gpu:0 through CUDA and through the interpreter."""
from __future__ import annotations

from typing import Any

import pytest

from jitflow.compiler import gpu
from jitflow.compiler.placement import gpu_count
from jitflow.compiler.plan import Plan
from tests.compiler.helpers import last_plan, run_both  # noqa: F401 - re-exported for the CUDA tests

# numba.cuda imports and sees a device (a real GPU, or the simulator chosen in conftest.py)
needs_cuda = pytest.mark.skipif(gpu_count() == 0, reason="numba.cuda with a GPU or the simulator is needed")


# The same comparison as the CPU compiler tests: ops placed on /gpu:0 make the compiled run CUDA's.
run_gpu = run_both


def cuda_steps(plan: Plan) -> list[Any]:
    """The CUDA steps of a plan."""
    return [s for s in plan.steps if isinstance(s, (gpu.CudaClusterStep, gpu.CudaMatMulStep))]


def backends(plan: Plan) -> list[str]:
    """The backend of every cluster the plan reports."""
    return [c["backend"] for c in plan.report["clusters"]]
