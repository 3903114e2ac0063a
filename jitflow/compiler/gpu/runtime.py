"""The CUDA runtime as jitflow uses it: the numba.cuda module, the compile target, devices, host copies."""
from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from jitflow.codegen import cuda as cg
from jitflow.compiler.placement import gpu_count, requested_gpu  # noqa: F401 - gpu_count: tests stand in for it here
from jitflow.framework.graph import Operation

# -- the CUDA runtime ------------------------------------------------------------------------------------

_target: cg.Target | None = None


def cuda_api() -> Any:
    """The `numba.cuda` module (numba-cuda when installed, else Numba's bundled one)."""
    from numba import cuda

    return cuda


def simulated() -> bool:
    """True when `numba.cuda` is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return "simulator" in type(cuda_api().gpus).__module__


def target() -> cg.Target:
    """What kernels are compiled for: "cudasim" on the simulator, else the current device's sm_XY."""
    global _target
    if _target is None:
        if simulated():
            # the simulator runs a Python thread per CUDA thread: small blocks keep it fast
            _target = cg.Target("cudasim", tpb=8, tile=4, max_blocks=4)
        else:
            cc = cuda_api().get_current_device().compute_capability
            _target = cg.Target(f"sm_{cc[0]}{cc[1]}", tpb=256, tile=16, max_blocks=4096)
    return _target


_sim_lock = threading.Lock()
_no_lock = contextlib.nullcontext()


def launch_guard() -> Any:
    """Held around kernel launches: the simulator runs one launch at a time (its thread state is global)."""
    return _sim_lock if target().arch == "cudasim" else _no_lock


def usable_gpu(op: Operation, n_gpus: int) -> int | None:
    """The CUDA device `op` runs on, or None (placed on the CPU, or its GPU does not exist)."""
    idx = requested_gpu(op)
    return idx if idx is not None and idx < n_gpus else None


_multi_device = False  # set once a plan places CUDA steps on a device other than 0


def mark_multi_device() -> None:
    """Notes that some plan runs CUDA steps on a device other than 0: arrays may need moving."""
    global _multi_device
    _multi_device = True


def multi_device() -> bool:
    """True once some plan has placed CUDA steps on a device other than 0."""
    return _multi_device


def current_device() -> int:
    """The CUDA device the calling thread launches on (0 on the simulator, which has one)."""
    getter = getattr(cuda_api(), "get_current_device", None)  # Numba's bundled simulator lacks it
    return int(getattr(getter(), "id", 0)) if getter is not None else 0


def array_device(a: Any) -> int:
    """The device that holds device array `a` (0 when it cannot tell, e.g. on the simulator)."""
    ctx = getattr(getattr(a, "gpu_data", None), "context", None)
    return int(getattr(getattr(ctx, "device", None), "id", 0))


def here(a: Any) -> Any:
    """Device array `a` on the current device (copied through the host when it lives on another GPU)."""
    if _multi_device and array_device(a) != current_device():
        return cuda_api().to_device(to_host(a))
    return a


class OnDevice:
    """Runs a CUDA step with device N current (kernels, allocations and uploads go there)."""

    kind = "on_device"  # the step it runs is `step`
    backend = "cuda"

    def __init__(self, step: Any, device: int) -> None:
        self.step = step
        self.device = device
        self.ops, self.reads, self.writes, self.stateful = step.ops, step.reads, step.writes, step.stateful

    def __call__(self, ctx: Any, vals: list) -> None:
        with cuda_api().gpus[self.device]:
            self.step(ctx, vals)


def is_device_array(x: Any) -> bool:
    """True for a CUDA device array (or the simulator's stand-in)."""
    return type(x) is not np.ndarray and hasattr(x, "copy_to_host")


def c_order(a: np.ndarray) -> np.ndarray:
    """`a` in C order, keeping its rank (np.ascontiguousarray makes rank 0 into rank 1)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def to_host(x: Any) -> np.ndarray:
    """A host copy of a device array."""
    out: np.ndarray = x.copy_to_host()
    return out
