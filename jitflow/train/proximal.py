"""`tf.train.ProximalGradientDescentOptimizer` and `ProximalAdagradOptimizer` (FOBOS with l1 / l2), with
TF's update ops `ApplyProximalGradientDescent` and `ApplyProximalAdagrad`."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.framework.graph import Operation, Tensor
from jitflow.ir import expr as E
from jitflow.ir.formula import Update
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update, register_update
from jitflow.variables import Variable


def _prox(p: Any, step: Any, l1: Any, l2: Any) -> Any:
    """sign(p) * max(|p| - step * l1, 0) / (1 + step * l2): for l1 = 0 exactly TF's p / (1 + step * l2)."""
    t = step * l1
    shrunk = E.where(p > t, p - t, E.where(p < -t, p + t, p * 0))
    return shrunk / (step * l2 + 1)


def _proximal_gd(var: Any, alpha: Any, l1: Any, l2: Any, grad: Any) -> tuple:
    return (_prox(var - grad * alpha, alpha, l1, l2),)


def _proximal_adagrad(var: Any, accum: Any, lr: Any, l1: Any, l2: Any, grad: Any) -> tuple:
    accum = accum + grad * grad
    step = lr / np.sqrt(accum)
    return _prox(var - grad * step, step, l1, l2), accum


register_update("ApplyProximalGradientDescent", Update(("var",), ("alpha", "l1", "l2", "grad"), _proximal_gd))
register_update("ApplyProximalAdagrad", Update(("var", "accum"), ("lr", "l1", "l2", "grad"), _proximal_adagrad))


class _Proximal(Optimizer):
    def __init__(self, learning_rate: Any, l1: Any, l2: Any, use_locking: bool, name: str) -> None:
        super().__init__(use_locking, name)
        self._lr, self._l1, self._l2 = learning_rate, l1, l2
        self._tensors: list[Tensor] = []

    def _prepare(self) -> None:
        self._tensors = [self._tensor(self._lr, "learning_rate"),
                         self._tensor(self._l1, "l1_regularization_strength"),
                         self._tensor(self._l2, "l2_regularization_strength")]

    def _scalars(self, var: Variable) -> list[Tensor]:
        return [self._cast_like(t, var) for t in self._tensors]


class ProximalGradientDescentOptimizer(_Proximal):
    """Gradient descent followed by the proximal step of l1 (soft threshold) and l2 (shrink)."""

    def __init__(self, learning_rate: Any, l1_regularization_strength: Any = 0.0,
                 l2_regularization_strength: Any = 0.0, use_locking: bool = False,
                 name: str = "ProximalGradientDescent") -> None:
        super().__init__(learning_rate, l1_regularization_strength, l2_regularization_strength, use_locking, name)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return apply_update("ApplyProximalGradientDescent", [var._ref()], [*self._scalars(var), grad],
                            "ApplyProximalGradientDescent", use_locking=self._use_locking)


class ProximalAdagradOptimizer(_Proximal):
    """Adagrad step sizes with the proximal l1 / l2 step (slot `accumulator`)."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1,
                 l1_regularization_strength: Any = 0.0, l2_regularization_strength: Any = 0.0,
                 use_locking: bool = False, name: str = "ProximalAdagrad") -> None:
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: {initial_accumulator_value}")
        super().__init__(learning_rate, l1_regularization_strength, l2_regularization_strength, use_locking, name)
        self._initial_accumulator_value = initial_accumulator_value

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot_variable(v, "accumulator", self._name, self._initial_accumulator_value)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        acc = self.get_slot(var, "accumulator")
        assert acc is not None
        return apply_update("ApplyProximalAdagrad", [var._ref(), acc._ref()], [*self._scalars(var), grad],
                            "ApplyProximalAdagrad", use_locking=self._use_locking)
