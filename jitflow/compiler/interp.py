"""What interpreted steps share: TF errors raised from reference kernels.

The interpreted steps themselves are built by `compiler/plan.py` (one per op, calling the op's NumPy
reference kernel); `op_error` turns a kernel's failure into the TF error that names the op and its
input shapes, for them and for every compiled step that falls back to them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import errors
from jitflow.framework.dead_value import DEAD
from jitflow.framework.graph import Operation
from jitflow.framework.tensor_shape import shape_str


def describe(op: Operation, inputs: list[Any] | None = None) -> str:
    """'[[node name (Type) with input shapes: [2,3], [3] defined at file:line]]' for error messages."""
    shapes = ""
    if inputs is not None:
        shapes = " with input shapes: " + ", ".join(
            shape_str(np.shape(x)) if x is not None and x is not DEAD else "<ref>" for x in inputs)
    return f"\n\t [[node {op.name} ({op.type}){shapes} defined at {op.defined_at()} ]]"


def op_error(op: Operation, inputs: list[Any] | None, exc: BaseException) -> errors.OpError:
    """Converts an exception raised by `op`'s kernel into a TF error that names the op and its inputs."""
    if isinstance(exc, errors.OpError):
        msg = exc.message
        if "[[node" not in msg:
            msg += describe(op, inputs)
        return type(exc)(op.node_def, op, msg)
    if isinstance(exc, MemoryError):
        return errors.ResourceExhaustedError(op.node_def, op, f"OOM when running {op.name}"
                                             + describe(op, inputs))
    return errors.InvalidArgumentError(op.node_def, op, f"{type(exc).__name__}: {exc}" + describe(op, inputs))
