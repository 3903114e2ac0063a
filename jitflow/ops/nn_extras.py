"""More of `tf.nn`, composed from existing ops (so compiled and differentiated like them): zero_fraction,
relu_layer, crelu, weighted_cross_entropy_with_logits, sufficient_statistics / normalize_moments,
local_response_normalization, space_to_depth / depth_to_space. Formulas are TensorFlow's."""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Tensor, name_scope
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops import nn_ops
from jitflow.ops.constant_op import constant, convert_to_tensor
from jitflow.ops.op_util import FLOATS, check_dtype


def zero_fraction(value: Any, name: str | None = None) -> Tensor:
    """The fraction of zeros in `value`, as float32."""
    with name_scope(name, "zero_fraction"):
        v = convert_to_tensor(value, name="value")
        zero = M.cast(M.equal(v, constant(0, dtype=v.dtype)), dtypes.float32)
        return M.reduce_mean(zero, name="fraction")


def relu_layer(x: Any, weights: Any, biases: Any, name: str | None = None) -> Tensor:
    """relu(x @ weights + biases)."""
    with name_scope(name, "relu_layer") as scope:
        y = nn_ops.bias_add(M.matmul(convert_to_tensor(x), weights), biases)
        return nn_ops.relu(y, name=scope.rstrip("/") if scope else None)


def crelu(features: Any, name: str | None = None, axis: int = -1) -> Tensor:
    """Concatenated ReLU: [relu(x), relu(-x)] along `axis` (twice the depth)."""
    with name_scope(name, "CRelu"):
        f = convert_to_tensor(features, name="features")
        return nn_ops.relu(A.concat([f, M.negative(f)], axis))


def weighted_cross_entropy_with_logits(labels: Any = None, logits: Any = None, pos_weight: Any = None,
                                       name: str | None = None, targets: Any = None) -> Tensor:
    """Sigmoid cross-entropy whose positive term is weighted by `pos_weight`:
    (1 - z) * x + (1 + (q - 1) z) * (log1p(exp(-|x|)) + max(-x, 0))."""
    labels = targets if labels is None else labels
    if labels is None or logits is None or pos_weight is None:
        raise ValueError("weighted_cross_entropy_with_logits needs labels (targets), logits and pos_weight")
    with name_scope(name, "logistic_loss") as scope:
        x = convert_to_tensor(logits, name="logits")
        check_dtype("weighted_cross_entropy_with_logits", x, FLOATS, "logits")
        z = convert_to_tensor(labels, dtype=x.dtype, name="targets")
        if not x.shape.is_compatible_with(z.shape):
            raise ValueError(f"logits and targets must have the same shape ({x.shape} vs {z.shape})")
        q = M.cast(pos_weight, x.dtype)
        log_weight = 1 + (q - 1) * z
        soft = M.log1p(M.exp(M.negative(M.abs(x)))) + nn_ops.relu(M.negative(x))
        return M.add((1 - z) * x, log_weight * soft, name=scope.rstrip("/") if scope else None)


def _axes(x: Tensor, axes: Any) -> list[int]:
    r = x.shape.ndims
    if r is None:
        raise ValueError(f"sufficient_statistics needs the rank of {x.name}")
    return [int(a) % r for a in (axes if isinstance(axes, (list, tuple)) else [axes])]


def sufficient_statistics(x: Any, axes: Any, shift: Any = None, keep_dims: Any = None, name: str | None = None,
                          keepdims: Any = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """(count, sum of x - shift, sum of (x - shift)^2, shift) over `axes`."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "sufficient_statistics"):
        t = convert_to_tensor(x, name="x")
        ax = _axes(t, axes)
        dims = [t.shape[a].value for a in ax]
        if all(d is not None for d in dims):
            n = 1
            for d in dims:
                n *= d
            counts = constant(n, dtype=t.dtype, name="count")
        else:
            counts = M.cast(M.reduce_prod(A.gather(A.shape(t), ax)), t.dtype, name="count")
        if shift is not None:
            s = convert_to_tensor(shift, dtype=t.dtype, name="shift")
            m_ss = M.reduce_sum(M.subtract(t, s), ax, keepdims=keep, name="mean_ss")
            v_ss = M.reduce_sum(M.squared_difference(t, s), ax, keepdims=keep, name="var_ss")
            return counts, m_ss, v_ss, s
        m_ss = M.reduce_sum(t, ax, keepdims=keep, name="mean_ss")
        v_ss = M.reduce_sum(M.square(t), ax, keepdims=keep, name="var_ss")
        return counts, m_ss, v_ss, None


def normalize_moments(counts: Any, mean_ss: Any, variance_ss: Any, shift: Any, name: str | None = None
                      ) -> tuple[Tensor, Tensor]:
    """(mean, variance) from `sufficient_statistics`."""
    with name_scope(name, "normalize"):
        divisor = M.reciprocal(convert_to_tensor(counts), name="divisor")
        shifted_mean = M.multiply(mean_ss, divisor, name="shifted_mean")
        mean = shifted_mean if shift is None else M.add(shifted_mean, shift, name="mean")
        variance = M.subtract(M.multiply(variance_ss, divisor), M.square(shifted_mean), name="variance")
        return mean, variance


def local_response_normalization(input: Any, depth_radius: int = 5, bias: float = 1.0, alpha: float = 1.0,  # noqa: A002
                                 beta: float = 0.5, name: str | None = None) -> Tensor:
    """x / (bias + alpha * sum of x^2 over the 2r+1 nearest channels) ^ beta, over NHWC inputs."""
    with name_scope(name, "LRN") as scope:
        x = convert_to_tensor(input, name="input")
        check_dtype("LRN", x, FLOATS, "input")
        if x.shape.ndims != 4:
            raise ValueError(f"Shape must be rank 4 but is rank {x.shape.ndims} for 'LRN' (input {x.shape})")
        c = x.shape[3].value
        if c is None:
            raise ValueError(f"local_response_normalization needs a known channel dimension, got {x.shape}")
        r = int(depth_radius)
        padded = A.pad(M.square(x), [[0, 0], [0, 0], [0, 0], [r, r]])
        window = M.add_n([A.slice(padded, [0, 0, 0, k], [-1, -1, -1, c]) for k in range(2 * r + 1)])
        denom = M.pow(M.cast(bias, x.dtype) + M.cast(alpha, x.dtype) * window, M.cast(beta, x.dtype))
        return M.realdiv(x, denom, name=scope.rstrip("/") if scope else None)


lrn = local_response_normalization


def _nhwc(x: Tensor, what: str, data_format: str) -> list[Any]:
    if data_format != "NHWC":
        raise ValueError(f"{what}: jitflow supports data_format='NHWC' only")
    if x.shape.ndims != 4:
        raise ValueError(f"{what}: input must be rank 4, got {x.shape}")
    dyn = A.shape(x)
    return [d if d is not None else A.gather(dyn, i) for i, d in enumerate(x.shape.as_list())]


def _divisible(n: Any, b: int, what: str) -> None:
    if isinstance(n, int) and n % b:
        raise ValueError(f"{what}: dimension size must be evenly divisible by {b} but is {n}")


def _rearrange(x: Tensor, b: int, what: str, data_format: str, to_depth: bool) -> Tensor:
    """[N, H, W, C] as [N, H', b, W', b, C'] (space to depth) or [N, H, W, b, b, C'] (depth to space), the two
    block axes swapped with the middle one, then merged: the element order of TF's kernels."""
    if b < 2:
        raise ValueError(f"Value for attr 'block_size' of {b} must be at least minimum 2")
    _, h, w, c = _nhwc(x, what, data_format)
    if to_depth:
        _divisible(h, b, what)
        _divisible(w, b, what)
        split, merged = [-1, h // b, b, w // b, b, c], [-1, h // b, w // b, b * b * c]
    else:
        _divisible(c, b * b, what)
        split, merged = [-1, h, w, b, b, c // (b * b)], [-1, h * b, w * b, c // (b * b)]
    static = all(isinstance(d, int) for d in (h, w, c))
    y = A.transpose(A.reshape(x, split if static else A.stack(split)), [0, 1, 3, 2, 4, 5])
    return A.reshape(y, merged if static else A.stack(merged))


def space_to_depth(input: Any, block_size: int, name: str | None = None, data_format: str = "NHWC") -> Tensor:  # noqa: A002
    """Moves b x b spatial blocks into the depth: [N, H, W, C] -> [N, H/b, W/b, b*b*C]."""
    with name_scope(name, "SpaceToDepth"):
        return _rearrange(convert_to_tensor(input), int(block_size), "space_to_depth", data_format, True)


def depth_to_space(input: Any, block_size: int, name: str | None = None, data_format: str = "NHWC") -> Tensor:  # noqa: A002
    """Moves depth into b x b spatial blocks: [N, H, W, C] -> [N, H*b, W*b, C/(b*b)]."""
    with name_scope(name, "DepthToSpace"):
        return _rearrange(convert_to_tensor(input), int(block_size), "depth_to_space", data_format, False)
