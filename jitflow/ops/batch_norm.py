"""Batch normalization: `tf.nn.batch_normalization`, `tf.nn.fused_batch_norm`, `tf.layers.batch_normalization`.

Every form is built from elementwise ops and reductions, so the inference form fuses into the clusters
around it and gradients come from those ops' gradients. The layer follows TF 1.x's: variables
`<name>/gamma`, `beta`, `moving_mean`, `moving_variance`; moving averages updated by ops in
`UPDATE_OPS` (`moving -= (moving - batch) * (1 - momentum)`); with 4-D inputs the fused form, whose
batch variance for the moving average carries Bessel's correction, as TF's fused kernel.
"""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Tensor, name_scope
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops.constant_op import convert_to_tensor


def batch_normalization(x: Any, mean: Any, variance: Any, offset: Any, scale: Any, variance_epsilon: float,
                        name: str | None = None) -> Tensor:
    """(x - mean) * scale / sqrt(variance + variance_epsilon) + offset, as TF composes it."""
    with name_scope(name, "batchnorm"):
        x = convert_to_tensor(x)
        inv = M.rsqrt(M.add(convert_to_tensor(variance), variance_epsilon))
        if scale is not None:
            inv = M.multiply(inv, scale)
        mean = convert_to_tensor(mean)
        shift = M.subtract(offset, M.multiply(mean, inv)) if offset is not None else \
            M.negative(M.multiply(mean, inv))
        return M.add(M.multiply(x, M.cast(inv, x.dtype)), M.cast(shift, x.dtype))


def _channel_axis(data_format: str) -> int:
    if data_format not in ("NHWC", "NCHW"):
        raise ValueError(f"data_format must be 'NHWC' or 'NCHW', got {data_format!r}")
    return 3 if data_format == "NHWC" else 1


def _check_param(t: Tensor, what: str, channels: Any) -> None:
    if t.shape.ndims not in (None, 1):
        raise ValueError(f"{what} must be 1-dimensional, got shape {t.shape}")
    if t.shape.ndims == 1 and channels is not None and t.shape[0] not in (None, channels):
        raise ValueError(f"{what} must have {channels} elements (the channels of x), got shape {t.shape}")


def fused_batch_norm(x: Any, scale: Any, offset: Any, mean: Any = None, variance: Any = None,
                     epsilon: float = 0.001, data_format: str = "NHWC", is_training: bool = True,
                     name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(y, batch_mean, batch_variance) of a 4-D `x` normalized per channel.

    Training uses the batch's statistics (the returned variance with Bessel's correction, as TF's
    kernel); inference needs `mean` and `variance` and returns them.
    """
    with name_scope(name, "FusedBatchNorm"):
        x = convert_to_tensor(x, name="input")
        if x.shape.ndims not in (None, 4):
            raise ValueError(f"x must be 4-dimensional, got shape {x.shape}")
        axis = _channel_axis(data_format)
        channels = x.shape[axis] if x.shape.ndims == 4 else None
        scale, offset = convert_to_tensor(scale, name="scale"), convert_to_tensor(offset, name="offset")
        _check_param(scale, "scale", channels)
        _check_param(offset, "offset", channels)
        epsilon = max(float(epsilon), 1.001e-5)  # TF's minimum (a cuDNN requirement it applies everywhere)
        axes = [a for a in range(4) if a != axis]
        shape = [1, 1, 1, -1] if axis == 3 else [1, -1, 1, 1]
        if is_training:
            y_in = M.cast(x, dtypes.float32) if x.dtype is dtypes.float16 else x
            batch_mean, batch_var = _moments(y_in, axes)
            n = M.cast(A.size(y_in), batch_var.dtype) / M.cast(A.size(batch_var), batch_var.dtype)
            unbiased = M.multiply(batch_var, M.truediv(n, M.maximum(M.subtract(n, 1.0), 1.0)))
            y = batch_normalization(y_in, A.reshape(batch_mean, shape), A.reshape(batch_var, shape),
                                    A.reshape(offset, shape), A.reshape(scale, shape), epsilon)
            return M.cast(y, x.dtype), batch_mean, unbiased
        if mean is None or variance is None:
            raise ValueError("fused_batch_norm with is_training=False needs `mean` and `variance`")
        mean, variance = convert_to_tensor(mean, name="mean"), convert_to_tensor(variance, name="variance")
        _check_param(mean, "mean", channels)
        _check_param(variance, "variance", channels)
        y = batch_normalization(x, A.reshape(mean, shape), A.reshape(variance, shape), A.reshape(offset, shape),
                                A.reshape(scale, shape), epsilon)
        return y, A.identity(mean), A.identity(variance)


def _moments(x: Tensor, axes: list[int]) -> tuple[Tensor, Tensor]:
    from jitflow.ops.nn_ops import moments

    return moments(x, axes)


def _assign_moving_average(variable: Any, value: Tensor, decay: Tensor) -> Tensor:
    """TF's update: variable -= (variable - value) * decay, named AssignMovingAvg."""
    from jitflow.ops.state_ops import assign_sub

    with name_scope(None, "AssignMovingAvg") as scope:
        delta = M.multiply(M.subtract(variable, M.cast(value, variable.dtype.base_dtype)), decay)
        return assign_sub(variable, delta, name=scope)


def _training_flag(training: Any) -> tuple[bool | None, Tensor | None]:
    """(constant value or None, tensor or None) of `training`: a Python bool or a bool tensor."""
    if isinstance(training, bool) or training is None:
        return bool(training), None
    t = convert_to_tensor(training)
    if t.dtype is not dtypes.bool:
        raise TypeError(f"`training` must be a bool or a bool tensor, got {t.dtype.name}")
    return None, t
