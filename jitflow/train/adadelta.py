"""`tf.train.AdadeltaOptimizer` (Zeiler 2012) and its update op `ApplyAdadelta`, as TF defines them."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.framework.graph import Operation, Tensor
from jitflow.ir.formula import Update
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update, register_update
from jitflow.variables import Variable


def _adadelta(var: Any, accum: Any, accum_update: Any, lr: Any, rho: Any, epsilon: Any, grad: Any) -> tuple:
    accum = accum * rho + grad * grad * (1 - rho)
    update = np.sqrt(accum_update + epsilon) / np.sqrt(accum + epsilon) * grad
    accum_update = accum_update * rho + update * update * (1 - rho)
    return var - update * lr, accum, accum_update


register_update("ApplyAdadelta", Update(("var", "accum", "accum_update"), ("lr", "rho", "epsilon", "grad"),
                                        _adadelta))


class AdadeltaOptimizer(Optimizer):
    """Adadelta: steps scaled by the ratio of the RMS of past updates to the RMS of past gradients
    (slots `accum` and `accum_update`)."""

    def __init__(self, learning_rate: Any = 0.001, rho: Any = 0.95, epsilon: Any = 1e-8, use_locking: bool = False,
                 name: str = "Adadelta") -> None:
        super().__init__(use_locking, name)
        self._lr, self._rho, self._epsilon = learning_rate, rho, epsilon
        self._tensors: list[Tensor] = []

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._zeros_slot(v, "accum", self._name)
            self._zeros_slot(v, "accum_update", self._name)

    def _prepare(self) -> None:
        self._tensors = [self._tensor(self._lr, "lr"), self._tensor(self._rho, "rho"),
                         self._tensor(self._epsilon, "epsilon")]

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        accum, accum_update = self.get_slot(var, "accum"), self.get_slot(var, "accum_update")
        assert accum is not None and accum_update is not None
        scalars = [self._cast_like(t, var) for t in self._tensors]
        return apply_update("ApplyAdadelta", [var._ref(), accum._ref(), accum_update._ref()], [*scalars, grad],
                            "ApplyAdadelta", use_locking=self._use_locking)
