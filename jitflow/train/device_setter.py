"""`tf.train.replica_device_setter`: variables on parameter-server tasks, other ops on the worker."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

from jitflow.framework.device import DeviceSpec
from jitflow.framework.graph import Operation

# Op types that hold state and so belong on a parameter server (TF's STANDARD_PS_OPS).
STANDARD_PS_OPS = ("Variable", "VariableV2", "AutoReloadVariable", "MutableHashTable", "MutableHashTableV2",
                   "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2", "MutableDenseHashTable",
                   "MutableDenseHashTableV2", "VarHandleOp")


class _RoundRobinStrategy:
    """Assigns ps tasks 0, 1, ..., n-1, 0, ... to successive variables."""

    def __init__(self, num_tasks: int) -> None:
        self._num_tasks = num_tasks
        self._next_task = 0

    def __call__(self, unused_op: Any) -> int:
        task = self._next_task
        self._next_task = (self._next_task + 1) % self._num_tasks
        return task


class _ReplicaDeviceChooser:
    """The device function: a ps device for `ps_ops`, the worker device for everything else."""

    def __init__(self, ps_tasks: int, ps_device: str, worker_device: str, merge_devices: bool,
                 ps_ops: Iterable[str], ps_strategy: Callable[[Any], int]) -> None:
        self._ps_tasks = ps_tasks
        self._ps_device = ps_device
        self._worker_device = worker_device
        self._merge_devices = merge_devices
        self._ps_ops = frozenset(ps_ops)
        self._ps_strategy = ps_strategy

    def device_function(self, op: Operation) -> str:
        current = DeviceSpec.from_string(op.device or "")
        # An op already placed by an inner scope keeps its place unless devices are merged.
        if not self._merge_devices and op.device:
            return op.device
        if self._ps_tasks and self._ps_device and op.type in self._ps_ops:
            ps = DeviceSpec.from_string(self._ps_device)
            if ps.job and (not current.job or current.job == ps.job):
                ps = DeviceSpec(ps.job, ps.replica, self._ps_strategy(op), ps.device_type, ps.device_index)
            return current.merged_over(ps).to_string()
        return current.merged_over(DeviceSpec.from_string(self._worker_device or "")).to_string()


def replica_device_setter(ps_tasks: int = 0, ps_device: str = "/job:ps", worker_device: str = "/job:worker",
                          merge_devices: bool = True, cluster: Any = None, ps_ops: Any = None,
                          ps_strategy: Any = None) -> Callable[[Operation], str] | None:
    """A device function for `tf.device`: variable ops round-robin over the ps tasks, the rest on the worker.

    With `cluster` (a dict of job name to task addresses, or an object with `as_dict()`), the number of
    ps tasks is the size of the ps job; with no ps tasks it returns None (no placement).
    """
    if cluster is not None:
        spec = cluster.as_dict() if hasattr(cluster, "as_dict") else dict(cluster)
        ps_job = DeviceSpec.from_string(ps_device).job
        if ps_job not in spec or spec[ps_job] is None:
            return None
        ps_tasks = len(spec[ps_job])
    if ps_tasks == 0:
        return None
    if ps_ops is None:
        ps_ops = list(STANDARD_PS_OPS)
    if not merge_devices:
        warnings.warn("DEPRECATION: It is recommended to set merge_devices=true in replica_device_setter",
                      stacklevel=2)
    if ps_strategy is None:
        ps_strategy = _RoundRobinStrategy(ps_tasks)
    if not callable(ps_strategy):
        raise TypeError("ps_strategy must be callable")
    return _ReplicaDeviceChooser(ps_tasks, ps_device, worker_device, merge_devices, ps_ops,
                                 ps_strategy).device_function
