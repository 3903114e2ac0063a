"""`tf.layers.batch_normalization` (TF 1.x's layer: variables, UPDATE_OPS, fused and plain forms)."""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import GraphKeys, Tensor, get_default_graph
from jitflow.ops import array_ops as A
from jitflow.ops import init_ops
from jitflow.ops import math_ops as M
from jitflow.ops.batch_norm import (
    _assign_moving_average,
    _moments,
    _training_flag,
    batch_normalization,
    fused_batch_norm,
)
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.variables import get_variable


def _select(flag: bool | None, t: Tensor | None, on: Any, off: Any) -> Any:
    """`on()` or `off()` for a Python flag; both, chosen by `tf.cond`, for a tensor flag."""
    if flag is not None:
        return on() if flag else off()
    from jitflow.ops.control_flow_ops import cond

    return cond(t, on, off)


def _weights(c: int, center: bool, scale: bool, inits: dict[str, Any], regs: dict[str, Any],
             trainable: bool) -> tuple[Any, Any, Any, Any]:
    g = get_variable("gamma", [c], dtypes.float32, inits["gamma"] or init_ops.ones_initializer(),
                     regularizer=regs["gamma"], trainable=trainable) if scale else None
    b = get_variable("beta", [c], dtypes.float32, inits["beta"] or init_ops.zeros_initializer(),
                     regularizer=regs["beta"], trainable=trainable) if center else None
    mm = get_variable("moving_mean", [c], dtypes.float32, inits["moving_mean"] or init_ops.zeros_initializer(),
                      trainable=False)
    mv = get_variable("moving_variance", [c], dtypes.float32,
                      inits["moving_variance"] or init_ops.ones_initializer(), trainable=False)
    return g, b, mm, mv


def _updates(mm: Any, mv: Any, mean: Tensor, var: Tensor, momentum: float, flag: bool | None,
             t: Tensor | None) -> None:
    """The moving-average updates, in UPDATE_OPS; with a tensor flag they move only while training."""
    if flag is False:
        return
    decay: Any = convert_to_tensor(1.0 - momentum, dtype=dtypes.float32, name="decay")
    if t is not None:
        decay = M.where(t, decay, M.multiply(decay, 0.0))
    for var_, value in ((mm, mean), (mv, var)):
        get_default_graph().add_to_collection(GraphKeys.UPDATE_OPS, _assign_moving_average(var_, value, decay))


def _fused(x: Tensor, axis: int, parts: tuple, epsilon: float, flag: bool | None, t: Tensor | None) -> tuple:
    g, b, mm, mv = parts
    c = x.shape[axis]
    gamma = g if g is not None else A.ones([c], dtypes.float32)
    beta = b if b is not None else A.zeros([c], dtypes.float32)
    fmt = "NHWC" if axis == 3 else "NCHW"
    return _select(flag, t, lambda: fused_batch_norm(x, gamma, beta, epsilon=epsilon, data_format=fmt),
                   lambda: fused_batch_norm(x, gamma, beta, mm, mv, epsilon, fmt, is_training=False))


def _plain(x: Tensor, axis: int, parts: tuple, epsilon: float, flag: bool | None, t: Tensor | None) -> tuple:
    g, b, mm, mv = parts
    nd = x.shape.ndims
    if nd is None:
        raise ValueError(f"Input {x.name} to batch_normalization must have a known rank")
    axes = [i for i in range(nd) if i != axis]
    shape = [1] * nd
    shape[axis] = -1
    if flag is False:
        mean, var = convert_to_tensor(mm), convert_to_tensor(mv)
    else:
        bm, bv = _moments(x, axes)
        mean = _select(flag, t, lambda: bm, lambda: convert_to_tensor(mm))
        var = _select(flag, t, lambda: bv, lambda: convert_to_tensor(mv))
    reshape = (lambda v: A.reshape(v, shape)) if axis != nd - 1 else (lambda v: v)
    y = batch_normalization(x, reshape(mean), reshape(var), reshape(b) if b is not None else None,
                            reshape(g) if g is not None else None, epsilon)
    return y, mean, var


def batch_normalization_layer(inputs: Any, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                              center: bool = True, scale: bool = True, beta_initializer: Any = None,
                              gamma_initializer: Any = None, moving_mean_initializer: Any = None,
                              moving_variance_initializer: Any = None, beta_regularizer: Any = None,
                              gamma_regularizer: Any = None, training: Any = False, trainable: bool = True,
                              name: str | None = None, reuse: Any = None, fused: bool | None = None,
                              **unsupported: Any) -> Tensor:
    """TF 1.x's `tf.layers.batch_normalization`; `training` is a Python bool or a bool tensor."""
    from jitflow.layers import _scope

    if any(v not in (None, False) for v in unsupported.values()):
        raise NotImplementedError(f"batch_normalization: unsupported arguments {sorted(unsupported)}")
    x = convert_to_tensor(inputs)
    nd = x.shape.ndims
    if nd is None:
        raise ValueError(f"Input has undefined rank: {x.name}")
    ax = axis + nd if axis < 0 else axis
    if not 0 <= ax < nd or x.shape[ax] is None:
        raise ValueError(f"Invalid axis {axis} for input {x.name} of shape {x.shape} (the axis needs a known size)")
    flag, t = _training_flag(training)
    use_fused = nd == 4 and ax in (1, 3) and fused is not False and x.dtype in (dtypes.float32, dtypes.float16)
    inits = {"gamma": gamma_initializer, "beta": beta_initializer, "moving_mean": moving_mean_initializer,
             "moving_variance": moving_variance_initializer}
    with _scope(name, "batch_normalization", reuse):
        parts = _weights(int(x.shape[ax]), center, scale, inits, {"gamma": gamma_regularizer,
                                                                 "beta": beta_regularizer}, trainable)
        y, mean, var = (_fused if use_fused else _plain)(x, ax, parts, epsilon, flag, t)
        _updates(parts[2], parts[3], mean, var, momentum, flag, t)
    return y
