"""`tf.train.GradientDescentOptimizer`: var -= learning_rate * grad."""
from __future__ import annotations

from typing import Any

from jitflow.framework.graph import Operation, Tensor
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update
from jitflow.variables import Variable


class GradientDescentOptimizer(Optimizer):
    """Plain gradient descent."""

    def __init__(self, learning_rate: Any, use_locking: bool = False, name: str = "GradientDescent") -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._learning_rate_tensor: Tensor | None = None

    def _prepare(self) -> None:
        self._learning_rate_tensor = self._tensor(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        assert self._learning_rate_tensor is not None
        lr = self._cast_like(self._learning_rate_tensor, var)
        return apply_update("ApplyGradientDescent", [var._ref()], [lr, grad], "ApplyGradientDescent",
                            use_locking=self._use_locking)
