"""`tf.train.RMSPropOptimizer`, with TF1's update (the mean square starts at 1, epsilon inside the sqrt)."""
from __future__ import annotations

from typing import Any

from jitflow.framework.graph import Operation, Tensor
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update
from jitflow.variables import Variable


class RMSPropOptimizer(Optimizer):
    """RMSProp: ms = decay*ms + (1-decay)*g²; mom = momentum*mom + lr*g/sqrt(ms+eps); var -= mom.

    `centered=True` also tracks the mean gradient mg and divides by sqrt(ms - mg² + eps).
    """

    def __init__(self, learning_rate: Any, decay: Any = 0.9, momentum: Any = 0.0, epsilon: Any = 1e-10,
                 use_locking: bool = False, centered: bool = False, name: str = "RMSProp") -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._decay = decay
        self._momentum = momentum
        self._epsilon = epsilon
        self._centered = centered
        self._hyper: dict[str, Tensor] = {}

    def _create_slots(self, var_list: list[Variable]) -> None:
        # Creation order fixes the names: rms is `w/RMSProp`, then mg (if centered), then momentum.
        for v in var_list:
            self._slot_variable(v, "rms", self._name, 1.0)
            if self._centered:
                self._zeros_slot(v, "mg", self._name)
            self._zeros_slot(v, "momentum", self._name)

    def _prepare(self) -> None:
        self._hyper = {"lr": self._tensor(self._learning_rate, "learning_rate"),
                       "decay": self._tensor(self._decay, "decay"),
                       "momentum": self._tensor(self._momentum, "momentum"),
                       "epsilon": self._tensor(self._epsilon, "epsilon")}

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        hyper = [self._cast_like(self._hyper[k], var) for k in ("lr", "decay", "momentum", "epsilon")]
        rms, mom = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        assert rms is not None and mom is not None
        if self._centered:
            mg = self.get_slot(var, "mg")
            assert mg is not None
            return apply_update("ApplyCenteredRMSProp", [var._ref(), mg._ref(), rms._ref(), mom._ref()],
                                [*hyper, grad], "ApplyCenteredRMSProp", use_locking=self._use_locking)
        return apply_update("ApplyRMSProp", [var._ref(), rms._ref(), mom._ref()], [*hyper, grad],
                            "ApplyRMSProp", use_locking=self._use_locking)
