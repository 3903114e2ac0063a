"""`tf.train.AdagradOptimizer`: accum += grad²; var -= lr * grad / sqrt(accum)."""
from __future__ import annotations

from typing import Any

from jitflow.framework.graph import Operation, Tensor
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update
from jitflow.variables import Variable


class AdagradOptimizer(Optimizer):
    """Adagrad: per-coordinate step sizes from the accumulated squared gradients."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1, use_locking: bool = False,
                 name: str = "Adagrad") -> None:
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: {initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._initial_accumulator_value = initial_accumulator_value
        self._learning_rate_tensor: Tensor | None = None

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot_variable(v, "accumulator", self._name, self._initial_accumulator_value)

    def _prepare(self) -> None:
        self._learning_rate_tensor = self._tensor(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        acc = self.get_slot(var, "accumulator")
        assert acc is not None and self._learning_rate_tensor is not None
        lr = self._cast_like(self._learning_rate_tensor, var)
        return apply_update("ApplyAdagrad", [var._ref(), acc._ref()], [lr, grad], "ApplyAdagrad",
                            use_locking=self._use_locking, update_slots=True)
