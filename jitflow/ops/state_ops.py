"""Variable state ops: VariableV2, Assign, AssignAdd, AssignSub, IsVariableInitialized.

Variable values live in the session (`ctx.variables`, op name -> array). Stored arrays are read-only and
replaced, never mutated, by the interpreter, so a value handed out earlier in a run never changes under
its reader.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import FailedPreconditionError, InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import TensorShape, shape_str
from jitflow.ops.op_util import make_op, out


def _uninitialized(op: Operation, var_name: str) -> FailedPreconditionError:
    return FailedPreconditionError(op.node_def, op, f"Attempting to use uninitialized value {var_name}\n"
                                                    f"\t [[node {op.name} (defined at {op.defined_at()}) ]]")


def _variable_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    try:
        return ctx.variables[op.name]
    except KeyError:
        raise _uninitialized(op, op.name) from None


registry.register_op("VariableV2", lambda op: [(op.attrs["dtype"], op.attrs["shape"])], _variable_kernel,
                     registry.STATEFUL, structural=True)


def variable_op(shape: Any, dtype: dtypes.DType, name: str) -> Tensor:
    """The VariableV2 op: a handle to a session-owned value."""
    from jitflow.framework.graph import get_default_graph
    from jitflow.framework.tensor_shape import as_shape

    return out(get_default_graph().create_op("VariableV2", [], {"shape": as_shape(shape), "dtype": dtype,
                                                                "container": "", "shared_name": ""},
                                             name=name))


def store(ctx: Any, name: str, value: np.ndarray) -> np.ndarray:
    """Stores a private read-only copy of `value` as the variable's new value and returns it."""
    v = np.array(value, copy=True)
    v.flags.writeable = False
    ctx.variables[name] = v
    return v


def _assign_infer(op: Operation) -> list:
    ref, val = op.inputs
    if op.attrs.get("validate_shape", True) and not ref.shape.is_compatible_with(val.shape):
        raise ValueError(f"Dimensions must be equal, but are {ref.shape} and {val.shape} for '{op.name}' "
                         f"(op: 'Assign') with input shapes: {shape_str(ref.shape.as_tuple())}, "
                         f"{shape_str(val.shape.as_tuple())}.")
    shape = ref.shape if op.attrs.get("validate_shape", True) else val.shape
    return [(ref.dtype, shape.merge_with(val.shape) if op.attrs.get("validate_shape", True) else shape)]


def _assign_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    var = op.inputs[0].op
    value = np.asarray(ins[1], dtype=op.inputs[0].dtype.np)
    if op.attrs.get("validate_shape", True):
        want = var.attrs["shape"]
        if not want.is_compatible_with(value.shape):
            raise InvalidArgumentError(op.node_def, op, f"Assign requires shapes of both tensors to match. "
                                                        f"lhs shape= {shape_str(want.as_tuple())} rhs shape= "
                                                        f"{shape_str(value.shape)}")
    return store(ctx, var.name, value)


def _assign_update_kernel(sign: int):  # type: ignore[no-untyped-def]
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        var = op.inputs[0].op
        try:
            cur = ctx.variables[var.name]
        except KeyError:
            raise _uninitialized(op, var.name) from None
        delta = ins[1]
        if np.shape(delta) != cur.shape:
            raise InvalidArgumentError(op.node_def, op, f"Must have the same shape: {shape_str(cur.shape)} "
                                                        f"and {shape_str(np.shape(delta))}")
        new = cur + delta if sign > 0 else cur - delta
        new = np.asarray(new, dtype=cur.dtype)
        new.flags.writeable = False
        ctx.variables[var.name] = new
        return new

    return kernel


def _update_infer(op: Operation) -> list:
    ref, val = op.inputs
    if not ref.shape.is_compatible_with(val.shape):
        raise ValueError(f"Shapes {ref.shape} and {val.shape} are incompatible for '{op.name}' "
                         f"(op: '{op.type}')")
    return [(ref.dtype, ref.shape)]


registry.register_op("Assign", _assign_infer, _assign_kernel, registry.STATEFUL, ref_inputs=(0,),
                     not_differentiable=True)
registry.register_op("AssignAdd", _update_infer, _assign_update_kernel(1), registry.STATEFUL,
                     ref_inputs=(0,), not_differentiable=True)
registry.register_op("AssignSub", _update_infer, _assign_update_kernel(-1), registry.STATEFUL,
                     ref_inputs=(0,), not_differentiable=True)
registry.register_op("IsVariableInitialized", lambda op: [(dtypes.bool, TensorShape([]))],
                     lambda ctx, op, ins: np.array(op.inputs[0].op.name in ctx.variables),
                     registry.STATEFUL, ref_inputs=(0,), not_differentiable=True, structural=True)


def _ref(x: Any) -> Tensor:
    """The variable-handle tensor of a Variable (or a VariableV2 output tensor)."""
    r = getattr(x, "_variable", None)
    if r is None and isinstance(x, Tensor) and x.op.type == "VariableV2":
        r = x
    if r is None:
        raise TypeError(f"'{x}' is not a Variable: it cannot be assigned to")
    return r


def _value_for(ref: Tensor, value: Any, op_type: str) -> Tensor:
    from jitflow.ops.op_util import same_dtype_inputs

    # Python values take the variable's dtype; tensors must already match.
    _, v = same_dtype_inputs(op_type, [ref, value], ("ref", "value"))
    return v


def assign(ref: Any, value: Any, validate_shape: Any = None, use_locking: Any = None,
           name: str | None = None) -> Tensor:
    """Stores `value` in the variable `ref`; returns the new value."""
    r = _ref(ref)
    v = _value_for(r, value, "Assign")
    vs = True if validate_shape is None else bool(validate_shape)
    return out(make_op("Assign", [r, v], {"validate_shape": vs, "use_locking": bool(use_locking),
                                          "T": r.dtype}, name=name or "Assign"))


def assign_add(ref: Any, value: Any, use_locking: Any = None, name: str | None = None) -> Tensor:
    """Adds `value` to the variable `ref`; returns the new value."""
    r = _ref(ref)
    return out(make_op("AssignAdd", [r, _value_for(r, value, "AssignAdd")], {"T": r.dtype},
                       name=name or "AssignAdd"))


def assign_sub(ref: Any, value: Any, use_locking: Any = None, name: str | None = None) -> Tensor:
    """Subtracts `value` from the variable `ref`; returns the new value."""
    r = _ref(ref)
    return out(make_op("AssignSub", [r, _value_for(r, value, "AssignSub")], {"T": r.dtype},
                       name=name or "AssignSub"))


def is_variable_initialized(ref: Any, name: str | None = None) -> Tensor:
    r = _ref(ref)
    return out(make_op("IsVariableInitialized", [r], {"dtype": r.dtype},
                       name=name or "IsVariableInitialized"))
