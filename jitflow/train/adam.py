"""`tf.train.AdamOptimizer` with TF1's update (bias corrections folded into the step, "epsilon hat")."""
from __future__ import annotations

from typing import Any

from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.ops import control_flow_ops
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update
from jitflow.variables import Variable


class AdamOptimizer(Optimizer):
    """Adam: lr_t = lr*sqrt(1-beta2^t)/(1-beta1^t); var -= lr_t * m / (sqrt(v) + epsilon).

    beta1^t and beta2^t are the non-slot variables `beta1_power` and `beta2_power`, multiplied by beta1
    and beta2 once per step after the updates.
    """

    def __init__(self, learning_rate: Any = 0.001, beta1: Any = 0.9, beta2: Any = 0.999, epsilon: Any = 1e-8,
                 use_locking: bool = False, name: str = "Adam") -> None:
        super().__init__(use_locking, name)
        self._lr, self._beta1, self._beta2, self._epsilon = learning_rate, beta1, beta2, epsilon
        self._hyper: dict[str, Tensor] = {}

    def _get_beta_accumulators(self) -> tuple[Variable, Variable]:
        g = get_default_graph()
        b1, b2 = self._get_non_slot_variable("beta1_power", g), self._get_non_slot_variable("beta2_power", g)
        assert b1 is not None and b2 is not None
        return b1, b2

    def _create_slots(self, var_list: list[Variable]) -> None:
        first = min(var_list, key=lambda v: v.name)  # TF's choice: stable across graph rebuilds
        self._create_non_slot_variable(self._call_if_callable(self._beta1), "beta1_power", first)
        self._create_non_slot_variable(self._call_if_callable(self._beta2), "beta2_power", first)
        for v in var_list:
            self._zeros_slot(v, "m", self._name)
            self._zeros_slot(v, "v", self._name)

    def _prepare(self) -> None:
        self._hyper = {"lr": self._tensor(self._lr, "learning_rate"), "beta1": self._tensor(self._beta1, "beta1"),
                       "beta2": self._tensor(self._beta2, "beta2"),
                       "epsilon": self._tensor(self._epsilon, "epsilon")}

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        assert m is not None and v is not None
        powers = [convert_to_tensor(p) for p in self._get_beta_accumulators()]
        args = [self._cast_like(t, var) for t in (*powers, *(self._hyper[k] for k in
                                                             ("lr", "beta1", "beta2", "epsilon")))]
        return apply_update("ApplyAdam", [var._ref(), m._ref(), v._ref()], [*args, grad], "ApplyAdam",
                            use_locking=self._use_locking, use_nesterov=False)

    def _finish(self, update_ops: list[Operation], name: str) -> Operation:
        g = get_default_graph()
        with g.control_dependencies(update_ops):
            b1, b2 = self._get_beta_accumulators()
            new_b1 = b1.assign(b1 * self._hyper["beta1"], use_locking=self._use_locking)
            new_b2 = b2.assign(b2 * self._hyper["beta2"], use_locking=self._use_locking)
        return control_flow_ops.group(*update_ops, new_b1, new_b2, name=name)
