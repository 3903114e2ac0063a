"""Device placement: which backend an op runs on, and what happens when its device does not exist.

`/gpu:N`, `/device:GPU:N` and full names (`/job:localhost/replica:0/task:0/device:GPU:N`) ask for CUDA
device N. When it exists (a GPU seen by numba.cuda, or Numba's CUDA simulator), the op's compiled
cluster runs on it (`compiler/gpu.py`). When it does not, soft placement (`allow_soft_placement=True`,
the default) runs the op on the CPU and strict placement raises InvalidArgumentError naming the op and
the device. `log_device_placement=True` prints where each op placed on a GPU goes.
"""
from __future__ import annotations

import sys
from typing import Any

from jitflow import errors
from jitflow.framework.device import DeviceSpec
from jitflow.framework.graph import Operation, Tensor

_CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


def _available(n_gpus: int) -> str:
    """TF's list of the devices a session has, for error messages."""
    return ", ".join([_CPU] + [f"/job:localhost/replica:0/task:0/device:GPU:{i}" for i in range(n_gpus)])


def gpu_count() -> int:
    """Number of usable CUDA devices (0 without numba-cuda or a GPU)."""
    try:
        from numba import cuda
    except ImportError:
        return 0
    try:
        return len(cuda.gpus) if cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver means no GPU
        return 0


def requested_gpu(op: Operation) -> int | None:
    """The GPU index an op asks for, or None for the CPU / no device."""
    spec = DeviceSpec.from_string(op.device)
    if spec.device_type == "GPU":
        return spec.device_index or 0
    return None


def check_placement(fetches: list[Tensor | Operation], feeds: list[Tensor], config: Any) -> None:
    """Raises InvalidArgumentError for ops placed on a missing GPU under strict placement."""
    from jitflow.compiler.prune import prune

    ops = prune([f for f in fetches if isinstance(f, Tensor)], [f for f in fetches if isinstance(f, Operation)],
                set(feeds))
    soft = getattr(config, "allow_soft_placement", True)
    log = getattr(config, "log_device_placement", False)
    n = None
    for op in ops:
        idx = requested_gpu(op)
        if idx is None:
            continue
        if n is None:
            n = gpu_count()
        if idx >= n:
            if not soft:
                raise errors.InvalidArgumentError(
                    op.node_def, op, f"Cannot assign a device for operation {op.name}: Operation was explicitly "
                                     f"assigned to {op.device} but available devices are "
                                     f"[ {_available(n)} ]. Make sure the device "
                                     "specification refers to a valid device.")
            if log:
                print(f"{op.name}: ({op.type}): {op.device} is not available; placed on "
                      f"{_CPU}", file=sys.stderr)
        elif log:
            print(f"{op.name}: ({op.type}): /job:localhost/replica:0/task:0/device:GPU:{idx}", file=sys.stderr)
