"""Gradients of the ops in math_ops.py, with TensorFlow's conventions.

Each function is `grad(op, *output_grads) -> [gradient per input or None]` and builds graph ops, so the
gradient graph is compiled and fused like any other. Broadcast inputs get their gradient summed back to
their own shape with `unbroadcast`; integer-valued ops (floor, round, floor division) have no gradient.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.gradients import unbroadcast
from jitflow.ops import math_ops as M
from jitflow.ops.array_ops import ones_like, reshape, shape, zeros_like
from jitflow.ops.constant_op import constant
from jitflow.ops.op_util import make_op, out

Grads = list[Tensor | None]


def _xy(op: Operation) -> tuple[Tensor, Tensor]:
    return op.inputs[0], op.inputs[1]


# -- binary elementwise ---------------------------------------------------------------------------------


@registry.register_gradient("AddV2")
@registry.register_gradient("Add")
def _add_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    return [unbroadcast(g, x), unbroadcast(g, y)]


@registry.register_gradient("Sub")
def _sub_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    return [unbroadcast(g, x), unbroadcast(M.negative(g), y)]


@registry.register_gradient("Mul")
def _mul_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    return [unbroadcast(g * y, x), unbroadcast(x * g, y)]


@registry.register_gradient("RealDiv")
@registry.register_gradient("Div")
def _div_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    return [unbroadcast(M.realdiv(g, y), x), unbroadcast(g * M.realdiv(M.realdiv(M.negative(x), y), y), y)]


@registry.register_gradient("FloorDiv")
@registry.register_gradient("TruncateDiv")
def _no_grad2(op: Operation, g: Tensor) -> Grads:
    return [None, None]


@registry.register_gradient("FloorMod")
def _floormod_grad(op: Operation, g: Tensor) -> Grads:
    # x mod y = x - floor(x / y) * y, piecewise linear in both arguments.
    x, y = _xy(op)
    return [unbroadcast(g, x), unbroadcast(g * M.negative(M.floordiv(x, y)), y)]


@registry.register_gradient("Pow")
def _pow_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    z = op.outputs[0]
    gx = g * y * M.pow(x, y - 1)
    # d/dy x^y = x^y log x, taken as 0 where x <= 0 (TF's choice: log is undefined there).
    positive = M.greater(x, constant(0, dtype=x.dtype))
    log_x = M.where_v2(positive, M.log(M.where_v2(positive, x, ones_like(x))), zeros_like(x))
    return [unbroadcast(gx, x), unbroadcast(g * z * log_x, y)]


def _select_grads(op: Operation, g: Tensor, x_wins: Tensor) -> Grads:
    x, y = _xy(op)
    zeros = zeros_like(g)
    return [unbroadcast(M.where_v2(x_wins, g, zeros), x), unbroadcast(M.where_v2(x_wins, zeros, g), y)]


@registry.register_gradient("Maximum")
def _maximum_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    return _select_grads(op, g, M.greater_equal(x, y))  # ties go to x, as in TF


@registry.register_gradient("Minimum")
def _minimum_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    return _select_grads(op, g, M.less_equal(x, y))


@registry.register_gradient("SquaredDifference")
def _squared_difference_grad(op: Operation, g: Tensor) -> Grads:
    x, y = _xy(op)
    gx = (g * 2) * (x - y)
    return [unbroadcast(gx, x), unbroadcast(M.negative(gx), y)]


@registry.register_gradient("Select")
def _select_grad(op: Operation, g: Tensor) -> Grads:
    c = op.inputs[0]
    zeros = zeros_like(g)
    return [None, M.where(c, g, zeros), M.where(c, zeros, g)]


@registry.register_gradient("SelectV2")
def _select_v2_grad(op: Operation, g: Tensor) -> Grads:
    c, x, y = op.inputs
    zeros = zeros_like(g)
    return [None, unbroadcast(M.where_v2(c, g, zeros), x), unbroadcast(M.where_v2(c, zeros, g), y)]


# -- unary elementwise --------------------------------------------------------------------------------------


def _unary(op_type: str):  # type: ignore[no-untyped-def]
    """Registers `fn(x, y, g) -> dx` (x the input, y the output) as the gradient of `op_type`."""

    def deco(fn: Any) -> Any:
        def grad(op: Operation, g: Tensor) -> Grads:
            return [fn(op.inputs[0], op.outputs[0], g)]

        registry.register_gradient(op_type)(grad)
        return fn

    return deco


@_unary("Neg")
def _neg(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.negative(g)


@_unary("Abs")
def _abs(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.sign(x)


@_unary("Sign")
def _sign(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return zeros_like(x)  # TF gives zeros here (not None)


@_unary("Square")
def _square(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.multiply(g, M.multiply(x, constant(2, dtype=x.dtype)))


@_unary("Sqrt")
def _sqrt(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.realdiv(M.multiply(g, constant(0.5, dtype=y.dtype)), y)


@_unary("Rsqrt")
def _rsqrt(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * -0.5 * (y * y * y)


@_unary("Exp")
def _exp(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * y


@_unary("Log")
def _log(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.reciprocal(x)


@_unary("Log1p")
def _log1p(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.reciprocal(1 + x)


@_unary("Expm1")
def _expm1(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.exp(x)


@_unary("Sin")
def _sin(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.cos(x)


@_unary("Cos")
def _cos(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.negative(g) * M.sin(x)


@_unary("Tan")
def _tan(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.square(M.reciprocal(M.cos(x)))


@_unary("Asin")
def _asin(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.rsqrt(1 - M.square(x))


@_unary("Acos")
def _acos(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.negative(g) * M.rsqrt(1 - M.square(x))


@_unary("Atan")
def _atan(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.reciprocal(1 + M.square(x))


@_unary("Sinh")
def _sinh(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.cosh(x)


@_unary("Cosh")
def _cosh(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * M.sinh(x)


@_unary("Tanh")
def _tanh(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return g * (1 - y * y)


@_unary("Sigmoid")
def _sigmoid(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.multiply(g, M.multiply(y, M.subtract(constant(1, dtype=y.dtype), y)))


@_unary("Reciprocal")
@_unary("Inv")
def _reciprocal(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    return M.negative(g) * (y * y)


@registry.register_gradient("Floor")
@registry.register_gradient("Ceil")
@registry.register_gradient("Round")
def _no_grad1(op: Operation, g: Tensor) -> Grads:
    return [None]


@registry.register_gradient("Cast")
def _cast_grad(op: Operation, g: Tensor) -> Grads:
    src, dst = op.attrs["SrcT"], op.attrs["DstT"]
    # Only float-to-float casts carry a gradient; through integers it is undefined.
    if (src.is_floating or src.is_complex) and (dst.is_floating or dst.is_complex):
        return [M.cast(g, src)]
    return [None]


@registry.register_gradient("AddN")
def _addn_grad(op: Operation, g: Tensor) -> Grads:
    return [g] * len(op.inputs)


# -- reductions -----------------------------------------------------------------------------------------------


def _kept_dims(t: Tensor, x: Tensor, axes: tuple[int, ...] | None) -> Tensor:
    """`t` (x reduced over `axes` without keep_dims) reshaped to x's rank, reduced axes of size 1."""
    if axes is None:
        return t  # a scalar broadcasts against x as it is
    dims = x.shape.as_tuple()
    if dims is None:
        # Unknown rank: the axes may be negative; take the kept shape from a keep_dims reduction.
        kept = shape(M.reduce_sum(x, axis=list(axes), keepdims=True))
        return reshape(t, kept)
    red = {a % len(dims) for a in axes} if dims else set()
    if all(d is not None for d in dims):
        return reshape(t, [1 if i in red else d for i, d in enumerate(dims)])
    # Partly known shape: shape(x) with the reduced entries replaced by 1, in int32 arithmetic.
    keep = constant(np.array([0 if i in red else 1 for i in range(len(dims))], np.int32))
    ones = constant(np.array([1 if i in red else 0 for i in range(len(dims))], np.int32))
    return reshape(t, shape(x) * keep + ones)


def _reduction_parts(op: Operation, g: Tensor) -> tuple[Tensor, tuple[int, ...] | None, Tensor]:
    """(x, axes, g with x's rank) for a reduction op."""
    x = op.inputs[0]
    axes = op.attrs["axis"]
    if not op.attrs["keep_dims"]:
        g = _kept_dims(g, x, axes)
    return x, axes, g


def _broadcast_like(g: Tensor, x: Tensor) -> Tensor:
    return g * ones_like(x)


@registry.register_gradient("Sum")
def _sum_grad(op: Operation, g: Tensor) -> Grads:
    x, _, gk = _reduction_parts(op, g)
    return [_broadcast_like(gk, x)]


@registry.register_gradient("Mean")
def _mean_grad(op: Operation, g: Tensor) -> Grads:
    x, axes, gk = _reduction_parts(op, g)
    n_in, n_out = x.shape.num_elements(), op.outputs[0].shape.num_elements()
    ones = ones_like(x)
    if n_in is not None and n_out is not None:
        count = constant(n_in // max(n_out, 1), dtype=x.dtype)
    else:  # count the reduced elements by summing the ones that broadcast g anyway
        count = M.reduce_sum(ones, axis=None if axes is None else list(axes), keepdims=True)
    return [M.realdiv(gk, count) * ones]


@registry.register_gradient("Max")
@registry.register_gradient("Min")
def _min_or_max_grad(op: Operation, g: Tensor) -> Grads:
    x, axes, gk = _reduction_parts(op, g)
    y = op.outputs[0] if op.attrs["keep_dims"] else _kept_dims(op.outputs[0], x, axes)
    # Every element equal to the extreme shares the gradient equally (TF's rule for ties).
    hits = M.cast(M.equal(y, x), x.dtype)
    n_hits = M.reduce_sum(hits, axis=None if axes is None else list(axes), keepdims=True)
    return [hits / n_hits * gk]


@registry.register_gradient("Prod")
def _prod_grad(op: Operation, g: Tensor) -> Grads:
    x, axes, gk = _reduction_parts(op, g)
    ax = None if axes is None else list(axes)
    zero = constant(0, dtype=x.dtype)
    is_zero = M.equal(x, zero)
    n_zero = M.reduce_sum(M.cast(is_zero, x.dtype), axis=ax, keepdims=True)
    x_nz = M.where_v2(is_zero, ones_like(x), x)
    p_nz = M.reduce_prod(x_nz, axis=ax, keepdims=True)
    # d prod / dx_i = product of the others: prod/x_i without zeros; with exactly one zero only that
    # element has a nonzero derivative (the product of the rest); with two or more, all are zero.
    no_zero = M.equal(n_zero, zero)
    lone_zero = M.logical_and(M.equal(n_zero, constant(1, dtype=x.dtype)), is_zero)
    others = M.where_v2(no_zero, p_nz / x_nz, M.where_v2(lone_zero, p_nz, zeros_like(x)))
    return [others * gk]


# -- matrix products -----------------------------------------------------------------------------------------


def _mm(a: Tensor, b: Tensor, ta: bool = False, tb: bool = False) -> Tensor:
    return out(make_op("MatMul", [a, b], {"transpose_a": ta, "transpose_b": tb, "T": a.dtype}, name="MatMul"))


@registry.register_gradient("MatMul")
def _matmul_grad(op: Operation, g: Tensor) -> Grads:
    a, b = _xy(op)
    ta, tb = bool(op.attrs.get("transpose_a")), bool(op.attrs.get("transpose_b"))
    if not ta and not tb:
        return [_mm(g, b, tb=True), _mm(a, g, ta=True)]
    if not ta and tb:
        return [_mm(g, b), _mm(g, a, ta=True)]
    if ta and not tb:
        return [_mm(b, g, tb=True), _mm(a, g)]
    return [_mm(b, g, ta=True, tb=True), _mm(g, a, ta=True, tb=True)]


def _bmm(a: Tensor, b: Tensor, adj_a: bool = False, adj_b: bool = False) -> Tensor:
    return out(make_op("BatchMatMulV2", [a, b], {"adj_x": adj_a, "adj_y": adj_b, "T": a.dtype},
                       name="MatMul"))


@registry.register_gradient("BatchMatMulV2")
def _batch_matmul_grad(op: Operation, g: Tensor) -> Grads:
    a, b = _xy(op)
    ta, tb = bool(op.attrs.get("adj_x")), bool(op.attrs.get("adj_y"))
    if not ta and not tb:
        ga, gb = _bmm(g, b, adj_b=True), _bmm(a, g, adj_a=True)
    elif not ta and tb:
        ga, gb = _bmm(g, b), _bmm(g, a, adj_a=True)
    elif ta and not tb:
        ga, gb = _bmm(b, g, adj_b=True), _bmm(a, g)
    else:
        ga, gb = _bmm(b, g, adj_a=True, adj_b=True), _bmm(g, a, adj_a=True, adj_b=True)
    # Batch dimensions broadcast like elementwise ops: sum the gradient back over them.
    return [unbroadcast(ga, a), unbroadcast(gb, b)]


@registry.register_gradient("UnbroadcastTo")
def _unbroadcast_grad(op: Operation, g: Tensor) -> Grads:
    return [_broadcast_like(g, op.inputs[0]), None]



@registry.register_gradient("Cumsum")
def _cumsum_grad(op: Operation, grad: Tensor) -> list:
    # The gradient of a scan is the same scan run the other way over the gradient.
    return [M.cumsum(grad, op.attrs["axis"], exclusive=op.attrs["exclusive"],
                     reverse=not op.attrs["reverse"])]
