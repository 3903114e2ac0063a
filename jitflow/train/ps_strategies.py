"""Placement strategies for `replica_device_setter`'s `ps_strategy`: balance variables over ps tasks by load."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jitflow.framework.graph import Operation

_VARIABLE_OPS = ("Variable", "VariableV2", "VarHandleOp", "AutoReloadVariable")


def byte_size_load_fn(op: Operation) -> int:
    """The load of a variable op: the size in bytes of the value it holds.

    ValueError naming the op when its shape is not fully known (its size cannot be weighed).
    """
    shape = op.outputs[0].shape if op.outputs else None
    if op.type in _VARIABLE_OPS and "shape" in op.attrs:
        from jitflow.framework.tensor_shape import as_shape

        attr_shape = as_shape(op.attrs["shape"])
        if attr_shape.is_fully_defined():
            shape = attr_shape
    if shape is None or not shape.is_fully_defined():
        raise ValueError(f"byte_size_load_fn: op '{op.name}' ({op.type}) has a shape that is not fully "
                         f"defined: {shape}")
    dtype = op.attrs["dtype"] if "dtype" in op.attrs else op.outputs[0].dtype
    from jitflow import dtypes

    return int((shape.num_elements() or 0) * dtypes.as_dtype(dtype).size)  # fully defined: checked above


class GreedyLoadBalancingStrategy:
    """Places each op on the ps task with the least load so far, then adds `load_fn(op)` to that task.

    With `byte_size_load_fn` (the default), variables spread so that every ps task holds about as many
    bytes; ties go to the lowest task index.
    """

    def __init__(self, num_tasks: int, load_fn: Callable[[Operation], Any] = byte_size_load_fn) -> None:
        if num_tasks <= 0:
            raise ValueError(f"GreedyLoadBalancingStrategy: num_tasks must be positive, got {num_tasks}")
        self._num_tasks = num_tasks
        self._load_fn = load_fn
        self._ps_loads = [0] * num_tasks

    def __call__(self, op: Operation) -> int:
        """The ps task index for `op`."""
        task = min(range(self._num_tasks), key=self._ps_loads.__getitem__)
        self._ps_loads[task] += self._load_fn(op)
        return task

    @property
    def loads(self) -> list[Any]:
        """The load placed on each ps task so far."""
        return list(self._ps_loads)
