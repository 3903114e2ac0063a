"""The optimizer update ops (ApplyGradientDescent, ApplyAdam, ...) and their NumPy reference kernels.

Each op updates a variable and its slot variables in one step, with TF's update rules and input order.
The variable and the slots are reference inputs: the kernel reads their current values from the
session (`ctx.variables`) and stores new read-only arrays, like state_ops' Assign. One op per update
keeps the whole rule in one place, so the compiler can fuse it into one kernel.
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import shape_str
from jitflow.ir.formula import Update, UpdateFn
from jitflow.ops.op_util import make_op, out
from jitflow.ops.state_ops import _uninitialized

# Rules are elementwise arithmetic on arrays or symbols alike: the reference kernel runs them on arrays,
# the code generators trace them (`jitflow.ir.formula.Update`).


def _gradient_descent(var: Any, alpha: Any, grad: Any) -> tuple:
    return (var - grad * alpha,)


def _momentum(var: Any, accum: Any, lr: Any, grad: Any, momentum: Any) -> tuple:
    accum = accum * momentum + grad
    return var - accum * lr, accum


def _nesterov_momentum(var: Any, accum: Any, lr: Any, grad: Any, momentum: Any) -> tuple:
    accum = accum * momentum + grad
    return var - (grad * lr + accum * momentum * lr), accum


def _adam(var: Any, m: Any, v: Any, beta1_power: Any, beta2_power: Any, lr: Any, beta1: Any, beta2: Any,
          epsilon: Any, grad: Any) -> tuple:
    # TF1's "epsilon hat" form: the bias corrections are folded into the step size.
    alpha = lr * np.sqrt(1 - beta2_power) / (1 - beta1_power)
    m = m + (grad - m) * (1 - beta1)
    v = v + (grad * grad - v) * (1 - beta2)
    return var - (m * alpha) / (np.sqrt(v) + epsilon), m, v


def _nesterov_adam(var: Any, m: Any, v: Any, beta1_power: Any, beta2_power: Any, lr: Any, beta1: Any,
                   beta2: Any, epsilon: Any, grad: Any) -> tuple:
    alpha = lr * np.sqrt(1 - beta2_power) / (1 - beta1_power)
    m = m + (grad - m) * (1 - beta1)
    v = v + (grad * grad - v) * (1 - beta2)
    return var - ((grad * (1 - beta1) + beta1 * m) * alpha) / (np.sqrt(v) + epsilon), m, v


def _adagrad(var: Any, accum: Any, lr: Any, grad: Any) -> tuple:
    accum = accum + grad * grad
    return var - grad * lr / np.sqrt(accum), accum


def _adagrad_fixed_accum(var: Any, accum: Any, lr: Any, grad: Any) -> tuple:
    return var - grad * lr / np.sqrt(accum), accum


def _rmsprop(var: Any, ms: Any, mom: Any, lr: Any, rho: Any, momentum: Any, epsilon: Any, grad: Any) -> tuple:
    ms = ms + (grad * grad - ms) * (1 - rho)
    mom = mom * momentum + (grad * lr) / np.sqrt(ms + epsilon)
    return var - mom, ms, mom


def _centered_rmsprop(var: Any, mg: Any, ms: Any, mom: Any, lr: Any, rho: Any, momentum: Any, epsilon: Any,
                      grad: Any) -> tuple:
    ms = ms + (grad * grad - ms) * (1 - rho)
    mg = mg + (grad - mg) * (1 - rho)
    mom = mom * momentum + (grad * lr) / np.sqrt(ms - mg * mg + epsilon)
    return var - mom, mg, ms, mom


UPDATES: dict[str, Update] = {
    "ApplyGradientDescent": Update(("var",), ("alpha", "grad"), _gradient_descent),
    "ApplyMomentum": Update(("var", "accum"), ("lr", "grad", "momentum"), _momentum,
                             (("use_nesterov", True, _nesterov_momentum),)),
    "ApplyAdam": Update(("var", "m", "v"), ("beta1_power", "beta2_power", "lr", "beta1", "beta2", "epsilon",
                                             "grad"), _adam, (("use_nesterov", True, _nesterov_adam),)),
    "ApplyAdagrad": Update(("var", "accum"), ("lr", "grad"), _adagrad,
                            (("update_slots", False, _adagrad_fixed_accum),)),
    "ApplyRMSProp": Update(("var", "ms", "mom"), ("lr", "rho", "momentum", "epsilon", "grad"), _rmsprop),
    "ApplyCenteredRMSProp": Update(("var", "mg", "ms", "mom"), ("lr", "rho", "momentum", "epsilon", "grad"),
                                    _centered_rmsprop),
}


def update_rule(op: Operation) -> UpdateFn:
    """The elementwise update rule an Apply op runs, chosen by its attrs (e.g. use_nesterov)."""
    return UPDATES[op.type].chosen(lambda name, default: op.attrs.get(name, default))


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


# Per op: (variable names, signature, rule). Built on an op's first run; the hot path only indexes it.
_Spec = tuple[tuple[str, ...], Update, UpdateFn]
_SPECS: weakref.WeakKeyDictionary[Operation, _Spec] = weakref.WeakKeyDictionary()


def _spec(op: Operation) -> _Spec:
    spec = _SPECS.get(op)
    if spec is None:
        upd = UPDATES[op.type]
        spec = _SPECS[op] = (tuple(op.inputs[i].op.name for i in range(len(upd.refs))), upd, update_rule(op))
    return spec


def _checked_args(op: Operation, upd: Update, var: np.ndarray, args: list) -> list:
    """The non-reference inputs, validated: grad of var's shape, scalars, all in var's dtype."""
    res = []
    for name, v in zip(upd.args, args):
        if name == "grad":
            if np.shape(v) != var.shape:
                raise InvalidArgumentError(op.node_def, op, f"var and grad do not have the same shape"
                                                            f"{shape_str(var.shape)} {shape_str(np.shape(v))}")
            res.append(np.asarray(v, dtype=var.dtype))
        elif np.ndim(v) != 0:
            raise InvalidArgumentError(op.node_def, op, f"{name} is not a scalar: {shape_str(np.shape(v))}")
        else:
            res.append(np.asarray(v, dtype=var.dtype))  # scalars compute in the variable's precision
    return res


def _well_formed(args: list, upd: Update, var: np.ndarray) -> bool:
    """True if the inputs are what the optimizers build: arrays of var's dtype, scalars and a var-shaped grad."""
    for name, a in zip(upd.args, args):
        if not isinstance(a, (np.ndarray, np.generic)) or a.dtype != var.dtype:
            return False
        if a.shape != (var.shape if name == "grad" else ()):
            return False
    return True


def _kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    names, upd, rule = _spec(op)
    store = ctx.variables
    values: list[Any] = []
    for vn in names:
        cur = store.get(vn)
        if cur is None:
            raise _uninitialized(op, vn)
        values.append(cur)
    var = values[0]
    for name, v in zip(upd.refs[1:], values[1:]):
        if v.shape != var.shape:
            raise InvalidArgumentError(op.node_def, op, f"var and {name} do not have the same shape"
                                                        f"{shape_str(var.shape)} {shape_str(v.shape)}")
    args = ins[len(names):]
    if not _well_formed(args, upd, var):
        args = _checked_args(op, upd, var, args)
    new = rule(*values, *args)
    for vn, arr in zip(names, new):
        if type(arr) is not np.ndarray or arr.dtype != var.dtype:  # scalar math gives NumPy scalars
            arr = np.array(arr, dtype=var.dtype)
        arr.flags.writeable = False  # session values are read-only; readers keep what they got
        store[vn] = arr
    return store[names[0]]


def register_update(op_type: str, update: Update) -> None:
    """Registers the update op `op_type` with its rule: one formula for the kernel and the compiler."""
    UPDATES[op_type] = update
    registry.register_op(op_type, _infer, _kernel, registry.STATEFUL, not_differentiable=True,
                         ref_inputs=tuple(range(len(update.refs))), lowering=update)


for _t, _u in list(UPDATES.items()):
    register_update(_t, _u)


def apply_update(op_type: str, refs: Sequence[Tensor], args: Sequence[Tensor], name: str,
                 **attrs: Any) -> Operation:
    """Creates an `op_type` update of the variable handles `refs` (var first) with inputs `args`."""
    attrs = {"T": refs[0].dtype, "use_locking": False, **attrs}
    return out(make_op(op_type, [*refs, *args], attrs, name=name)).op
