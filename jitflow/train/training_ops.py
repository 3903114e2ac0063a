"""The optimizer update ops (ApplyGradientDescent, ApplyAdam, ...) and their NumPy reference kernels.

Each op updates a variable and its slot variables in one step, with TF's update rules and input order.
The variable and the slots are reference inputs: the kernel reads their current values from the
session (`ctx.variables`) and stores new read-only arrays, like state_ops' Assign. One op per update
keeps the whole rule in one place, so the compiler can fuse it into one kernel.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import shape_str
from jitflow.ops.op_util import make_op, out
from jitflow.ops.state_ops import _uninitialized

# fn(attrs, variables..., scalars..., grad) -> new values of the variables (var first, then the slots)
UpdateFn = Callable[..., Sequence[np.ndarray]]


@dataclass(frozen=True)
class _Update:
    """The signature of one Apply op: its variable inputs, then its other inputs, and the update rule."""

    refs: tuple[str, ...]  # var and slot names, in input order, first
    args: tuple[str, ...]  # then the scalar hyperparameters and "grad", in TF's input order
    fn: UpdateFn  # fn(attrs, *values in input order) -> new values of the refs


def _gradient_descent(attrs: dict, var: np.ndarray, alpha: Any, grad: np.ndarray) -> tuple:
    return (var - grad * alpha,)


def _momentum(attrs: dict, var: np.ndarray, accum: np.ndarray, lr: Any, grad: np.ndarray,
              momentum: Any) -> tuple:
    accum = accum * momentum + grad
    if attrs.get("use_nesterov"):
        return var - (grad * lr + accum * momentum * lr), accum
    return var - accum * lr, accum


def _adam(attrs: dict, var: np.ndarray, m: np.ndarray, v: np.ndarray, beta1_power: Any, beta2_power: Any,
          lr: Any, beta1: Any, beta2: Any, epsilon: Any, grad: np.ndarray) -> tuple:
    one = var.dtype.type(1)
    # TF1's "epsilon hat" form: the bias corrections are folded into the step size.
    alpha = lr * np.sqrt(one - beta2_power) / (one - beta1_power)
    m = m + (grad - m) * (one - beta1)
    v = v + (grad * grad - v) * (one - beta2)
    step = (grad * (one - beta1) + beta1 * m) if attrs.get("use_nesterov") else m
    return var - (step * alpha) / (np.sqrt(v) + epsilon), m, v


def _adagrad(attrs: dict, var: np.ndarray, accum: np.ndarray, lr: Any, grad: np.ndarray) -> tuple:
    if attrs.get("update_slots", True):
        accum = accum + grad * grad
    return var - grad * lr / np.sqrt(accum), accum


def _rmsprop(attrs: dict, var: np.ndarray, ms: np.ndarray, mom: np.ndarray, lr: Any, rho: Any,
             momentum: Any, epsilon: Any, grad: np.ndarray) -> tuple:
    ms = ms + (grad * grad - ms) * (1 - rho)
    mom = mom * momentum + (grad * lr) / np.sqrt(ms + epsilon)
    return var - mom, ms, mom


def _centered_rmsprop(attrs: dict, var: np.ndarray, mg: np.ndarray, ms: np.ndarray, mom: np.ndarray,
                      lr: Any, rho: Any, momentum: Any, epsilon: Any, grad: np.ndarray) -> tuple:
    ms = ms + (grad * grad - ms) * (1 - rho)
    mg = mg + (grad - mg) * (1 - rho)
    mom = mom * momentum + (grad * lr) / np.sqrt(ms - mg * mg + epsilon)
    return var - mom, mg, ms, mom


UPDATES: dict[str, _Update] = {
    "ApplyGradientDescent": _Update(("var",), ("alpha", "grad"), _gradient_descent),
    "ApplyMomentum": _Update(("var", "accum"), ("lr", "grad", "momentum"), _momentum),
    "ApplyAdam": _Update(("var", "m", "v"), ("beta1_power", "beta2_power", "lr", "beta1", "beta2", "epsilon",
                                             "grad"), _adam),
    "ApplyAdagrad": _Update(("var", "accum"), ("lr", "grad"), _adagrad),
    "ApplyRMSProp": _Update(("var", "ms", "mom"), ("lr", "rho", "momentum", "epsilon", "grad"), _rmsprop),
    "ApplyCenteredRMSProp": _Update(("var", "mg", "ms", "mom"), ("lr", "rho", "momentum", "epsilon", "grad"),
                                    _centered_rmsprop),
}


def _infer(op: Operation) -> list:
    upd = UPDATES[op.type]
    var = op.inputs[0]
    for name, t in zip(upd.refs + upd.args, op.inputs):
        if t.dtype is not var.dtype:
            raise TypeError(f"Input '{name}' of '{op.type}' Op has type {t.dtype.name} that does not match "
                            f"type {var.dtype.name} of argument 'var'.")
        if name in upd.args and name != "grad":
            if t.shape.ndims not in (None, 0):
                raise ValueError(f"Shape must be rank 0 but is rank {t.shape.ndims} for '{op.name}' "
                                 f"(op: '{op.type}'): {name} is not a scalar")
        elif not var.shape.is_compatible_with(t.shape):
            raise ValueError(f"Shapes must be equal rank, but are {var.shape} and {t.shape} for '{op.name}' "
                             f"(op: '{op.type}'): var and {name} do not have the same shape")
    return [(var.dtype, var.shape)]


def _kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    upd = UPDATES[op.type]
    var_names = [op.inputs[i].op.name for i in range(len(upd.refs))]
    values: list[Any] = []
    for vn in var_names:
        try:
            values.append(ctx.variables[vn])
        except KeyError:
            raise _uninitialized(op, vn) from None
    var = values[0]
    for name, v in zip(upd.refs[1:], values[1:]):
        if v.shape != var.shape:
            raise InvalidArgumentError(op.node_def, op, f"var and {name} do not have the same shape"
                                                        f"{shape_str(var.shape)} {shape_str(v.shape)}")
    for name, v in zip(upd.args, ins[len(upd.refs):]):
        if name == "grad":
            if np.shape(v) != var.shape:
                raise InvalidArgumentError(op.node_def, op, f"var and grad do not have the same shape"
                                                            f"{shape_str(var.shape)} {shape_str(np.shape(v))}")
            values.append(np.asarray(v, dtype=var.dtype))
        elif np.ndim(v) != 0:
            raise InvalidArgumentError(op.node_def, op, f"{name} is not a scalar: {shape_str(np.shape(v))}")
        else:
            values.append(var.dtype.type(v))  # scalars compute in the variable's precision
    new = upd.fn(op.attrs, *values)
    for vn, arr in zip(var_names, new):
        arr = np.asarray(arr, dtype=var.dtype)
        arr.flags.writeable = False  # session values are read-only; readers keep what they got
        ctx.variables[vn] = arr
    return ctx.variables[var_names[0]]


for _t, _u in UPDATES.items():
    registry.register_op(_t, _infer, _kernel, registry.STATEFUL, not_differentiable=True,
                         ref_inputs=tuple(range(len(_u.refs))))


def apply_update(op_type: str, refs: Sequence[Tensor], args: Sequence[Tensor], name: str,
                 **attrs: Any) -> Operation:
    """Creates an `op_type` update of the variable handles `refs` (var first) with inputs `args`."""
    attrs = {"T": refs[0].dtype, "use_locking": False, **attrs}
    return out(make_op(op_type, [*refs, *args], attrs, name=name)).op
