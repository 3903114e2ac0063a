"""Sub-namespaces of the tf-style API (`tf.initializers`, `tf.math`, ...): re-exports only."""
from __future__ import annotations

import types

from jitflow.framework import graph
from jitflow.ops import array_ops, init_ops, math_ops, nn_ops, random_ops, segment_ops, special_math

initializers = types.SimpleNamespace(
    zeros=init_ops.Zeros, ones=init_ops.Ones, constant=init_ops.Constant, random_normal=init_ops.RandomNormal,
    truncated_normal=init_ops.TruncatedNormal, random_uniform=init_ops.RandomUniform,
    glorot_uniform=init_ops.GlorotUniform, glorot_normal=init_ops.GlorotNormal,
    variance_scaling=init_ops.VarianceScaling)

math = types.SimpleNamespace(**{n: getattr(math_ops, n) for n in (
    "add", "subtract", "multiply", "truediv", "divide", "floordiv", "floormod", "pow", "maximum", "minimum",
    "squared_difference", "negative", "abs", "sign", "square", "sqrt", "rsqrt", "exp", "log", "log1p",
    "expm1", "sin", "cos", "tan", "tanh", "sigmoid", "floor", "ceil", "round", "reciprocal", "is_nan",
    "is_inf", "is_finite", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_not", "logical_xor", "add_n", "reduce_sum", "reduce_mean",
    "reduce_max", "reduce_min", "reduce_prod", "reduce_all", "reduce_any", "reduce_logsumexp", "argmax",
    "argmin", "cumsum", "cumprod", "count_nonzero", "reduce_euclidean_norm")})
# tf.math's further names: trigonometry, special functions, *_no_nan, segment reductions, top-k
math.__dict__.update({n: getattr(m, n) for m, names in (
    (math_ops, ("asin", "acos", "atan", "sinh", "cosh", "mod")), (array_ops, ("invert_permutation",)),
    (special_math, ("asinh", "acosh", "atanh", "atan2", "rint", "erf", "erfc", "lgamma", "digamma", "softsign",
                    "xlogy", "xlog1py", "xdivy", "div_no_nan", "multiply_no_nan", "reciprocal_no_nan",
                    "log_sigmoid", "reduce_variance", "reduce_std")),
    (segment_ops, ("segment_sum", "segment_mean", "segment_max", "segment_min", "segment_prod",
                   "unsorted_segment_max", "unsorted_segment_min", "unsorted_segment_prod",
                   "unsorted_segment_mean", "unsorted_segment_sqrt_n", "confusion_matrix")),
    (nn_ops, ("top_k", "in_top_k", "log_softmax", "softmax", "softplus", "l2_normalize")),
) for n in names}, divide_no_nan=special_math.div_no_nan)

random = types.SimpleNamespace(
    normal=random_ops.random_normal, uniform=random_ops.random_uniform,
    truncated_normal=random_ops.truncated_normal, shuffle=random_ops.random_shuffle,
    set_random_seed=graph.set_random_seed, set_seed=graph.set_random_seed)


def disable_v2_behavior() -> None:
    """jitflow always runs TF1 graph mode; there is nothing to disable."""


def disable_eager_execution() -> None:
    """jitflow always runs TF1 graph mode; there is nothing to disable."""


def enable_eager_execution(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("jitflow runs TF1 graph programs; eager execution is not supported")


enable_v2_behavior = enable_eager_execution


def executing_eagerly() -> bool:
    """Always False: jitflow builds graphs and runs them in sessions."""
    return False


def compat_namespace(module: types.ModuleType) -> types.SimpleNamespace:
    """`tf.compat`, whose `v1` is jitflow itself (programs written against tf.compat.v1 run unchanged)."""
    return types.SimpleNamespace(v1=module, as_bytes=_as_bytes, as_text=_as_text, as_str=_as_text)


def _as_bytes(s: str | bytes, encoding: str = "utf-8") -> bytes:
    return s if isinstance(s, bytes) else s.encode(encoding)


def _as_text(s: str | bytes, encoding: str = "utf-8") -> str:
    return s.decode(encoding) if isinstance(s, bytes) else s
