"""TF 1.x's further elementwise math: inverse hyperbolics, atan2, erf, lgamma, digamma, softsign, selu,
xlogy / xdivy / div_no_nan, rint, log_sigmoid and swish.

Each op with a formula is defined once with `elementwise.define`, so the compiler fuses it; the IR has no
erf / lgamma / digamma function, so those four run as NumPy kernels (their OpDef says why).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.gradients import unbroadcast
from jitflow.ir import expr as E
from jitflow.ops import elementwise, nn_ops
from jitflow.ops import math_ops as M
from jitflow.ops.constant_op import constant, convert_to_tensor
from jitflow.ops.op_util import FLOATS, check_dtype, elementwise_infer, make_op, out, same_dtype_inputs

Grads = list[Tensor | None]

# selu's constants, as TF's kernel has them
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _unary(op_type: str, x: Any, name: str | None, arg: str = "x") -> Tensor:
    t = convert_to_tensor(x)
    check_dtype(op_type, t, FLOATS, arg)
    return out(make_op(op_type, [t], {"T": t.dtype}, name=name or op_type))


def _binary(op_type: str, x: Any, y: Any, name: str | None, names: tuple[str, str] = ("x", "y")) -> Tensor:
    a, b = same_dtype_inputs(op_type, [x, y], names)
    check_dtype(op_type, a, FLOATS, names[0])
    return out(make_op(op_type, [a, b], {"T": a.dtype}, name=name or op_type))


def _xy_grads(op: Operation, gx: Tensor | None, gy: Tensor | None) -> Grads:
    """Gradients of a broadcasting binary op, each summed back to its input's shape."""
    x, y = op.inputs
    return [None if gx is None else unbroadcast(gx, x), None if gy is None else unbroadcast(gy, y)]


def _nonzero(x: Tensor) -> Tensor:
    return M.cast(M.not_equal(x, constant(0, dtype=x.dtype)), x.dtype)


# -- formula ops ------------------------------------------------------------------------------------------

_LN2 = math.log(2.0)


def _big(x: Any) -> float:
    """Beyond this |x|, x^2 + 1 rounds to x^2 and asinh/acosh are log(2|x|) to the last bit."""
    return 2.0 ** 12 if E.dtype_name(x) == "float32" else 2.0 ** 28


# The inverse hyperbolics in log / log1p / sqrt (vectorized on CPUs, where Numba's own are 25x slower), in the
# usual accurate forms (glibc's): no cancellation near 0 or 1, no overflow of x^2 for large x.
def _asinh(x: Any) -> Any:
    a = abs(x)
    r = E.where(a > _big(x), E.log(a) + _LN2, E.log1p(a + a * a / (1 + E.sqrt(1 + a * a))))
    return E.call("copysign", r, x)


def _acosh(x: Any) -> Any:
    t = x - 1
    return E.where(x > _big(x), E.log(x) + _LN2, E.log1p(t + E.sqrt(t * 2 + t * t)))


def _atanh(x: Any) -> Any:
    a = abs(x)
    return E.call("copysign", E.log1p(a * 2 / (1 - a)) * 0.5, x)


elementwise.define("Asinh", _asinh, grad=lambda op, g: [g / M.cosh(op.outputs[0])])
elementwise.define("Acosh", _acosh, grad=lambda op, g: [g / M.sinh(op.outputs[0])])
elementwise.define("Atanh", _atanh, grad=lambda op, g: [g * M.reciprocal(1 - M.square(op.inputs[0]))])
elementwise.define("Rint", lambda x: E.call("rint", x), grad=lambda op, g: [None])


def _atan2_grad(op: Operation, g: Tensor) -> Grads:
    y, x = op.inputs
    inv = M.reciprocal(M.square(x) + M.square(y))
    return _xy_grads(op, g * x * inv, g * M.negative(y) * inv)


elementwise.define("Atan2", lambda y, x: E.call("arctan2", y, x), grad=_atan2_grad)

# softsign: x / (1 + |x|); its gradient g / (1 + |x|)^2 is TF's SoftsignGrad
elementwise.define("Softsign", lambda x: x / (1 + abs(x)),
                   grad=lambda op, g: [elementwise.apply("SoftsignGrad", [g, op.inputs[0]])])
elementwise.define("SoftsignGrad", lambda g, x: g / ((1 + abs(x)) * (1 + abs(x))))
elementwise.define("Selu", lambda x: E.where(x > 0, x * SELU_SCALE, E.expm1(x) * (SELU_SCALE * SELU_ALPHA)),
                   grad=lambda op, g: [elementwise.apply("SeluGrad", [g, op.outputs[0]])])
# from the output y: d/dx = scale for x > 0, else scale * alpha * e^x = y + scale * alpha
elementwise.define("SeluGrad", lambda g, y: E.where(y > 0, g * SELU_SCALE, g * (y + SELU_SCALE * SELU_ALPHA)))


def _xlogy_grad(op: Operation, g: Tensor) -> Grads:
    x, y = op.inputs
    return _xy_grads(op, g * xlogy(_nonzero(x), y), g * xdivy(x, y))


def _xlog1py_grad(op: Operation, g: Tensor) -> Grads:
    x, y = op.inputs
    return _xy_grads(op, g * xlog1py(_nonzero(x), y), g * xdivy(x, y + 1))


def _xdivy_grad(op: Operation, g: Tensor) -> Grads:
    x, y = op.inputs
    return _xy_grads(op, g * xdivy(_nonzero(x), y), g * xdivy(M.negative(x), M.square(y)))


def _div_no_nan_grad(op: Operation, g: Tensor) -> Grads:
    x, y = op.inputs
    return _xy_grads(op, div_no_nan(g, y), g * div_no_nan(div_no_nan(M.negative(x), y), y))


def _mul_no_nan_grad(op: Operation, g: Tensor) -> Grads:
    x, y = op.inputs
    return _xy_grads(op, multiply_no_nan(g, y), multiply_no_nan(x, g))


# x == 0 (or y == 0 for the *NoNan ops) gives 0 whatever the other operand is (NaN included), as TF's do
elementwise.define("Xlogy", lambda x, y: E.where(x == 0, 0, x * E.log(y)), grad=_xlogy_grad)
elementwise.define("Xlog1py", lambda x, y: E.where(x == 0, 0, x * E.log1p(y)), grad=_xlog1py_grad)
elementwise.define("Xdivy", lambda x, y: E.where(x == 0, 0, x / y), grad=_xdivy_grad)
elementwise.define("DivNoNan", lambda x, y: E.where(y == 0, 0, x / y), grad=_div_no_nan_grad)
elementwise.define("MulNoNan", lambda x, y: E.where(y == 0, 0, x * y), grad=_mul_no_nan_grad)


# -- interpreted ops: functions the expression IR does not have ----------------------------------------------

def _lgamma(x: np.ndarray) -> np.ndarray:
    """log|Gamma(x)|: +inf at the poles (0 and the negative integers) and at +-inf, as TF's."""
    flat = np.asarray(x, np.float64).ravel()
    res = np.empty_like(flat)
    for i, v in enumerate(flat.tolist()):
        pole = v <= 0 and math.isfinite(v) and v == math.floor(v)
        res[i] = math.inf if pole else math.lgamma(v)  # math.lgamma raises at the poles
    return res.reshape(np.shape(x))


def _digamma(x: np.ndarray) -> np.ndarray:
    """psi(x): reflection below 1/2, six recurrence steps, then the asymptotic series (float64 throughout).
    NaN at the poles (0, -0 and the negative integers) and at -inf, +inf at +inf, as TF's."""
    v = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        refl = v < 0.5
        z = np.where(refl, 1.0 - v, v)
        acc = np.zeros_like(z)
        for _ in range(6):  # psi(z) = psi(z + 1) - 1/z
            acc -= 1.0 / z
            z = z + 1.0
        r = 1.0 / (z * z)
        series = np.log(z) - 0.5 / z - r * (1 / 12 - r * (1 / 120 - r * (1 / 252 - r * (
            1 / 240 - r * (1 / 132 - r * (691 / 32760 - r / 12))))))
        psi = acc + series
        psi = np.where(refl, psi - np.pi / np.tan(np.pi * v), psi)
        pole = (v <= 0) & (v == np.floor(v))
        psi = np.where(pole | np.isneginf(v), np.nan, np.where(np.isposinf(v), np.inf, psi))
    return psi


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(np.asarray(x, np.float64))


def _erfc(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erfc, otypes=[np.float64])(np.asarray(x, np.float64))


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf_grad(sign: float) -> registry.GradFn:
    def grad(op: Operation, g: Tensor) -> Grads:
        x = op.inputs[0]
        return [g * constant(sign * _TWO_OVER_SQRT_PI, dtype=x.dtype) * M.exp(M.negative(M.square(x)))]
    return grad


def _register_interpreted(op_type: str, fn: Any, grad: registry.GradFn | None) -> None:
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        return fn(ins[0]).astype(np.asarray(ins[0]).dtype, copy=False)

    registry.register_op(op_type, elementwise_infer(), kernel, registry.ELEMENTWISE, grad=grad,
                         no_lowering=f"the expression IR has no {op_type.lower()} function (libm only on CPUs)")


_register_interpreted("Erf", _erf, _erf_grad(1.0))
_register_interpreted("Erfc", _erfc, _erf_grad(-1.0))
_register_interpreted("Lgamma", _lgamma, lambda op, g: [g * digamma(op.inputs[0])])
# TF's digamma gradient is polygamma(1, x), an op jitflow does not have
_register_interpreted("Digamma", _digamma, None)


# -- public functions -------------------------------------------------------------------------------------


def asinh(x: Any, name: str | None = None) -> Tensor:
    """Inverse hyperbolic sine."""
    return _unary("Asinh", x, name)


def acosh(x: Any, name: str | None = None) -> Tensor:
    """Inverse hyperbolic cosine (NaN below 1)."""
    return _unary("Acosh", x, name)


def atanh(x: Any, name: str | None = None) -> Tensor:
    """Inverse hyperbolic tangent (+-inf at +-1, NaN beyond)."""
    return _unary("Atanh", x, name)


def atan2(y: Any, x: Any, name: str | None = None) -> Tensor:
    """The angle of the point (x, y), in [-pi, pi]."""
    return _binary("Atan2", y, x, name, ("y", "x"))


def rint(x: Any, name: str | None = None) -> Tensor:
    """Rounds to the nearest integer, halves to even."""
    return _unary("Rint", x, name)


def erf(x: Any, name: str | None = None) -> Tensor:
    """The Gauss error function."""
    return _unary("Erf", x, name)


def erfc(x: Any, name: str | None = None) -> Tensor:
    """1 - erf(x), accurate for large x."""
    return _unary("Erfc", x, name)


def lgamma(x: Any, name: str | None = None) -> Tensor:
    """log |Gamma(x)|."""
    return _unary("Lgamma", x, name)


def digamma(x: Any, name: str | None = None) -> Tensor:
    """psi(x), the derivative of lgamma."""
    return _unary("Digamma", x, name)


def softsign(features: Any, name: str | None = None) -> Tensor:
    """features / (|features| + 1)."""
    return _unary("Softsign", features, name, "features")


def selu(features: Any, name: str | None = None) -> Tensor:
    """Scaled exponential linear unit (Klambauer et al.), with TF's scale and alpha."""
    return _unary("Selu", features, name, "features")


def xlogy(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x * log(y), and 0 where x == 0."""
    return _binary("Xlogy", x, y, name)


def xlog1py(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x * log1p(y), and 0 where x == 0."""
    return _binary("Xlog1py", x, y, name)


def xdivy(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y, and 0 where x == 0."""
    return _binary("Xdivy", x, y, name)


def div_no_nan(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y, and 0 where y == 0."""
    return _binary("DivNoNan", x, y, name)


def multiply_no_nan(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x * y, and 0 where y == 0 (even when x is NaN or inf)."""
    return _binary("MulNoNan", x, y, name)


def reciprocal_no_nan(x: Any, name: str | None = None) -> Tensor:
    """1 / x, and 0 where x == 0 (TF's `div_no_nan(1, x)`)."""
    t = convert_to_tensor(x)
    check_dtype("reciprocal_no_nan", t, FLOATS, "x")
    return div_no_nan(constant(1, dtype=t.dtype), t, name=name or "reciprocal_no_nan")


def log_sigmoid(x: Any, name: str | None = None) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    t = convert_to_tensor(x)
    check_dtype("log_sigmoid", t, FLOATS, "x")
    return M.negative(nn_ops.softplus(M.negative(t)), name=name or "LogSigmoid")


def swish(features: Any, beta: float = 1.0, name: str | None = None) -> Tensor:
    """features * sigmoid(beta * features) (`tf.nn.silu`)."""
    t = convert_to_tensor(features)
    check_dtype("swish", t, FLOATS, "features")
    scaled = t if beta == 1.0 else t * constant(beta, dtype=t.dtype)
    return M.multiply(t, M.sigmoid(scaled), name=name or "swish")


silu = swish


def reduce_variance(input_tensor: Any, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """The mean squared deviation from the mean over `axis`."""
    from jitflow.framework.graph import name_scope

    with name_scope(name or "reduce_variance"):
        x = convert_to_tensor(input_tensor)
        check_dtype("reduce_variance", x, FLOATS, "input_tensor")
        means = M.reduce_mean(x, axis, keepdims=True)
        return M.reduce_mean(M.square(x - means), axis, keepdims=keepdims)


def reduce_std(input_tensor: Any, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """The standard deviation over `axis`: sqrt(reduce_variance)."""
    from jitflow.framework.graph import name_scope

    with name_scope(name or "reduce_std"):
        return M.sqrt(reduce_variance(input_tensor, axis, keepdims))
