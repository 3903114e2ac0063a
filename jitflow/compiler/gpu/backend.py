"""The CUDA backend behind the compiler's `Backend` interface (`compiler/backend.py`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.codegen import cuda as cg
from jitflow.compiler.gpu import runtime  # through the module: tests stand in for its functions
from jitflow.compiler.gpu.memory import device_buffer
from jitflow.compiler.gpu.rewrite import lower_gpu_clusters
from jitflow.compiler.gpu.runtime import c_order, launch_guard, target
from jitflow.compiler.gpu.steps import compile_cuda
from jitflow.compiler.step import CUDA
from jitflow.ir.cluster import Cluster
from jitflow.ir.layout import Layout


class CudaBackend:
    """CUDA kernels (`codegen/cuda.py`) for the current device, device buffers from the run's arena."""

    name = CUDA
    compiles_when_built = False  # a CUDA cluster compiles once `place` has made its step

    def render(self, c: Cluster, layout: Layout, parallel: bool = False) -> str:
        """The CUDA module of cluster `c` for `layout` and the compile target (every launch is parallel)."""
        return cg.generate(c, layout, target())

    def compile(self, source: str, parts: dict[str, Any], ops: list[str], report: dict[str, Any],
                entry: str | None = None) -> Any:
        """The module's launcher through the compile cache, keyed on the target too; recorded in `report`."""
        assert entry in (None, cg.ENTRY), "CUDA modules have one entry point"
        return compile_cuda(source, parts, ops, report)

    def launch(self, kernel: Any, *args: Any) -> None:
        """Runs a launcher (one launch at a time on the simulator)."""
        with launch_guard():
            kernel(*args)

    def allocate(self, vals: list, key: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """A device array of the run's arena, reused across runs."""
        return device_buffer(vals, key, shape, dtype)

    def move(self, value: Any, to_host: bool) -> Any:
        """A host copy of a device array, or a device copy of a host value (device arrays stay)."""
        if to_host:
            return runtime.to_host(value) if runtime.is_device_array(value) else np.asarray(value)
        if runtime.is_device_array(value):
            return runtime.here(value)
        return runtime.cuda_api().to_device(c_order(np.asarray(value)))

    def place(self, plan: Any) -> None:
        """Replaces the steps of ops placed on an available GPU by CUDA steps (`rewrite.lower_gpu_clusters`)."""
        lower_gpu_clusters(plan)
