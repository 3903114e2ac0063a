"""The backend interface: what the compiler asks of a place that runs kernels (the CPU, CUDA, ...).

A `Backend` renders a cluster's IR into kernel source, compiles it (through jitflow's content-keyed
cache), launches a kernel, allocates the run's buffers, moves values between the host and itself, and
moves the steps placed on it into a plan (`place`, the last pass of `lower`). The backend of a cluster
is chosen when `lower` builds it (`cluster_backend`) and recorded in the cluster IR (`Cluster.backend`)
and in the steps (`Step.backend`).

`backend(name)` returns the one instance of each backend: `CpuBackend` here, `CudaBackend` in
`compiler/gpu/backend.py` (imported only when a plan asks for a GPU, so CPU-only plans never import
numba.cuda). The CPU hot path (`ClusterStep.__call__`) calls its kernel and its arena directly: a CPU
launch is a call and a CPU allocation an arena lookup, and a method call per run would cost more than
either.
"""
from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from jitflow.codegen import cpu
from jitflow.compiler.arena import Arena
from jitflow.compiler.placement import requested_gpu
from jitflow.compiler.step import ARENA_SLOT, CPU, CUDA
from jitflow.framework.graph import Operation
from jitflow.ir.cluster import Cluster
from jitflow.ir.layout import Layout


class Backend(Protocol):
    """Where kernels run: render, compile, launch, allocate, move (see the module doc)."""

    name: str
    # True when a cluster's kernel is compiled as `lower` builds the cluster (the CPU); False when the
    # backend compiles once `place` has made its steps (CUDA)
    compiles_when_built: bool

    def render(self, c: Cluster, layout: Layout, parallel: bool = False) -> str:
        """The kernel source of cluster `c` specialized on `layout`."""
        ...

    def compile(self, source: str, parts: dict[str, Any], ops: list[str], report: dict[str, Any],
                entry: str | None = None) -> Any:
        """The compiled kernel of `source` (from the cache when it holds it); records it in `report`."""
        ...

    def launch(self, kernel: Any, *args: Any) -> None:
        """Runs `kernel` on `args` (arrays of this backend and scalars)."""
        ...

    def allocate(self, vals: list, key: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """An array of this backend from the run's arena, reused across runs under `key`."""
        ...

    def move(self, value: Any, to_host: bool) -> Any:
        """`value` as a host array (`to_host`) or as an array of this backend."""
        ...

    def place(self, plan: Any) -> None:
        """Moves the steps of the ops placed on this backend into `plan`, in place (the end of `lower`)."""
        ...


class CpuBackend:
    """Numba kernels on the host (`codegen/cpu.py`), buffers from the run's `Arena`."""

    name = CPU
    compiles_when_built = True

    def render(self, c: Cluster, layout: Layout, parallel: bool = False) -> str:
        """The Numba source of cluster `c` for `layout` (`parallel`: the prange variant)."""
        return cpu.generate(c, layout, parallel)

    def compile(self, source: str, parts: dict[str, Any], ops: list[str], report: dict[str, Any],
                entry: str | None = None) -> Any:
        """The kernel `entry` of `source` through the compile cache; its key, time and origin go to `report`."""
        from jitflow.codegen.cache import get_kernel, kernel_key

        entry = entry or cpu.ENTRY
        t0 = time.perf_counter()
        fn, origin = get_kernel(source, entry, parts, {"ops": ops}, CPU)
        dt = time.perf_counter() - t0
        report["key"] = kernel_key({**parts, "source": source, "entry": entry, "backend": CPU})
        report["compile_seconds"] = round(report.get("compile_seconds", 0.0) + (dt if origin != "memory" else 0.0),
                                          6)
        report["source"] = origin
        return fn

    def launch(self, kernel: Any, *args: Any) -> None:
        """A CPU kernel runs when called."""
        kernel(*args)

    def allocate(self, vals: list, key: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """A buffer of the run's arena, shaped."""
        arena: Arena = vals[ARENA_SLOT]
        return arena.buffer(key, int(np.prod(shape)), dtype).reshape(shape)

    def move(self, value: Any, to_host: bool) -> Any:
        """Host values are already where the CPU reads them."""
        return np.asarray(value)

    def place(self, plan: Any) -> None:
        """Nothing to move: plans are built with CPU steps."""


_CPU = CpuBackend()
_backends: dict[str, Backend] = {CPU: _CPU}


def backend(name: str) -> Backend:
    """The backend called `name` ("cpu" or "cuda")."""
    b = _backends.get(name)
    if b is None:
        if name != CUDA:
            raise ValueError(f"unknown backend {name!r}")
        from jitflow.compiler.gpu.backend import CudaBackend  # only plans that ask for a GPU load numba.cuda

        b = _backends[name] = CudaBackend()
    return b


def cluster_backend(members: list[Operation], n_gpus: int) -> str:
    """The backend of a cluster: CUDA when all its ops sit on one GPU of this machine (`n_gpus`), else CPU."""
    if not n_gpus:
        return CPU
    devs = {requested_gpu(m) for m in members}
    idx = next(iter(devs))
    return CUDA if len(devs) == 1 and idx is not None and idx < n_gpus else CPU


def devices_of(ops: list[Operation]) -> list[str]:
    """The backends other than the CPU that some op of `ops` asks for (their `place` runs after lowering)."""
    return [CUDA] if any(requested_gpu(op) is not None for op in ops) else []
