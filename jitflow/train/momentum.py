"""`tf.train.MomentumOptimizer`: accum = momentum * accum + grad; var -= lr * accum (or Nesterov's step)."""
from __future__ import annotations

from typing import Any

from jitflow.framework.graph import Operation, Tensor
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update
from jitflow.variables import Variable


class MomentumOptimizer(Optimizer):
    """Gradient descent with momentum; `use_nesterov=True` applies the Nesterov variant."""

    def __init__(self, learning_rate: Any, momentum: Any, use_locking: bool = False, name: str = "Momentum",
                 use_nesterov: bool = False) -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._momentum = momentum
        self._use_nesterov = use_nesterov
        self._hyper: dict[str, Tensor] = {}

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._zeros_slot(v, "momentum", self._name)

    def _prepare(self) -> None:
        self._hyper = {"lr": self._tensor(self._learning_rate, "learning_rate"),
                       "momentum": self._tensor(self._momentum, "momentum")}

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        accum = self.get_slot(var, "momentum")
        assert accum is not None
        lr, mom = (self._cast_like(self._hyper[k], var) for k in ("lr", "momentum"))
        return apply_update("ApplyMomentum", [var._ref(), accum._ref()], [lr, grad, mom], "ApplyMomentum",
                            use_locking=self._use_locking, use_nesterov=self._use_nesterov)
