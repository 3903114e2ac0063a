"""Learning-rate schedules of TF1 (`tf.train.exponential_decay` and friends) as graph tensors.

Each returns a tensor of `learning_rate`'s dtype that depends on `global_step`, so it can be passed to an
optimizer directly; formulas and defaults are TensorFlow's.
"""
from __future__ import annotations

import math
from typing import Any

from jitflow.framework.graph import Tensor, name_scope
from jitflow.ops import math_ops as M
from jitflow.ops.constant_op import convert_to_tensor


def _step_and_rate(learning_rate: Any, global_step: Any, what: str) -> tuple[Tensor, Tensor]:
    if global_step is None:
        raise ValueError(f"global_step is required for {what}.")
    lr = convert_to_tensor(learning_rate, name="learning_rate")
    return lr, M.cast(global_step, lr.dtype)


def _progress(step: Tensor, decay_steps: Any, staircase: bool) -> Tensor:
    p = step / M.cast(decay_steps, step.dtype)
    return M.floor(p) if staircase else p


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate * decay_rate ^ (global_step / decay_steps), the exponent floored if `staircase`."""
    with name_scope(name, "ExponentialDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "exponential_decay")
        rate = M.cast(decay_rate, lr.dtype)
        return M.multiply(lr, M.pow(rate, _progress(step, decay_steps, staircase)), name=scope)


def natural_exp_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate * exp(-decay_rate * global_step / decay_steps)."""
    with name_scope(name, "NaturalExpDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "natural_exp_decay")
        rate = M.cast(decay_rate, lr.dtype)
        return M.multiply(lr, M.exp(M.negative(rate) * _progress(step, decay_steps, staircase)), name=scope)


def inverse_time_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                       staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate / (1 + decay_rate * global_step / decay_steps)."""
    with name_scope(name, "InverseTimeDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "inverse_time_decay")
        rate = M.cast(decay_rate, lr.dtype)
        return M.truediv(lr, 1 + rate * _progress(step, decay_steps, staircase), name=scope)


def polynomial_decay(learning_rate: Any, global_step: Any, decay_steps: Any, end_learning_rate: Any = 0.0001,
                     power: Any = 1.0, cycle: bool = False, name: str | None = None) -> Tensor:
    """(lr - end) * (1 - step/decay_steps)^power + end, the step capped at decay_steps (or cycled)."""
    with name_scope(name, "PolynomialDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "polynomial_decay")
        end = M.cast(end_learning_rate, lr.dtype)
        steps = M.cast(decay_steps, lr.dtype)
        if cycle:
            # Restart every decay_steps, stretching the period: ceil(step / decay_steps) periods (1 at 0).
            periods = M.where_v2(M.equal(step, 0.0), M.cast(1, lr.dtype), M.ceil(step / steps))
            steps = steps * periods
        else:
            step = M.minimum(step, steps)
        frac = 1 - step / steps
        return M.add(M.multiply(lr - end, M.pow(frac, M.cast(power, lr.dtype))), end, name=scope)


def cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, alpha: Any = 0.0,
                 name: str | None = None) -> Tensor:
    """learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)."""
    with name_scope(name, "CosineDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "cosine_decay")
        steps = M.cast(decay_steps, lr.dtype)
        done = M.minimum(step, steps) / steps
        cosine = 0.5 * (1 + M.cos(math.pi * done))
        a = M.cast(alpha, lr.dtype)
        return M.multiply(lr, (1 - a) * cosine + a, name=scope)


def piecewise_constant(x: Any, boundaries: Any, values: Any, name: str | None = None) -> Tensor:
    """values[0] while x <= boundaries[0], values[i] while boundaries[i-1] < x <= boundaries[i], then values[-1].
    """
    if len(boundaries) != len(values) - 1:
        raise ValueError("The length of boundaries should be 1 less than the length of values")
    with name_scope(name, "PiecewiseConstant"):
        xt = convert_to_tensor(x)
        bs = [convert_to_tensor(b, dtype=xt.dtype) if not isinstance(b, Tensor) else b for b in boundaries]
        for b in bs:
            if b.dtype is not xt.dtype:
                raise ValueError(f"Boundaries ({b.dtype.name}) must have the same dtype as x ({xt.dtype.name}).")
        vs = [convert_to_tensor(v) for v in values]
        for v in vs[1:]:
            if v.dtype is not vs[0].dtype:
                raise ValueError(f"Values must have elements all with the same dtype ({vs[0].dtype.name} vs "
                                 f"{v.dtype.name}).")
        # Innermost first: the last interval is the default, each earlier boundary overrides below it.
        out = vs[-1]
        for b, v in zip(reversed(bs), reversed(vs[:-1])):
            out = M.where_v2(M.less_equal(xt, b), v, out)
        return out


piecewise_constant_decay = piecewise_constant


def cosine_decay_restarts(learning_rate: Any, global_step: Any, first_decay_steps: Any, t_mul: float = 2.0,
                          m_mul: float = 1.0, alpha: Any = 0.0, name: str | None = None) -> Tensor:
    """Cosine decay with warm restarts (SGDR): period i lasts first_decay_steps * t_mul^i steps and starts
    at learning_rate * m_mul^i."""
    with name_scope(name, "SGDRDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "cosine_decay_restarts")
        done = step / M.cast(first_decay_steps, lr.dtype)
        t = M.cast(t_mul, lr.dtype)
        if t_mul == 1.0:
            i = M.floor(done)
            done = done - i
        else:  # geometric periods: which restart, and how far into it
            i = M.floor(M.log(1.0 - done * (1.0 - t)) / M.log(t))
            sum_r = (1.0 - M.pow(t, i)) / (1.0 - t)
            done = (done - sum_r) / M.pow(t, i)
        cosine = 0.5 * M.pow(M.cast(m_mul, lr.dtype), i) * (1.0 + M.cos(math.pi * done))
        a = M.cast(alpha, lr.dtype)
        return M.multiply(lr, (1 - a) * cosine + a, name=scope)


def linear_cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, num_periods: Any = 0.5,
                        alpha: Any = 0.0, beta: Any = 0.001, name: str | None = None) -> Tensor:
    """learning_rate * ((alpha + linear) * cosine + beta), linear falling from 1 to 0 over decay_steps and
    cosine running `num_periods` periods."""
    with name_scope(name, "LinearCosineDecay") as scope:
        lr, step = _step_and_rate(learning_rate, global_step, "linear_cosine_decay")
        steps = M.cast(decay_steps, lr.dtype)
        step = M.minimum(step, steps)
        linear = (steps - step) / steps
        cosine = 0.5 * (1.0 + M.cos(math.pi * 2.0 * M.cast(num_periods, lr.dtype) * (step / steps)))
        return M.multiply(lr, (M.cast(alpha, lr.dtype) + linear) * cosine + M.cast(beta, lr.dtype), name=scope)
