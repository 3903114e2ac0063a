"""Device placement: which backend an op runs on, and what happens when its device does not exist.

`/gpu:N`, `/device:GPU:N` and full names (`/job:localhost/replica:0/task:0/device:GPU:N`) ask for CUDA
device N. When it exists (a GPU seen by numba.cuda, or Numba's CUDA simulator), the op's compiled
cluster runs on it (`compiler/gpu/`). When it does not, soft placement (`allow_soft_placement=True`)
runs the op on the CPU and strict placement raises InvalidArgumentError naming the op and
the device. `log_device_placement=True` prints where each op goes. As in TF, strict placement is the
default, and an op pinned to another job (`/job:ps`) needs a session with a cluster.
"""
from __future__ import annotations

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


def check_placement(fetches: list[Tensor | Operation], feeds: list[Tensor], config: Any, target: str = "") -> None:
    """Checks every op of a run against the session's devices, as TF's placer does at the first run.

    An op pinned to a missing GPU (or CPU) raises InvalidArgumentError unless `allow_soft_placement`; an
    op pinned to a job other than `localhost` in a session without a cluster raises in any case (soft
    placement does not move ops between jobs). `log_device_placement` prints where each op goes.
    """
    from jitflow.compiler.prune import prune

    ops = prune([f for f in fetches if isinstance(f, Tensor)], [f for f in fetches if isinstance(f, Operation)],
                set(feeds))
    soft = bool(getattr(config, "allow_soft_placement", False))
    log = bool(getattr(config, "log_device_placement", False))
    n = gpu_count() if any(requested_gpu(op) is not None for op in ops) else 0
    lines = []
    for op in reversed(ops):  # consumers first: the op named in an error is the one nearest the fetch
        spec = DeviceSpec.from_string(_colocated_device(op))
        if spec.job not in (None, "localhost") and not target:
            raise _placement_error(op, n, "allow_soft_placement does not move an op to another job: this "
                                          "session has no cluster")
        where = _device_for(spec, n)
        if where is None:
            if not soft:
                raise _placement_error(op, n, "set allow_soft_placement=True in the session's ConfigProto to run "
                                              "it where it can")
            where = _CPU
        lines.append(f"{op.name}: ({op.type}): {where}")
    if log:
        print("\n".join(reversed(lines)), flush=True)  # TF's placer prints these on stdout


def _colocated_device(op: Operation) -> str:
    """The device an op is placed on: an op that takes a variable by reference (Assign, Apply*) goes
    with that variable, as TF's placer colocates them; any other op where it asks."""
    for i in sorted(op.opdef.ref_inputs):
        if i < len(op.inputs) and op.inputs[i].op.device:
            return op.inputs[i].op.device
    return op.device


def _device_for(spec: DeviceSpec, n_gpus: int) -> str | None:
    """The full name of the local device `spec` asks for, or None when there is no such device."""
    kind = spec.device_type
    idx = spec.device_index or 0
    if kind is None or (kind == "CPU" and idx == 0):
        return _CPU
    if kind == "GPU" and idx < n_gpus:
        return f"/job:localhost/replica:0/task:0/device:GPU:{idx}"
    return None


def _placement_error(op: Operation, n_gpus: int, hint: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(
        op.node_def, op, f"Cannot assign a device for operation {op.name}: Operation was explicitly assigned to "
                         f"{op.device} but available devices are [ {_available(n_gpus)} ]. Make sure the device "
                         f"specification refers to a valid device ({hint}).")
