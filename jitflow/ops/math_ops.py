"""Elementwise math, reductions and matmul: constructors, OpDefs and NumPy reference kernels."""
from __future__ import annotations

import builtins
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ir import expr as E
from jitflow.ir import formula
from jitflow.ir.formula import Elementwise
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import (
    FLOATS,
    check_dtype,
    elementwise_infer,
    make_op,
    out,
    register_elementwise,
    same_dtype_inputs,
)

# -- kernels that need more than one NumPy call -----------------------------------------------------


def _int_div_check(y: np.ndarray) -> None:
    if np.any(y == 0):
        raise InvalidArgumentError(None, None, "Integer division by zero")


def _floordiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu":
        _int_div_check(y)
        return np.floor_divide(x, y)
    return np.floor(np.true_divide(x, y)).astype(x.dtype, copy=False)


def _floormod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu":
        _int_div_check(y)
    return np.mod(x, y)


def _truncatediv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu":
        _int_div_check(y)
        q = np.abs(x) // np.abs(y)
        return np.where((x < 0) != (y < 0), -q, q).astype(x.dtype, copy=False)
    return np.trunc(np.true_divide(x, y)).astype(x.dtype, copy=False)


def _realdiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu":
        _int_div_check(y)
        return _truncatediv(x, y)
    return np.true_divide(x, y)


def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu" and np.any(y < 0):
        raise InvalidArgumentError(None, None, "Integers to negative integer powers are not allowed")
    return np.power(x, y)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a negative argument only, so large |x| neither overflows nor loses precision.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _rsqrt(x: np.ndarray) -> np.ndarray:
    return (1 / np.sqrt(x)).astype(x.dtype, copy=False)


def _reciprocal(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu":
        _int_div_check(x)
        return (1 // x).astype(x.dtype)
    return (1 / x).astype(x.dtype, copy=False)


def _sign(x: np.ndarray) -> np.ndarray:
    return np.sign(x).astype(x.dtype, copy=False)


def _squared_difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = x - y
    return d * d


def _select(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if c.ndim == 1 and x.ndim > 1:  # TF1 Select: a vector condition picks rows
        c = c.reshape((-1,) + (1,) * (x.ndim - 1))
    return np.where(c, x, y)


# -- formulas: what the compiler generates for each op (`jitflow.ir.expr`); the kernels above stay the
# reference, and also report errors (an integer division by zero makes a compiled kernel fall back to them).


def _is_int(x: Any) -> bool:
    return E.dtype_name(x) in E.INT


def _truncate_div(x: Any, y: Any) -> Any:
    if _is_int(x):
        q = builtins.abs(x) // builtins.abs(y)
        return E.where((x < 0) != (y < 0), -q, q)
    return E.trunc(x / y)


def _floor_div(x: Any, y: Any) -> Any:
    return x // y if _is_int(x) else E.floor(x / y)


def _floor_mod(x: Any, y: Any) -> Any:
    if _is_int(x):
        return x % y
    # NumPy's float mod: fmod, then moved to the divisor's sign; y == 0 gives nan
    r = E.call("fmod", x, y)
    return E.where((r != 0) & ((r < 0) != (y < 0)), r + y, E.where(r == 0, E.call("copysign", 0, y), r))


def _sign_formula(x: Any) -> Any:
    if E.dtype_name(x).startswith("u"):
        return E.where(x > 0, 1, x)
    return E.where(x > 0, 1, E.where(x < 0, -1, x))


def _reciprocal_formula(x: Any) -> Any:
    return 1 // x if _is_int(x) else 1 / x


def _ufunc(name: str) -> Elementwise:
    return Elementwise(lambda x: E.call(name, x), E.FLOAT)


_N, _F, _B, _S = E.NUMERIC, E.FLOAT, ("bool",), E.SUPPORTED
LOWERING: dict[str, Elementwise] = {
    "AddV2": Elementwise(lambda x, y: x + y, _N), "Add": Elementwise(lambda x, y: x + y, _N),
    "Sub": Elementwise(lambda x, y: x - y, _N), "Mul": Elementwise(lambda x, y: x * y, _N),
    "RealDiv": Elementwise(lambda x, y: x / y, _F), "TruncateDiv": Elementwise(_truncate_div, _N),
    "FloorDiv": Elementwise(_floor_div, _N), "FloorMod": Elementwise(_floor_mod, _N),
    "Div": Elementwise(lambda x, y: _floor_div(x, y) if _is_int(x) else x / y, _N),
    "Pow": Elementwise(lambda x, y: x ** y, _N),
    "Maximum": Elementwise(E.maximum, _N), "Minimum": Elementwise(E.minimum, _N),
    "SquaredDifference": Elementwise(lambda x, y: (x - y) * (x - y), _N),
    "Neg": Elementwise(lambda x: -x, _N), "Abs": Elementwise(lambda x: builtins.abs(x), _N),
    "Square": Elementwise(lambda x: x * x, _N), "Sign": Elementwise(_sign_formula, _N),
    "Reciprocal": Elementwise(_reciprocal_formula, _N), "Inv": Elementwise(_reciprocal_formula, _N),
    "Rsqrt": Elementwise(lambda x: 1 / E.sqrt(x), _F), "Round": _ufunc("rint"),
    **{t: _ufunc(t.lower()) for t in ("Sqrt", "Exp", "Log", "Log1p", "Expm1", "Sin", "Cos", "Tan", "Tanh",
                                      "Sigmoid", "Floor", "Ceil", "Sinh", "Cosh")},
    "Asin": _ufunc("arcsin"), "Acos": _ufunc("arccos"), "Atan": _ufunc("arctan"),
    "Equal": Elementwise(lambda x, y: x == y, _S), "NotEqual": Elementwise(lambda x, y: x != y, _S),
    "Less": Elementwise(lambda x, y: x < y, _S), "LessEqual": Elementwise(lambda x, y: x <= y, _S),
    "Greater": Elementwise(lambda x, y: x > y, _S), "GreaterEqual": Elementwise(lambda x, y: x >= y, _S),
    "LogicalAnd": Elementwise(lambda x, y: x & y, _B), "LogicalOr": Elementwise(lambda x, y: x | y, _B),
    "LogicalNot": Elementwise(lambda x: ~x, _B), "IsNan": Elementwise(E.isnan, _F),
    "IsInf": _ufunc("isinf"), "IsFinite": _ufunc("isfinite"),
}


def _div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _floordiv(x, y) if x.dtype.kind in "iu" else np.true_divide(x, y)


_BINARY: dict[str, Callable[..., Any]] = {
    "AddV2": np.add, "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": _realdiv,
    "Div": _div, "FloorDiv": _floordiv, "FloorMod": _floormod, "TruncateDiv": _truncatediv,
    "Pow": _pow, "Maximum": np.maximum, "Minimum": np.minimum, "SquaredDifference": _squared_difference,
}
_UNARY: dict[str, Callable[..., Any]] = {
    "Neg": np.negative, "Abs": np.abs, "Sign": _sign, "Square": np.square, "Sqrt": np.sqrt, "Rsqrt": _rsqrt,
    "Exp": np.exp, "Log": np.log, "Log1p": np.log1p, "Expm1": np.expm1, "Sin": np.sin, "Cos": np.cos,
    "Tan": np.tan, "Tanh": np.tanh, "Sigmoid": _sigmoid, "Floor": np.floor, "Ceil": np.ceil,
    "Round": np.round, "Reciprocal": _reciprocal, "Inv": _reciprocal, "Asin": np.arcsin,
    "Acos": np.arccos, "Atan": np.arctan, "Sinh": np.sinh, "Cosh": np.cosh,
}
_COMPARE = {"Equal": np.equal, "NotEqual": np.not_equal, "Less": np.less, "LessEqual": np.less_equal,
            "Greater": np.greater, "GreaterEqual": np.greater_equal}
_LOGICAL = {"LogicalAnd": np.logical_and, "LogicalOr": np.logical_or}


for _t, _f in _BINARY.items():
    register_elementwise(_t, _f, lowering=LOWERING.get(_t))
for _t, _f in _UNARY.items():
    register_elementwise(_t, _f, lowering=LOWERING.get(_t))
for _t, _f in _COMPARE.items():
    register_elementwise(_t, _f, dtypes.bool, not_differentiable=True, lowering=LOWERING.get(_t))
for _t, _f in _LOGICAL.items():
    register_elementwise(_t, _f, dtypes.bool, not_differentiable=True, lowering=LOWERING.get(_t))
register_elementwise("LogicalNot", np.logical_not, dtypes.bool, not_differentiable=True,
                     lowering=LOWERING["LogicalNot"])
register_elementwise("IsNan", np.isnan, dtypes.bool, not_differentiable=True, lowering=LOWERING["IsNan"])
register_elementwise("IsInf", np.isinf, dtypes.bool, not_differentiable=True, lowering=LOWERING["IsInf"])
register_elementwise("IsFinite", np.isfinite, dtypes.bool, not_differentiable=True,
                     lowering=LOWERING["IsFinite"])


def _select_infer(op: Operation) -> list:
    if op.inputs[0].shape.ndims == 1 and (op.inputs[1].shape.ndims or 0) > 1:  # a vector picking rows
        return elementwise_infer()(typing.cast(Operation, _FakeOp(op, op.inputs[1:])))
    return [(op.inputs[1].dtype, elementwise_infer()(op)[0][1])]


class _FakeOp:
    """A view of an op with a subset of its inputs, for reusing shape functions."""

    def __init__(self, op: Operation, inputs: Sequence[Tensor]) -> None:
        self.inputs = list(inputs)
        self.type = op.type
        self.name = op.name


def _select_refusal(op: Operation) -> str | None:
    """Why a Select is not fused: a vector condition picking rows, or a condition of unknown rank."""
    if op.inputs[0].shape.ndims == 1 and (op.inputs[1].shape.ndims or 0) > 1:
        return "Select with a vector condition picks rows (interpreted)"
    if op.inputs[0].shape.ndims is None:
        return "Select with a condition of unknown rank"
    return None


_SELECT = Elementwise(E.where, ("bool",), shape_check=lambda s: s[0] == s[1] == s[2] or len(s[0]) == 0,
                      refuse=_select_refusal)
registry.register_op("Select", _select_infer, lambda ctx, op, ins: _select(*ins), registry.ELEMENTWISE,
                     lowering=_SELECT)
registry.register_op("SelectV2", lambda op: [(op.inputs[1].dtype, elementwise_infer()(op)[0][1])],
                     lambda ctx, op, ins: np.where(*ins), registry.ELEMENTWISE,
                     lowering=Elementwise(E.where, ("bool",)))  # SelectV2 broadcasts like any elementwise op


def _cast_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = ins[0]
    dst = op.attrs["DstT"].np
    if x.dtype.kind == "f" and dst.kind in "iu":
        # C casts saturate differently per platform; TF keeps finite values truncated toward zero.
        return np.trunc(x).astype(dst)
    return np.asarray(x).astype(dst)


def _cast(x: Any, DstT: Any) -> Any:  # noqa: N803 - TF's attr name
    dst = E.as_dtype_name(DstT)
    if dst == "bool":
        return x != 0
    if E.dtype_name(x) in E.FLOAT and dst in E.INT:
        return E.cast(E.trunc(x), dst)  # toward zero, as the kernel above
    return E.cast(x, dst)


registry.register_op("Cast", lambda op: [(op.attrs["DstT"], op.inputs[0].shape)], _cast_kernel,
                     registry.ELEMENTWISE, lowering=Elementwise(_cast, E.SUPPORTED, ("DstT",)))


def _addn_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    acc = ins[0].copy() if isinstance(ins[0], np.ndarray) else np.asarray(ins[0])
    for x in ins[1:]:
        acc = acc + x
    return acc


def _addn_infer(op: Operation) -> list:
    shape = op.inputs[0].shape
    for t in op.inputs[1:]:
        if not shape.is_compatible_with(t.shape):
            raise ValueError(f"Shapes must be equal rank, but are {shape} and {t.shape} for '{op.name}' "
                             f"(op: 'AddN')")
        shape = shape.merge_with(t.shape)
    return [(op.inputs[0].dtype, shape)]


def _addn(*xs: Any) -> Any:
    acc = xs[0]
    for x in xs[1:]:
        acc = acc + x  # left to right, each sum in the output dtype
    return acc


registry.register_op("AddN", _addn_infer, _addn_kernel, registry.ELEMENTWISE,
                     lowering=Elementwise(_addn, E.NUMERIC, shape_check=lambda s: all(x == s[0] for x in s)))

# -- public constructors -------------------------------------------------------------------------------


def _binary(op_type: str, x: Any, y: Any, name: str | None) -> Tensor:
    a, b = same_dtype_inputs(op_type, [x, y])
    return out(make_op(op_type, [a, b], {"T": a.dtype}, name=name or op_type))


def _unary(op_type: str, x: Any, name: str | None, allowed: Sequence[dtypes.DType] | None = None) -> Tensor:
    t = convert_to_tensor(x)
    if allowed is not None:
        check_dtype(op_type, t, allowed)
    return out(make_op(op_type, [t], {"T": t.dtype}, name=name or op_type))


def add(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x + y elementwise, with broadcasting."""
    a, b = same_dtype_inputs("AddV2", [x, y])
    if a.dtype is dtypes.string:
        return out(make_op("Add", [a, b], {"T": a.dtype}, name=name or "Add"))
    return out(make_op("AddV2", [a, b], {"T": a.dtype}, name=name or "Add"))


def subtract(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Sub", x, y, name)


def multiply(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Mul", x, y, name)


def truediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y; integers are first cast to floats (int8/16 → float32, int32/64 → float64), as in TF."""
    a, b = same_dtype_inputs("RealDiv", [x, y])
    if a.dtype.is_integer:
        target = dtypes.float32 if a.dtype.size <= 2 else dtypes.float64
        a, b = cast(a, target), cast(b, target)
    return out(make_op("RealDiv", [a, b], {"T": a.dtype}, name=name or "truediv"))


def divide(x: Any, y: Any, name: str | None = None) -> Tensor:
    return truediv(x, y, name=name or "truediv")


def div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1 `div`: floor division for integers, true division for floats."""
    return _binary("Div", x, y, name or "div")


def floordiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("FloorDiv", x, y, name or "floordiv")


def floormod(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("FloorMod", x, y, name or "FloorMod")


mod = floormod


def truncatediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("TruncateDiv", x, y, name)


def realdiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("RealDiv", x, y, name)


def pow(x: Any, y: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF's name
    return _binary("Pow", x, y, name)


def maximum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Maximum", x, y, name)


def minimum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Minimum", x, y, name)


def squared_difference(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("SquaredDifference", x, y, name)


def negative(x: Any, name: str | None = None) -> Tensor:
    return _unary("Neg", x, name)


def abs(x: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF's name
    return _unary("Abs", x, name)


def sign(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sign", x, name)


def square(x: Any, name: str | None = None) -> Tensor:
    return _unary("Square", x, name)


def _float_unary(op_type: str):  # type: ignore[no-untyped-def]
    def fn(x: Any, name: str | None = None) -> Tensor:
        return _unary(op_type, x, name, FLOATS + (dtypes.complex64, dtypes.complex128))

    fn.__name__ = op_type.lower()
    fn.__doc__ = f"Elementwise {op_type} of a floating-point tensor."
    return fn


sqrt = _float_unary("Sqrt")
rsqrt = _float_unary("Rsqrt")
exp = _float_unary("Exp")
log = _float_unary("Log")
log1p = _float_unary("Log1p")
expm1 = _float_unary("Expm1")
sin = _float_unary("Sin")
cos = _float_unary("Cos")
tan = _float_unary("Tan")
asin = _float_unary("Asin")
acos = _float_unary("Acos")
atan = _float_unary("Atan")
sinh = _float_unary("Sinh")
cosh = _float_unary("Cosh")
tanh = _float_unary("Tanh")
sigmoid = _float_unary("Sigmoid")
floor = _float_unary("Floor")
ceil = _float_unary("Ceil")
is_nan = _float_unary("IsNan")
is_inf = _float_unary("IsInf")
is_finite = _float_unary("IsFinite")


def round(x: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF's name
    """Rounds half to even, like TF."""
    t = convert_to_tensor(x)
    if t.dtype.is_integer:
        return t
    return _unary("Round", t, name)


def reciprocal(x: Any, name: str | None = None) -> Tensor:
    return _unary("Reciprocal", x, name)


def _compare(op_type: str):  # type: ignore[no-untyped-def]
    def fn(x: Any, y: Any, name: str | None = None) -> Tensor:
        return _binary(op_type, x, y, name)

    fn.__name__ = op_type.lower()
    fn.__doc__ = f"Elementwise {op_type} comparison (a bool tensor)."
    return fn


equal = _compare("Equal")
not_equal = _compare("NotEqual")
less = _compare("Less")
less_equal = _compare("LessEqual")
greater = _compare("Greater")
greater_equal = _compare("GreaterEqual")


def logical_and(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("LogicalAnd", x, y, name)


def logical_or(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("LogicalOr", x, y, name)


def logical_not(x: Any, name: str | None = None) -> Tensor:
    return _unary("LogicalNot", x, name, (dtypes.bool,))


def logical_xor(x: Any, y: Any, name: str = "LogicalXor") -> Tensor:
    with _name_scope(name):
        return logical_and(logical_or(x, y), logical_not(logical_and(x, y)))


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    """Casts to `dtype` (floats to ints truncate toward zero)."""
    dt = dtypes.as_dtype(dtype)
    t = convert_to_tensor(x)
    if t.dtype is dt:
        return t
    return out(make_op("Cast", [t], {"SrcT": t.dtype, "DstT": dt}, name=name or "Cast"))


def to_float(x: Any, name: str = "ToFloat") -> Tensor:
    return cast(x, dtypes.float32, name)


def to_int32(x: Any, name: str = "ToInt32") -> Tensor:
    return cast(x, dtypes.int32, name)


def to_int64(x: Any, name: str = "ToInt64") -> Tensor:
    return cast(x, dtypes.int64, name)


def to_double(x: Any, name: str = "ToDouble") -> Tensor:
    return cast(x, dtypes.float64, name)


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    """TF1 `where`: elementwise select (x, y given; vector condition selects rows), else indices."""
    c = convert_to_tensor(condition)
    if c.dtype is not dtypes.bool:
        raise TypeError(f"Value passed to parameter 'condition' has DataType {c.dtype.name} not in list "
                        "of allowed values: bool")
    if x is None and y is None:
        return out(make_op("Where", [c], {}, name=name or "Where"))
    if x is None or y is None:
        raise ValueError("x and y must both be non-None or both be None.")
    a, b = same_dtype_inputs("Select", [x, y], ("t", "e"))
    return out(make_op("Select", [c, a, b], {"T": a.dtype}, name=name or "Select"))


select = where


def where_v2(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    if x is None and y is None:
        return where(condition, name=name)
    c = convert_to_tensor(condition)
    a, b = same_dtype_inputs("SelectV2", [x, y], ("t", "e"))
    return out(make_op("SelectV2", [c, a, b], {"T": a.dtype}, name=name or "SelectV2"))


registry.register_op("Where", lambda op: [(dtypes.int64, TensorShape([None, op.inputs[0].shape.ndims]))],
                     lambda ctx, op, ins: np.argwhere(ins[0]).astype(np.int64), registry.OPAQUE,
                     not_differentiable=True)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any, name: str | None = None) -> Tensor:
    """min(max(t, lo), hi), elementwise."""
    with _name_scope(name, "clip_by_value"):
        x = convert_to_tensor(t)
        return maximum(minimum(x, clip_value_max), clip_value_min)


def add_n(inputs: Sequence[Any], name: str | None = None) -> Tensor:
    """Sum of a list of same-shape tensors."""
    if not inputs:
        raise ValueError("inputs must be a list of at least one Tensor with the same dtype and shape")
    ts = same_dtype_inputs("AddN", list(inputs), ("inputs",))
    if len(ts) == 1 and name is None:
        return ts[0]
    return out(make_op("AddN", ts, {"N": len(ts), "T": ts[0].dtype}, name=name or "AddN"))


# -- reductions ------------------------------------------------------------------------------------------


def _norm_axes(axis: Any, ndims: int | None, op_name: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, Tensor):
        from jitflow.ops.op_util import const_value

        v = const_value(axis)
        if v is None:
            raise ValueError(f"{op_name}: the reduction axis must be known when the graph is built")
        axis = v
    axes = np.atleast_1d(np.asarray(axis)).astype(np.int64).tolist()
    if ndims is not None:
        norm = []
        for a in axes:
            if not -ndims <= a < builtins.max(ndims, 1):
                raise ValueError(f"Invalid reduction dimension {a} for input with {ndims} dimensions. "
                                 f"for '{op_name}'")
            norm.append(a % ndims if ndims else 0)
        return tuple(sorted(set(norm)))
    return tuple(axes)


def _reduce_infer(op: Operation) -> list:
    x = op.inputs[0]
    axes = op.attrs["axis"]
    keep = op.attrs["keep_dims"]
    dt = op.attrs.get("out_type", x.dtype)
    dims = x.shape.as_tuple()
    if dims is None:
        return [(dt, TensorShape(None))]
    if axes is None:
        return [(dt, TensorShape([1] * len(dims) if keep else []))]
    if builtins.any(a < 0 for a in axes):
        return [(dt, TensorShape(None))]
    res = [1 if i in axes else d for i, d in enumerate(dims)] if keep else \
        [d for i, d in enumerate(dims) if i not in axes]
    return [(dt, TensorShape(res))]


def _axes_runtime(op: Operation, x: np.ndarray) -> tuple[int, ...] | None:
    axes = op.attrs["axis"]
    if axes is None or x.ndim == 0:
        return None
    return tuple(sorted({a % x.ndim for a in axes}))


def _mean(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    if x.dtype.kind in "iu":
        n = x.size if axis is None else int(np.prod([x.shape[a] for a in axis]))
        s = np.sum(x, axis=axis, keepdims=keepdims, dtype=np.int64)
        return (s // builtins.max(n, 1) if n else s).astype(x.dtype)
    return np.mean(x, axis=axis, keepdims=keepdims, dtype=x.dtype)


def _reduction_kernel(fn: Any):  # type: ignore[no-untyped-def]
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        x = ins[0]
        axes = _axes_runtime(op, x)
        r = fn(x, axes, op.attrs["keep_dims"])
        return np.asarray(r, dtype=op.outputs[0].dtype.np)

    return kernel


def _np_reduce(ufunc_name: str):  # type: ignore[no-untyped-def]
    f = getattr(np, ufunc_name)
    if ufunc_name in ("max", "min"):
        def g(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
            if x.size == 0:
                ident = (-np.inf if ufunc_name == "max" else np.inf) if x.dtype.kind == "f" else \
                    (np.iinfo(x.dtype).min if ufunc_name == "max" else np.iinfo(x.dtype).max)
                return f(x, axis=axis, keepdims=keepdims, initial=ident)
            return f(x, axis=axis, keepdims=keepdims)
        return g
    if ufunc_name in ("sum", "prod"):
        return lambda x, axis, keepdims: f(x, axis=axis, keepdims=keepdims, dtype=x.dtype)
    return lambda x, axis, keepdims: f(x, axis=axis, keepdims=keepdims)


_REDUCTIONS = {"Sum": _np_reduce("sum"), "Mean": _mean, "Max": _np_reduce("max"), "Min": _np_reduce("min"),
               "Prod": _np_reduce("prod"), "All": _np_reduce("all"), "Any": _np_reduce("any")}
# How the compiler accumulates each reduction (`jitflow.ir.formula.Reduction`).
_REDUCE_LOWERING = {
    "Sum": formula.SUM,
    "Mean": formula.Reduction(E.NUMERIC, formula.wide, lambda dt: 0, "{acc} + {v}", mean=True),
    "Prod": formula.Reduction(E.NUMERIC, formula.wide, lambda dt: 1, "{acc} * {v}"),
    "Max": formula.Reduction(E.NUMERIC, lambda dt: dt, formula.extreme(-1),
                             "({v} if ({v} > {acc} or {v} != {v}) else {acc})"),
    "Min": formula.Reduction(E.NUMERIC, lambda dt: dt, formula.extreme(1),
                             "({v} if ({v} < {acc} or {v} != {v}) else {acc})"),
    "All": formula.Reduction(("bool",), lambda dt: "bool", lambda dt: True, "({acc} & {v})"),
    "Any": formula.Reduction(("bool",), lambda dt: "bool", lambda dt: False, "({acc} | {v})"),
}
for _t, _f in _REDUCTIONS.items():
    registry.register_op(_t, _reduce_infer, _reduction_kernel(_f), registry.REDUCTION,
                         not_differentiable=_t in ("All", "Any"), lowering=_REDUCE_LOWERING[_t])


def _reduce(op_type: str, input_tensor: Any, axis: Any, keepdims: Any, name: str | None,
            reduction_indices: Any = None, keep_dims: Any = None, default_name: str = "") -> Tensor:
    if axis is None:
        axis = reduction_indices
    if keepdims is None:
        keepdims = bool(keep_dims) if keep_dims is not None else False
    x = convert_to_tensor(input_tensor)
    if op_type in ("All", "Any") and x.dtype is not dtypes.bool:
        raise TypeError(f"Value passed to parameter 'input' has DataType {x.dtype.name} not in list of "
                        "allowed values: bool")
    axes = _norm_axes(axis, x.shape.ndims, name or op_type)
    return out(make_op(op_type, [x], {"axis": axes, "keep_dims": bool(keepdims), "T": x.dtype},
                       name=name or default_name or op_type))


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    """Sum over `axis` (all axes if None)."""
    return _reduce("Sum", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_mean(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
                reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    """Mean over `axis` (integer inputs use integer division, as in TF)."""
    return _reduce("Mean", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_max(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Max", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_min(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Min", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_prod(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
                reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Prod", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_all(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("All", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_any(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    return _reduce("Any", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_logsumexp(input_tensor: Any, axis: Any = None, keepdims: Any = None, name: str | None = None,
                     reduction_indices: Any = None, keep_dims: Any = None) -> Tensor:
    """log(sum(exp(x))) computed stably: max + log(sum(exp(x - max)))."""
    if keepdims is None:
        keepdims = bool(keep_dims) if keep_dims is not None else False
    if axis is None:
        axis = reduction_indices
    with _name_scope(name, "ReduceLogSumExp"):
        from jitflow.ops.array_ops import stop_gradient

        x = convert_to_tensor(input_tensor)
        m = stop_gradient(reduce_max(x, axis, keepdims=True))
        m = where_v2(is_finite(m), m, zeros_like_(m))
        s = log(reduce_sum(exp(subtract(x, m)), axis, keepdims=True)) + m
        if not keepdims:
            axes = _norm_axes(axis, x.shape.ndims, "ReduceLogSumExp")
            from jitflow.ops.array_ops import squeeze

            s = squeeze(s, axis=list(axes) if axes is not None else None)
        return s


def zeros_like_(t: Tensor) -> Tensor:
    from jitflow.ops.array_ops import zeros_like

    return zeros_like(t)


def _arg_infer(op: Operation) -> list:
    x = op.inputs[0]
    dims = x.shape.as_tuple()
    a = op.attrs["axis"]
    if dims is None:
        return [(op.attrs["output_type"], TensorShape(None))]
    return [(op.attrs["output_type"], TensorShape([d for i, d in enumerate(dims) if i != a % len(dims)]))]


def _arg_kernel(fn: Any):  # type: ignore[no-untyped-def]
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        x = ins[0]
        if x.shape[op.attrs["axis"]] == 0:
            raise InvalidArgumentError(None, None, "Reduction axis is empty in ArgMax/ArgMin")
        return fn(x, axis=op.attrs["axis"]).astype(op.attrs["output_type"].np)

    return kernel


registry.register_op("ArgMax", _arg_infer, _arg_kernel(np.argmax), registry.OPAQUE, not_differentiable=True)
registry.register_op("ArgMin", _arg_infer, _arg_kernel(np.argmin), registry.OPAQUE, not_differentiable=True)


def _arg(op_type: str, input: Any, axis: Any, name: str | None, dimension: Any,
         output_type: Any) -> Tensor:
    if axis is None:
        axis = dimension if dimension is not None else 0
    x = convert_to_tensor(input)
    ax = _norm_axes(axis, x.shape.ndims, op_type)
    assert ax is not None
    return out(make_op(op_type, [x], {"axis": ax[0], "output_type": dtypes.as_dtype(output_type),
                                      "T": x.dtype}, name=name or op_type))


def argmax(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = dtypes.int64) -> Tensor:
    return _arg("ArgMax", input, axis, name, dimension, output_type)


def argmin(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = dtypes.int64) -> Tensor:
    return _arg("ArgMin", input, axis, name, dimension, output_type)


# -- matmul ------------------------------------------------------------------------------------------------


def _matmul_infer(op: Operation) -> list:
    a, b = op.inputs
    ta, tb = op.attrs.get("transpose_a", False), op.attrs.get("transpose_b", False)
    da, db = a.shape.as_tuple(), b.shape.as_tuple()
    if da is None or db is None:
        return [(a.dtype, TensorShape([None, None]))]
    if len(da) != 2 or len(db) != 2:
        raise ValueError(f"Shape must be rank 2 but is rank {len(da) if len(da) != 2 else len(db)} for "
                         f"'{op.name}' (op: 'MatMul') with input shapes: {a.shape}, {b.shape}.")
    m, ka = (da[1], da[0]) if ta else (da[0], da[1])
    kb, n = (db[1], db[0]) if tb else (db[0], db[1])
    if ka is not None and kb is not None and ka != kb:
        raise ValueError(f"Dimensions must be equal, but are {ka} and {kb} for '{op.name}' (op: 'MatMul') "
                         f"with input shapes: {list(da)}, {list(db)}.")
    return [(a.dtype, TensorShape([m, n]))]


def _matmul_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    a, b = ins
    if op.attrs.get("transpose_a"):
        a = a.T
    if op.attrs.get("transpose_b"):
        b = b.T
    if a.shape[1] != b.shape[0]:
        raise InvalidArgumentError(None, None, f"Matrix size-incompatible: In[0]: {list(a.shape)}, "
                                               f"In[1]: {list(b.shape)}")
    return np.matmul(a, b)


registry.register_op("MatMul", _matmul_infer, _matmul_kernel, registry.OPAQUE, library="blas")


def _bmm_infer(op: Operation) -> list:
    a, b = op.inputs
    da, db = a.shape.as_tuple(), b.shape.as_tuple()
    if da is None or db is None:
        return [(a.dtype, TensorShape(None))]
    if len(da) < 2 or len(db) < 2:
        raise ValueError(f"In[0] and In[1] must have rank >= 2 for '{op.name}'")
    ax, ay = op.attrs.get("adj_x", False), op.attrs.get("adj_y", False)
    m, ka = (da[-1], da[-2]) if ax else (da[-2], da[-1])
    kb, n = (db[-1], db[-2]) if ay else (db[-2], db[-1])
    if ka is not None and kb is not None and ka != kb:
        raise ValueError(f"Dimensions must be equal, but are {ka} and {kb} for '{op.name}' (op: "
                         f"'BatchMatMulV2') with input shapes: {list(da)}, {list(db)}.")
    from jitflow.ops.op_util import broadcast_shapes

    batch = broadcast_shapes(TensorShape(da[:-2]), TensorShape(db[:-2]), op.type, op.name)
    return [(a.dtype, batch.concatenate([m, n]))]


def _bmm_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    a, b = ins
    if op.attrs.get("adj_x"):
        a = np.swapaxes(a, -1, -2)
    if op.attrs.get("adj_y"):
        b = np.swapaxes(b, -1, -2)
    try:
        return np.matmul(a, b)
    except ValueError:
        raise InvalidArgumentError(None, None, f"Matrix size-incompatible: In[0]: {list(a.shape)}, "
                                               f"In[1]: {list(b.shape)}") from None


registry.register_op("BatchMatMulV2", _bmm_infer, _bmm_kernel, registry.OPAQUE)


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False, adjoint_a: bool = False,
           adjoint_b: bool = False, a_is_sparse: bool = False, b_is_sparse: bool = False,
           name: str | None = None) -> Tensor:
    """Matrix product; rank > 2 inputs are batched."""
    x, y = same_dtype_inputs("MatMul", [a, b], ("a", "b"))
    ta, tb = transpose_a or adjoint_a, transpose_b or adjoint_b
    rx, ry = x.shape.ndims, y.shape.ndims
    if (rx is not None and rx > 2) or (ry is not None and ry > 2):
        return out(make_op("BatchMatMulV2", [x, y], {"adj_x": ta, "adj_y": tb, "T": x.dtype},
                           name=name or "MatMul"))
    return out(make_op("MatMul", [x, y], {"transpose_a": ta, "transpose_b": tb, "T": x.dtype},
                       name=name or "MatMul"))


# -- Python operators on tensors -------------------------------------------------------------------------


def _install_operators(cls: Any) -> None:
    """Gives `cls` (Tensor, Variable) TF's Python operators."""

    def binop(fn: Any, opname: str, reverse: bool = False):  # type: ignore[no-untyped-def]
        def method(self: Any, other: Any) -> Tensor:
            x, y = (other, self) if reverse else (self, other)
            a, b = _operands(x, y, self)
            return fn(a, b, name=opname)
        return method

    pairs = {"add": add, "sub": subtract, "mul": multiply, "truediv": truediv, "floordiv": floordiv,
             "mod": floormod, "pow": pow, "matmul": matmul}
    for key, fn in pairs.items():
        setattr(cls, f"__{key}__", binop(fn, key))
        setattr(cls, f"__r{key}__", binop(fn, key, reverse=True))
    cls.__div__ = cls.__truediv__  # type: ignore[attr-defined]
    for key, fn in {"lt": less, "le": less_equal, "gt": greater, "ge": greater_equal}.items():
        setattr(cls, f"__{key}__", binop(fn, {"lt": "Less", "le": "LessEqual", "gt": "Greater",
                                              "ge": "GreaterEqual"}[key]))
    cls.__and__ = binop(logical_and, "and")
    cls.__rand__ = binop(logical_and, "and", reverse=True)
    cls.__or__ = binop(logical_or, "or")
    cls.__ror__ = binop(logical_or, "or", reverse=True)
    cls.__xor__ = binop(logical_xor, "xor")
    cls.__neg__ = lambda self: negative(self, name="Neg")
    cls.__abs__ = lambda self: abs(self, name="Abs")
    cls.__invert__ = lambda self: logical_not(self, name="Invert")
    cls.__pos__ = lambda self: self

    def getitem(self: Any, key: Any) -> Tensor:
        from jitflow.ops.array_ops import _slice_helper

        return _slice_helper(convert_to_tensor(self), key)

    cls.__getitem__ = getitem


def _operands(x: Any, y: Any, self_: Any) -> tuple[Tensor, Tensor]:
    """Converts the two operands; the Python one takes the tensor's dtype."""
    me = convert_to_tensor(self_)
    conv = []
    for v in (x, y):
        if v is self_:
            conv.append(me)
        elif isinstance(v, Tensor) or hasattr(v, "_as_tensor"):
            conv.append(convert_to_tensor(v))
        else:
            try:
                conv.append(convert_to_tensor(v, dtype=me.dtype))
            except (TypeError, ValueError) as e:
                raise TypeError(f"Cannot convert {v!r} to EagerTensor of dtype {me.dtype.name}: {e}") \
                    from None
    return conv[0], conv[1]


_install_operators(Tensor)


# -- scans and friends ---------------------------------------------------------------------------------------


def _cumsum_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = ins[0]
    axis = op.attrs["axis"] % builtins.max(x.ndim, 1)
    fn = np.cumsum if op.type == "Cumsum" else np.cumprod
    if op.attrs["reverse"]:
        x = np.flip(x, axis)
    r = fn(x, axis=axis, dtype=x.dtype)
    if op.attrs["exclusive"]:
        ident = 0 if op.type == "Cumsum" else 1
        r = np.concatenate([np.full_like(np.take(r, [0], axis=axis), ident), np.delete(r, -1, axis=axis)], axis)
    if op.attrs["reverse"]:
        r = np.flip(r, axis)
    return np.ascontiguousarray(r)


for _t in ("Cumsum", "Cumprod"):
    registry.register_op(_t, lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)], _cumsum_kernel, registry.OPAQUE)


def _scan(op_type: str, x: Any, axis: int, exclusive: bool, reverse: bool, name: str | None) -> Tensor:
    t = convert_to_tensor(x)
    nd = t.shape.ndims
    if nd is not None and not -builtins.max(nd, 1) <= int(axis) < builtins.max(nd, 1):
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {nd}")
    return out(make_op(op_type, [t], {"axis": int(axis), "exclusive": bool(exclusive), "reverse": bool(reverse),
                                      "T": t.dtype}, name=name or op_type))


def cumsum(x: Any, axis: int = 0, exclusive: bool = False, reverse: bool = False, name: str | None = None) -> Tensor:
    """Cumulative sum along `axis` (optionally exclusive and/or reversed)."""
    return _scan("Cumsum", x, axis, exclusive, reverse, name)


def cumprod(x: Any, axis: int = 0, exclusive: bool = False, reverse: bool = False, name: str | None = None) -> Tensor:
    """Cumulative product along `axis` (optionally exclusive and/or reversed)."""
    return _scan("Cumprod", x, axis, exclusive, reverse, name)


def count_nonzero(input_tensor: Any = None, axis: Any = None, keepdims: Any = None, dtype: Any = dtypes.int64,
                  name: str | None = None, reduction_indices: Any = None, keep_dims: Any = None,
                  input: Any = None) -> Tensor:  # noqa: A002 - TF's name
    """Number of non-zero entries along `axis`."""
    x = convert_to_tensor(input_tensor if input_tensor is not None else input)
    with _name_scope(name, "count_nonzero"):
        from jitflow.ops.array_ops import zeros_like

        nz = cast(not_equal(x, zeros_like(x)), dtypes.int64)
        return cast(reduce_sum(nz, axis, keepdims, reduction_indices=reduction_indices, keep_dims=keep_dims),
                    dtype)


def norm(tensor: Any, ord: Any = "euclidean", axis: Any = None, keepdims: Any = None,  # noqa: A002
         name: str | None = None, keep_dims: Any = None) -> Tensor:
    """Vector norms: 'euclidean'/2, 1 or inf over `axis` (all entries if None)."""
    x = convert_to_tensor(tensor)
    with _name_scope(name, "norm"):
        if ord in ("euclidean", "fro", 2, 2.0):
            return sqrt(reduce_sum(square(x), axis, keepdims, keep_dims=keep_dims))
        if ord in (1, 1.0):
            return reduce_sum(abs(x), axis, keepdims, keep_dims=keep_dims)
        if ord == np.inf:
            return reduce_max(abs(x), axis, keepdims, keep_dims=keep_dims)
        raise ValueError(f"'ord' must be a supported vector norm, got {ord}")


def reduce_euclidean_norm(input_tensor: Any, axis: Any = None, keepdims: bool = False,
                          name: str | None = None) -> Tensor:
    return norm(input_tensor, "euclidean", axis, keepdims, name=name or "reduce_euclidean_norm")


def _eye_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    return np.eye(op.attrs["num_rows"], op.attrs["num_columns"], dtype=op.attrs["dtype"].np)


def _eye_infer(op: Operation) -> list:
    return [(op.attrs["dtype"], TensorShape([op.attrs["num_rows"], op.attrs["num_columns"]]))]


registry.register_op("Eye", _eye_infer, _eye_kernel, registry.SOURCE, not_differentiable=True)


def eye(num_rows: int, num_columns: int | None = None, batch_shape: Any = None, dtype: Any = dtypes.float32,
        name: str | None = None) -> Tensor:
    """An identity matrix (ones on the diagonal)."""
    if batch_shape is not None:
        raise ValueError("eye: batch_shape is not supported")
    from jitflow.framework.graph import get_default_graph

    rows = int(num_rows)
    cols = rows if num_columns is None else int(num_columns)
    if rows < 0 or cols < 0:
        raise ValueError(f"eye: sizes must be non-negative, got {rows} x {cols}")
    return out(get_default_graph().create_op("Eye", [], {"num_rows": rows, "num_columns": cols,
                                                         "dtype": dtypes.as_dtype(dtype)}, name=name or "eye"))
