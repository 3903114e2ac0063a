"""Scalar expressions: the formula of an elementwise op, written once, evaluated or rendered.

An op's formula is a Python function over its inputs built from arithmetic, comparisons and the
functions of this module (`where`, `maximum`, `exp`, `sigmoid`, ...). Called with NumPy arrays it
computes the op (the reference kernel); called with `Sym`s it records an expression tree, which a
backend renders into source through a `Dialect` (the CPU and CUDA generators each have one)::

    def softplus(x):
        return maximum(x, 0) + log1p(exp(-abs(x)))

Every `Sym` carries a NumPy dtype name; arithmetic keeps the dtype of its left operand (formulas
combine values of one dtype), comparisons give ``"bool"``, `cast` converts. Integer division,
modulo and negative integer powers make the op fail: rendering records those conditions as checks,
and a kernel whose check fires re-runs the cluster interpreted, which raises the op's error.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

FLOAT = ("float32", "float64")
INT = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC = FLOAT + INT
SUPPORTED = NUMERIC + ("bool",)

_BINARY = ("+", "-", "*", "/", "//", "%", "**")
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")


class Sym:
    """A symbolic scalar of dtype `dt`: operations on it record an expression tree.

    `op` is ``"arg"`` (an operand; `value` is its position), ``"const"`` (`value` is the number),
    a binary operator or comparison of `_BINARY`/`_COMPARE`, ``"neg"``, ``"abs"``, ``"and"``, ``"or"``,
    ``"not"``, ``"where"`` (condition, then, else), ``"cast"`` or ``"call"`` (`value` names the
    function, NumPy's name: ``"sqrt"``, ``"arcsin"``, ``"sigmoid"``, ...).
    """

    __slots__ = ("op", "args", "dt", "value")
    __array_priority__ = 1000  # NumPy scalars defer to Sym's reflected operators

    def __init__(self, op: str, args: tuple[Sym, ...], dt: str, value: Any = None) -> None:
        self.op = op
        self.args = args
        self.dt = dt
        self.value = value

    def _lift(self, other: Any) -> Sym:
        return other if isinstance(other, Sym) else constant(other, self.dt)

    def _bin(self, op: str, other: Any, rev: bool = False) -> Sym:
        a, b = self, self._lift(other)
        return Sym(op, (b, a) if rev else (a, b), self.dt)

    def _cmp(self, op: str, other: Any) -> Sym:
        return Sym(op, (self, self._lift(other)), "bool")

    def __add__(self, o: Any) -> Sym:
        return self._bin("+", o)

    def __radd__(self, o: Any) -> Sym:
        return self._bin("+", o, True)

    def __sub__(self, o: Any) -> Sym:
        return self._bin("-", o)

    def __rsub__(self, o: Any) -> Sym:
        return self._bin("-", o, True)

    def __mul__(self, o: Any) -> Sym:
        return self._bin("*", o)

    def __rmul__(self, o: Any) -> Sym:
        return self._bin("*", o, True)

    def __truediv__(self, o: Any) -> Sym:
        return self._bin("/", o)

    def __rtruediv__(self, o: Any) -> Sym:
        return self._bin("/", o, True)

    def __floordiv__(self, o: Any) -> Sym:
        return self._bin("//", o)

    def __rfloordiv__(self, o: Any) -> Sym:
        return self._bin("//", o, True)

    def __mod__(self, o: Any) -> Sym:
        return self._bin("%", o)

    def __pow__(self, o: Any) -> Sym:
        return self._bin("**", o)

    def __neg__(self) -> Sym:
        return Sym("neg", (self,), self.dt)

    def __abs__(self) -> Sym:
        return Sym("abs", (self,), self.dt)

    def __lt__(self, o: Any) -> Sym:
        return self._cmp("<", o)

    def __le__(self, o: Any) -> Sym:
        return self._cmp("<=", o)

    def __gt__(self, o: Any) -> Sym:
        return self._cmp(">", o)

    def __ge__(self, o: Any) -> Sym:
        return self._cmp(">=", o)

    def __eq__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("==", o)

    def __ne__(self, o: Any) -> Sym:  # type: ignore[override]
        return self._cmp("!=", o)

    def __and__(self, o: Any) -> Sym:
        return Sym("and", (self, self._lift(o)), "bool")

    def __or__(self, o: Any) -> Sym:
        return Sym("or", (self, self._lift(o)), "bool")

    def __invert__(self) -> Sym:
        return Sym("not", (self,), "bool")

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError("a formula cannot branch on a symbol: use where(cond, a, b)")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Sym:
        # np.sqrt(sym) and friends: formulas written with NumPy ufuncs trace too
        if method == "__call__" and len(inputs) == 1 and ufunc.__name__ in _FUNCTIONS:
            return call(ufunc.__name__, self)
        raise TypeError(f"formulas may not use {ufunc.__name__} on symbols")


def constant(value: float | int | bool, dt: str) -> Sym:
    """A typed literal (a bare Python float would promote float32 math to float64)."""
    return Sym("const", (), dt, value)


def arg(i: int, dt: str) -> Sym:
    """Operand `i` of a formula, of dtype `dt`."""
    return Sym("arg", (), dt, i)


def cast(x: Any, dt: str) -> Any:
    """`x` converted to dtype `dt` (integers wrap, as NumPy's do)."""
    if isinstance(x, Sym):
        return Sym("cast", (x,), dt)
    return np.asarray(x).astype(dt, copy=False)


def _is_sym(*xs: Any) -> Sym | None:
    return next((x for x in xs if isinstance(x, Sym)), None)


def where(cond: Any, a: Any, b: Any) -> Any:
    """`a` where `cond`, else `b` (dtype of `a`)."""
    s = _is_sym(a, b)
    if s is None:
        return np.where(cond, a, b)
    return Sym("where", (cond, s._lift(a), s._lift(b)), s.dt)


def isnan(x: Any) -> Any:
    """True where `x` is NaN."""
    return x != x if isinstance(x, Sym) else np.isnan(x)


def maximum(x: Any, y: Any) -> Any:
    """NumPy's `maximum`: NaN propagates from either side."""
    if _is_sym(x, y) is None:
        return np.maximum(x, y)
    return where((x > y) | isnan(x), x, y) if isinstance(x, Sym) else maximum(y, x)


def minimum(x: Any, y: Any) -> Any:
    """NumPy's `minimum`: NaN propagates from either side."""
    if _is_sym(x, y) is None:
        return np.minimum(x, y)
    return where((x < y) | isnan(x), x, y) if isinstance(x, Sym) else minimum(y, x)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive argument only: large |x| neither overflows nor loses precision
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.asarray(x).dtype, copy=False)


# The functions a formula may call, by NumPy name, and how they compute on arrays.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(np, name) for name in (
        "sqrt", "floor", "ceil", "rint", "trunc", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
        "sinh", "cosh", "exp", "log", "log1p", "expm1", "tanh", "isinf", "isfinite", "fmod", "copysign",
        "arctan2")
}
_FUNCTIONS["sigmoid"] = _stable_sigmoid
FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(_FUNCTIONS)  # read-only, for generated code
_BOOL_FUNCTIONS = frozenset({"isinf", "isfinite"})


def call(name: str, *xs: Any) -> Any:
    """Function `name` of `_FUNCTIONS` applied to `xs` (the first operand gives the dtype)."""
    s = _is_sym(*xs)
    if s is None:
        return _FUNCTIONS[name](*xs)
    args = tuple(s._lift(x) for x in xs)
    return Sym("call", args, "bool" if name in _BOOL_FUNCTIONS else args[0].dt, name)


def _fn(name: str) -> Callable[[Any], Any]:
    def f(x: Any) -> Any:
        return call(name, x)
    f.__name__ = name
    f.__doc__ = f"NumPy's `{name}` of `x`."
    return f


sqrt, exp, log, log1p, expm1, tanh, sigmoid, trunc, floor = (
    _fn(n) for n in ("sqrt", "exp", "log", "log1p", "expm1", "tanh", "sigmoid", "trunc", "floor"))


def dtype_name(x: Any) -> str:
    """The NumPy dtype name of a Sym or an array: formulas that differ by dtype test it."""
    return x.dt if isinstance(x, Sym) else np.asarray(x).dtype.name


def as_dtype_name(dt: Any) -> str:
    """A dtype given as a name, a NumPy dtype or a jitflow DType, as its NumPy name."""
    return np.dtype(getattr(dt, "np", dt)).name


# -- rendering -------------------------------------------------------------------------------------


class Dialect:
    """How one backend spells scalar code. Subclasses override `call` (and `cast` if needed)."""

    def cast(self, code: str, dt: str) -> str:
        return f"np.{'bool_' if dt == 'bool' else dt}({code})"

    def const(self, value: Any, dt: str) -> str:
        if dt == "bool":
            return repr(bool(value))
        if dt in FLOAT:
            v = float(value)
            text = repr(v) if np.isfinite(v) else ("np.nan" if v != v else ("-np.inf" if v < 0 else "np.inf"))
            return self.cast(text, dt)
        return self.cast(repr(int(value)), dt)

    def call(self, name: str, dt: str, args: list[str]) -> str:
        return f"np.{name}({', '.join(args)})"

    def binary(self, op: str, a: str, b: str, dt: str) -> str:
        return self.cast(f"{a} {op} {b}", dt)


@dataclass(frozen=True)
class Rendered:
    """A scalar expression's source and the conditions under which its op fails."""

    code: str
    checks: tuple[str, ...] = ()


def render(value: Any, names: Sequence[str], dialect: Dialect, out_dt: str) -> Rendered:
    """Source of the expression `value` (a Sym or a number) over operands called `names`, in `out_dt`."""
    checks: list[str] = []
    if not isinstance(value, Sym):
        value = constant(value, out_dt)
    code = _render(value, names, dialect, checks)
    if value.dt != out_dt or not (value.op in _TYPED or value.dt == "bool"):
        code = dialect.cast(code, out_dt)
    return Rendered(code, tuple(checks))


# nodes whose rendering already converts to their dtype
_TYPED = frozenset(_BINARY + ("neg", "abs", "cast", "const"))


def _render(s: Sym, names: Sequence[str], d: Dialect, checks: list[str]) -> str:
    op = s.op
    if op == "arg":
        return names[s.value]
    if op == "const":
        return d.const(s.value, s.dt)
    a = [_render(x, names, d, checks) for x in s.args]
    if op in _BINARY:
        _fails(op, s, a, checks)
        return d.binary(op, a[0], a[1], s.dt)
    if op in _COMPARE:
        return f"({a[0]} {op} {a[1]})"
    if op == "where":
        return f"({a[1]} if {a[0]} else {a[2]})"
    if op in ("and", "or"):
        return f"({a[0]} {op} {a[1]})"
    if op == "not":
        return f"(not {a[0]})"
    if op == "neg":
        return d.cast(f"-{a[0]}", s.dt)
    if op == "abs":
        return d.cast(f"abs({a[0]})", s.dt)
    if op == "cast":
        return f"({a[0]} != 0)" if s.dt == "bool" else d.cast(a[0], s.dt)
    if op == "call":
        return d.call(s.value, s.args[0].dt, a)
    raise ValueError(f"unknown expression node {op!r}")


def _fails(op: str, s: Sym, a: list[str], checks: list[str]) -> None:
    """Records when integer `a[0] op a[1]` must fail: division by zero, negative powers."""
    if s.dt not in INT:
        return
    if op in ("//", "%"):
        checks.append(f"{a[1]} == 0")
    elif op == "**" and not s.dt.startswith("u"):
        checks.append(f"{a[1]} < 0")


def trace(fn: Callable[..., Any], in_dts: Sequence[str], **attrs: Any) -> Any:
    """The expression `fn` computes from symbolic operands of dtypes `in_dts`."""
    return fn(*[arg(i, dt) for i, dt in enumerate(in_dts)], **attrs)
