"""`tf.train.FtrlOptimizer` (FTRL-Proximal, McMahan et al. 2013) and TF's `ApplyFtrl` / `ApplyFtrlV2` ops."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.framework.graph import Operation, Tensor
from jitflow.ir import expr as E
from jitflow.ir.formula import Update
from jitflow.ops import math_ops as M
from jitflow.train.optimizer import Optimizer
from jitflow.train.training_ops import apply_update, register_update
from jitflow.variables import Variable


def _root(x: Any, lr_power: Any) -> Any:
    """x ** -lr_power; TF takes sqrt for the default power -0.5."""
    return E.where(lr_power == -0.5, np.sqrt(x), x ** -lr_power)


def _ftrl_step(var: Any, accum: Any, linear: Any, grad: Any, shrunk_grad: Any, lr: Any, l1: Any, l2: Any,
               lr_power: Any) -> tuple:
    new_accum = accum + grad * grad
    linear = linear + shrunk_grad - (_root(new_accum, lr_power) - _root(accum, lr_power)) / lr * var
    quadratic = _root(new_accum, lr_power) / lr + l2 * 2
    var = E.where(linear > l1, (l1 - linear) / quadratic, E.where(linear < -l1, (-l1 - linear) / quadratic, var * 0))
    return var, new_accum, linear


def _ftrl(var: Any, accum: Any, linear: Any, grad: Any, lr: Any, l1: Any, l2: Any, lr_power: Any) -> tuple:
    return _ftrl_step(var, accum, linear, grad, grad, lr, l1, l2, lr_power)


def _ftrl_v2(var: Any, accum: Any, linear: Any, grad: Any, lr: Any, l1: Any, l2: Any, l2_shrinkage: Any,
             lr_power: Any) -> tuple:
    # the shrinkage term enters the linear term only; the accumulator keeps the plain gradient
    return _ftrl_step(var, accum, linear, grad, grad + var * l2_shrinkage * 2, lr, l1, l2, lr_power)


register_update("ApplyFtrl", Update(("var", "accum", "linear"), ("grad", "lr", "l1", "l2", "lr_power"), _ftrl))
register_update("ApplyFtrlV2", Update(("var", "accum", "linear"),
                                      ("grad", "lr", "l1", "l2", "l2_shrinkage", "lr_power"), _ftrl_v2))


def _check_arguments(initial_accumulator_value: float, learning_rate_power: float, l1: float, l2: float,
                     shrinkage: float) -> None:
    """TF's ValueErrors for out-of-range hyperparameters."""
    if learning_rate_power > 0.0:
        raise ValueError(f"learning_rate_power ({learning_rate_power}) must be less than or equal to 0.0")
    for what, value in (("initial_accumulator_value", initial_accumulator_value),
                        ("l1_regularization_strength", l1), ("l2_regularization_strength", l2),
                        ("l2_shrinkage_regularization_strength", shrinkage)):
        if value < 0.0:
            raise ValueError(f"{what} ({value}) must be positive or 0.0")


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal with TF's arguments and slots (`accum`, `linear`)."""

    def __init__(self, learning_rate: Any, learning_rate_power: float = -0.5, initial_accumulator_value: float = 0.1,
                 l1_regularization_strength: float = 0.0, l2_regularization_strength: float = 0.0,
                 use_locking: bool = False, name: str = "Ftrl", accum_name: str | None = None,
                 linear_name: str | None = None, l2_shrinkage_regularization_strength: float = 0.0,
                 beta: float | None = None) -> None:
        super().__init__(use_locking, name)
        _check_arguments(initial_accumulator_value, learning_rate_power, l1_regularization_strength,
                         l2_regularization_strength, l2_shrinkage_regularization_strength)
        self._lr, self._lr_power, self._init = learning_rate, learning_rate_power, initial_accumulator_value
        self._l1, self._l2 = l1_regularization_strength, l2_regularization_strength
        self._shrinkage, self._beta = l2_shrinkage_regularization_strength, 0.0 if beta is None else beta
        self._accum_name, self._linear_name = accum_name, linear_name
        self._tensors: dict[str, Tensor] = {}

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._slot_variable(v, "accum", self._accum_name or self._name, self._init)
            self._zeros_slot(v, "linear", self._linear_name or self._name)

    def _prepare(self) -> None:
        t = self._tensors = {"lr": self._tensor(self._lr, "learning_rate"),
                             "l1": self._tensor(self._l1, "l1_regularization_strength"),
                             "l2": self._tensor(self._l2, "l2_regularization_strength"),
                             "shrinkage": self._tensor(self._shrinkage, "l2_shrinkage_regularization_strength"),
                             "lr_power": self._tensor(self._lr_power, "learning_rate_power")}
        # TF: beta adds beta / (2 lr) to the l2 strength
        t["l2"] = M.add(t["l2"], M.realdiv(self._tensor(self._beta, "beta"), M.multiply(t["lr"], 2.0)))

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        accum, linear = self.get_slot(var, "accum"), self.get_slot(var, "linear")
        assert accum is not None and linear is not None
        c = {k: self._cast_like(t, var) for k, t in self._tensors.items()}
        refs = [var._ref(), accum._ref(), linear._ref()]
        if self._shrinkage <= 0.0:
            return apply_update("ApplyFtrl", refs, [grad, c["lr"], c["l1"], c["l2"], c["lr_power"]], "ApplyFtrl",
                                use_locking=self._use_locking)
        return apply_update("ApplyFtrlV2", refs, [grad, c["lr"], c["l1"], c["l2"], c["shrinkage"], c["lr_power"]],
                            "ApplyFtrlV2", use_locking=self._use_locking)
