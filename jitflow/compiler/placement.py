"""Device placement: which backend an op runs on, and what happens when its device does not exist."""
from __future__ import annotations

import sys
from typing import Any

from jitflow import errors
from jitflow.framework.device import DeviceSpec
from jitflow.framework.graph import Operation, Tensor


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
                                     f"[ /job:localhost/replica:0/task:0/device:CPU:0 ]. Make sure the device "
                                     "specification refers to a valid device.")
            if log:
                print(f"{op.name}: ({op.type}): {op.device} is not available; placed on "
                      "/job:localhost/replica:0/task:0/device:CPU:0", file=sys.stderr)
