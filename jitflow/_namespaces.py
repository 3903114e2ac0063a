"""Sub-namespaces of the tf-style API (`tf.initializers`, `tf.math`, ...): re-exports only."""
from __future__ import annotations

import types

from jitflow.ops import init_ops, math_ops

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
    "argmin")})
