"""`tf.train.ExponentialMovingAverage` and `assign_moving_average`, as TF 1.x builds them.

`apply(var_list)` creates one average per variable (or tensor), named `<var>/<ema name>`, initialized to
the variable's initial value (tensors: zeros), and returns one op updating them all:
avg -= (avg - value) * (1 - decay), with decay = min(decay, (1 + n) / (10 + n)) when `num_updates` is
given. Tensors' averages may be zero-debiased (TF's `biased` / `local_step` variables).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import GraphKeys, Operation, Tensor, add_to_collection, name_scope
from jitflow.ops import math_ops as M
from jitflow.ops import state_ops
from jitflow.ops.array_ops import zeros
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.control_flow_ops import group
from jitflow.variables import Variable, global_variables, moving_average_variables, trainable_variables

_FLOATS = (dtypes.float16, dtypes.float32, dtypes.float64)


def _base(t: Any) -> dtypes.DType:
    dt = t.dtype
    return getattr(dt, "base_dtype", dt)


def _slot(primary: Any, initial: Any, name: str) -> Variable:
    """A non-trainable global variable `<primary op name>/<name>`, outside any name scope, on its device."""
    g = primary.graph
    with g.as_default(), g.name_scope(None), (g.device(primary.device) if primary.device else nullcontext()):
        return Variable(initial, trainable=False, name=f"{primary.op.name}/{name}", dtype=_base(primary))


def _zero_debias(avg: Variable, value: Tensor, one_minus_decay: Tensor) -> Tensor:
    """TF's zero-debiased update: a biased average and a step count next to `avg`."""
    g = avg.graph
    with g.as_default(), g.name_scope(None):
        biased = Variable(lambda: zeros(avg.shape.as_list(), _base(avg)), trainable=False,
                          name=f"{avg.op.name}/biased")
        step = Variable(lambda: zeros([], _base(avg)), trainable=False, name=f"{avg.op.name}/local_step")
    new_biased = state_ops.assign_sub(biased, (biased.value() - value) * one_minus_decay)
    new_step = state_ops.assign_add(step, M.cast(1, _base(avg)))
    bias_factor = 1 - M.pow(1.0 - one_minus_decay, new_step)
    return state_ops.assign(avg, new_biased / bias_factor)


def assign_moving_average(variable: Variable, value: Any, decay: Any, zero_debias: bool = True,
                          name: str | None = None) -> Tensor:
    """variable -= (variable - value) * (1 - decay); zero-debiased when `zero_debias` (TF's default here)."""
    with name_scope(name, "AssignMovingAvg"):
        one_minus = M.cast(M.subtract(1.0, convert_to_tensor(decay, name="decay")), _base(variable))
        value = convert_to_tensor(value)
        if zero_debias:
            return _zero_debias(variable, value, one_minus)
        return state_ops.assign_sub(variable, (variable.value() - value) * one_minus)


class ExponentialMovingAverage:
    """Moving averages of variables (for evaluation with averaged weights: `variables_to_restore`)."""

    def __init__(self, decay: Any, num_updates: Any = None, zero_debias: bool = False,
                 name: str = "ExponentialMovingAverage") -> None:
        self._decay = decay
        self._num_updates = num_updates
        self._zero_debias = zero_debias
        self._name = name
        self._averages: dict[Any, Variable] = {}

    @property
    def name(self) -> str:
        return self._name

    def _key(self, var: Any) -> Any:
        return var._ref() if isinstance(var, Variable) else var

    def _create(self, var: Any) -> tuple[Variable, bool]:
        """The average of `var` and whether it is zero-debiased (only tensors' are, as in TF)."""
        if _base(var) not in _FLOATS:
            raise TypeError(f"The variables must be half, float, or double: {var.name}")
        if self._key(var) in self._averages:
            raise ValueError(f"Moving average already computed for: {var.name}")
        g = var.graph
        if isinstance(var, Variable):
            with g.as_default(), g.control_dependencies(None):
                avg = _slot(var, var.initialized_value(), self._name)
            add_to_collection(GraphKeys.MOVING_AVERAGE_VARIABLES, var)
            return avg, False
        with g.as_default(), g.control_dependencies(None):
            avg = _slot(var, lambda: zeros(var.shape.as_list(), _base(var)), self._name)
        return avg, self._zero_debias

    def apply(self, var_list: Any = None) -> Operation:
        """Creates the averages of `var_list` (default: the trainable variables); returns the update op."""
        var_list = list(trainable_variables() if var_list is None else var_list)
        debias = {}
        for var in var_list:
            avg, debias[self._key(var)] = self._create(var)
            self._averages[self._key(var)] = avg
        with name_scope(self._name) as scope:
            decay = convert_to_tensor(self._decay, name="decay")
            if self._num_updates is not None:
                n = M.cast(self._num_updates, dtypes.float32, name="num_updates")
                decay = M.minimum(M.cast(decay, dtypes.float32), (1.0 + n) / (10.0 + n))
            updates = [assign_moving_average(self._averages[self._key(v)], v, decay,
                                             zero_debias=debias[self._key(v)]) for v in var_list]
            return group(*updates, name=scope.rstrip("/") if scope else None)

    def average(self, var: Any) -> Variable | None:
        """The average of `var`, or None if `apply` did not average it."""
        return self._averages.get(self._key(var))

    def average_name(self, var: Any) -> str:
        """The name of `var`'s average (what a Saver stores it under): `<var op name>/<ema name>`."""
        avg = self.average(var)
        return avg.op.name if avg is not None else f"{var.op.name}/{self._name}"

    def variables_to_restore(self, moving_avg_variables: Any = None) -> dict[str, Variable]:
        """A Saver `var_list` that restores each averaged variable from its average's checkpoint entry."""
        if moving_avg_variables is None:
            moving_avg_variables = trainable_variables() + moving_average_variables()
        averaged = {v._ref(): v for v in moving_avg_variables}
        name_map = {self.average_name(v): v for v in averaged.values()}
        for v in global_variables():
            if v._ref() not in averaged and v.op.name not in name_map:
                name_map[v.op.name] = v
        return name_map


