"""Op type → scalar expression templates: what the code generators emit for each node of a cluster.

Three tables, keyed by registry op type:

* `ELEMENTWISE`: ``template(args, in_dtypes, out_dtype, node) -> Expr | None``; `args` are the
  names of the scalar operands, the result is an expression of dtype `out_dtype` (None: these dtypes
  have no lowering). `Expr.checks` are conditions under which the op must fail (integer division by
  zero, ...): the kernel raises a flag and the step re-runs the cluster interpreted, which reports the
  error exactly as the interpreter does.
* `REDUCTIONS`: how to accumulate and finish a reduction.
* `UPDATES`: variable updates (Assign*, optimizer Apply* ops): which ref inputs they write, whether
  they read the current values, and the new value of each ref.

Expressions use ``np.<dtype>(...)`` casts, ``np`` ufuncs on scalars and ``V.<fn>_<f32|f64>`` for the
vectorizable transcendental functions of `jitflow.codegen.vmath` (the CPU backend binds ``V`` to that
module; another backend binds it to its own math).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FLOAT = ("float32", "float64")
INT = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC = FLOAT + INT
SUPPORTED = NUMERIC + ("bool",)


@dataclass(frozen=True)
class Expr:
    """A scalar expression and the conditions under which its op fails."""

    code: str
    checks: tuple[str, ...] = ()


Template = Callable[[list[str], list[str], str, Any], "Expr | None"]


def cast(expr: str, dt: str) -> str:
    """`expr` converted to dtype `dt` (integers wrap, as NumPy's do)."""
    return f"np.{'bool_' if dt == 'bool' else dt}({expr})"


def const(value: float | int, dt: str) -> str:
    """A typed literal (a bare Python float would promote float32 math to float64)."""
    return cast(repr(float(value)) if dt in FLOAT else repr(int(value)), dt)


def _vm(name: str, dt: str) -> str:
    return f"V.{name}_{'f32' if dt == 'float32' else 'f64'}"


# -- elementwise ----------------------------------------------------------------------------------------

ELEMENTWISE: dict[str, Template] = {}


def _reg(names: tuple[str, ...], fn: Template) -> None:
    for n in names:
        ELEMENTWISE[n] = fn


def _arith(op: str, dts: tuple[str, ...] = NUMERIC) -> Template:
    def t(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
        if ins[0] not in dts:
            return None
        return Expr(cast(f"{a[0]} {op} {a[1]}", out))
    return t


_reg(("AddV2", "Add"), _arith("+"))
_reg(("Sub",), _arith("-"))
_reg(("Mul",), _arith("*"))


def _realdiv(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    return Expr(cast(f"{a[0]} / {a[1]}", out)) if ins[0] in FLOAT else None


def _floordiv(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] in FLOAT:
        return Expr(cast(f"np.floor({a[0]} / {a[1]})", out))
    if ins[0] in INT:
        return Expr(cast(f"{a[0]} // {a[1]}", out), (f"{a[1]} == 0",))
    return None


def _div(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    return _realdiv(a, ins, out, node) if ins[0] in FLOAT else _floordiv(a, ins, out, node)


def _floormod(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] in INT:
        return Expr(cast(f"{a[0]} % {a[1]}", out), (f"{a[1]} == 0",))
    if ins[0] in FLOAT:
        # NumPy's float mod: fmod, then moved to the divisor's sign; y == 0 gives nan
        x, y = a
        r = f"np.fmod({x}, {y})"
        return Expr(cast(f"({r} + {y} if ({r} != 0 and (({r} < 0) != ({y} < 0))) else "
                         f"(np.copysign({const(0, out)}, {y}) if {r} == 0 else {r}))", out))
    return None


def _pow(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] in FLOAT:
        return Expr(cast(f"{a[0]} ** {a[1]}", out))
    if ins[0] in INT:
        neg = (f"{a[1]} < 0",) if not ins[0].startswith("u") else ()
        return Expr(cast(f"{a[0]} ** {a[1]}", out), neg)
    return None


def _minmax(cmp: str) -> Template:
    def t(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
        x, y = a
        if ins[0] in FLOAT:  # NaN propagates, as in np.maximum/np.minimum
            return Expr(cast(f"({x} if ({x} {cmp} {y} or {x} != {x}) else {y})", out))
        if ins[0] in INT:
            return Expr(cast(f"({x} if {x} {cmp} {y} else {y})", out))
        return None
    return t


def _sqdiff(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] not in NUMERIC:
        return None
    return Expr(cast(f"({a[0]} - {a[1]}) * ({a[0]} - {a[1]})", out))


ELEMENTWISE.update({"RealDiv": _realdiv, "FloorDiv": _floordiv, "Div": _div, "FloorMod": _floormod,
                    "Pow": _pow, "Maximum": _minmax(">"), "Minimum": _minmax("<"),
                    "SquaredDifference": _sqdiff})


def _unary(fmt: str, dts: tuple[str, ...] = NUMERIC) -> Template:
    def t(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
        if ins[0] not in dts:
            return None
        return Expr(cast(fmt.format(x=a[0], one=const(1, out), zero=const(0, out)), out))
    return t


def _vmath(name: str) -> Template:
    def t(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
        return Expr(cast(f"{_vm(name, ins[0])}({a[0]})", out)) if ins[0] in FLOAT else None
    return t


def _sign(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    x = a[0]
    if ins[0] in FLOAT:
        return Expr(cast(f"({const(1, out)} if {x} > 0 else ({const(-1, out)} if {x} < 0 else {x}))", out))
    if ins[0] in INT:
        return Expr(cast(f"(1 if {x} > 0 else (-1 if {x} < 0 else 0))", out))
    return None


def _reciprocal(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] in FLOAT:
        return Expr(cast(f"{const(1, out)} / {a[0]}", out))
    if ins[0] in INT:
        return Expr(cast(f"1 // {a[0]}", out), (f"{a[0]} == 0",))
    return None


_reg(("Neg",), _unary("-{x}"))
_reg(("Abs",), _unary("abs({x})"))
_reg(("Square",), _unary("{x} * {x}"))
_reg(("Sqrt",), _unary("np.sqrt({x})", FLOAT))
_reg(("Rsqrt",), _unary("{one} / np.sqrt({x})", FLOAT))
for _n, _f in (("Sin", "sin"), ("Cos", "cos"), ("Tan", "tan"), ("Asin", "arcsin"), ("Acos", "arccos"),
               ("Atan", "arctan"), ("Sinh", "sinh"), ("Cosh", "cosh"), ("Floor", "floor"),
               ("Ceil", "ceil"), ("Round", "rint")):
    _reg((_n,), _unary(f"np.{_f}({{x}})", FLOAT))
for _n, _f in (("Exp", "exp"), ("Log", "log"), ("Log1p", "log1p"), ("Expm1", "expm1"), ("Tanh", "tanh"),
               ("Sigmoid", "sigmoid")):
    _reg((_n,), _vmath(_f))
_reg(("Sign",), _sign)
_reg(("Reciprocal", "Inv"), _reciprocal)


def _compare(op: str) -> Template:
    def t(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
        return Expr(f"({a[0]} {op} {a[1]})") if ins[0] in SUPPORTED else None
    return t


for _n, _o in (("Equal", "=="), ("NotEqual", "!="), ("Less", "<"), ("LessEqual", "<="), ("Greater", ">"),
               ("GreaterEqual", ">=")):
    _reg((_n,), _compare(_o))
_reg(("LogicalAnd",), lambda a, ins, out, node: Expr(f"({a[0]} & {a[1]})") if ins[0] == "bool" else None)
_reg(("LogicalOr",), lambda a, ins, out, node: Expr(f"({a[0]} | {a[1]})") if ins[0] == "bool" else None)
_reg(("LogicalNot",), lambda a, ins, out, node: Expr(f"(not {a[0]})") if ins[0] == "bool" else None)
_reg(("IsNan",), lambda a, ins, out, node: Expr(f"({a[0]} != {a[0]})") if ins[0] in FLOAT else None)
_reg(("IsInf",), lambda a, ins, out, node: Expr(f"np.isinf({a[0]})") if ins[0] in FLOAT else None)
_reg(("IsFinite",), lambda a, ins, out, node: Expr(f"np.isfinite({a[0]})") if ins[0] in FLOAT else None)


def _select(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] != "bool" or ins[1] not in SUPPORTED:
        return None
    return Expr(cast(f"({a[1]} if {a[0]} else {a[2]})", out))


def _cast(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    src, x = ins[0], a[0]
    if src not in SUPPORTED or out not in SUPPORTED:
        return None
    if out == "bool":
        return Expr(f"({x} != 0)")
    if src in FLOAT and out in INT:
        return Expr(cast(f"np.trunc({x})", out))
    return Expr(cast(x, out))


def _addn(a: list[str], ins: list[str], out: str, node: Any) -> Expr | None:
    if ins[0] not in NUMERIC:
        return None
    acc = a[0]
    for x in a[1:]:
        acc = cast(f"{acc} + {x}", out)  # left to right, each sum in the output dtype
    return Expr(cast(acc, out))


ELEMENTWISE.update({"Select": _select, "SelectV2": _select, "Cast": _cast, "AddN": _addn})

# -- reductions --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReduceRule:
    """How a reduction accumulates: init, combine, and the final value from the accumulator."""

    dtypes: tuple[str, ...]
    acc_dtype: Callable[[str], str]
    init: Callable[[str], str]  # accumulator dtype -> literal
    combine: str  # format with {acc} and {v}
    finish: str = "{acc}"  # format with {acc} and {n} (the number of reduced elements)


def _wide(dt: str) -> str:
    if dt in FLOAT:
        return "float64"  # float32 sums accumulate in float64: no worse than NumPy's pairwise sums
    return "uint64" if dt.startswith("u") else "int64"


def _extreme(sign: int) -> Callable[[str], str]:
    def init(dt: str) -> str:
        if dt in FLOAT:
            return cast(repr(float("inf") * sign).replace("inf", "np.inf"), dt)
        import numpy as np

        info = np.iinfo(dt)
        return cast(repr(int(info.max if sign > 0 else info.min)), dt)
    return init


REDUCTIONS: dict[str, ReduceRule] = {
    "Sum": ReduceRule(NUMERIC, _wide, lambda dt: const(0, dt), "{acc} + {v}"),
    "Mean": ReduceRule(NUMERIC, _wide, lambda dt: const(0, dt), "{acc} + {v}", "MEAN"),
    "Prod": ReduceRule(NUMERIC, _wide, lambda dt: const(1, dt), "{acc} * {v}"),
    "Max": ReduceRule(NUMERIC, lambda dt: dt, _extreme(-1), "({v} if ({v} > {acc} or {v} != {v}) else {acc})"),
    "Min": ReduceRule(NUMERIC, lambda dt: dt, _extreme(1), "({v} if ({v} < {acc} or {v} != {v}) else {acc})"),
    "All": ReduceRule(("bool",), lambda dt: "bool", lambda dt: "True", "({acc} & {v})"),
    "Any": ReduceRule(("bool",), lambda dt: "bool", lambda dt: "False", "({acc} | {v})"),
}


def finish_code(rule: ReduceRule, acc: str, n: str, in_dt: str, out_dt: str) -> str:
    """The reduction's value from its accumulator `acc` over `n` elements, in `out_dt`."""
    if rule.finish == "MEAN":
        if in_dt in FLOAT:
            return cast(f"{acc} / {n}", out_dt)
        return cast(f"({acc} // {n} if {n} > 0 else {acc})", out_dt)
    return cast(acc, out_dt)


# -- variable updates ------------------------------------------------------------------------------------

UpdateFn = Callable[[int, list[str], str, Any], str]


@dataclass(frozen=True)
class UpdateRule:
    """A variable update op: the refs it writes and each new value.

    `new(slot, args, dtype, node)` gives the new value of the slot-th ref. `args` are the current values
    of the refs (when `reads` is True) followed by the op's other inputs in order.
    """

    refs: tuple[int, ...]
    new: UpdateFn
    reads: bool = True
    exact_shape: tuple[int, ...] = field(default=())  # arg positions that must have the var's shape


def _gd(slot: int, a: list[str], dt: str, node: Any) -> str:
    var, alpha, delta = a
    return cast(f"{var} - {alpha} * {delta}", dt)


def _momentum(slot: int, a: list[str], dt: str, node: Any) -> str:
    var, accum, lr, grad, mom = a
    acc = cast(f"{accum} * {mom} + {grad}", dt)
    if slot == 1:
        return acc
    if node.attr("use_nesterov", False):
        return cast(f"{var} - ({grad} * {lr} + {acc} * {mom} * {lr})", dt)
    return cast(f"{var} - {lr} * {acc}", dt)


def _adam(slot: int, a: list[str], dt: str, node: Any) -> str:
    var, m, v, b1p, b2p, lr, b1, b2, eps, g = a
    one = const(1, dt)
    m_t = cast(f"{m} + ({g} - {m}) * ({one} - {b1})", dt)
    v_t = cast(f"{v} + ({g} * {g} - {v}) * ({one} - {b2})", dt)
    if slot == 1:
        return m_t
    if slot == 2:
        return v_t
    lr_t = cast(f"{lr} * np.sqrt({one} - {b2p}) / ({one} - {b1p})", dt)
    if node.attr("use_nesterov", False):
        return cast(f"{var} - {lr_t} * ({m_t} * {b1} + ({one} - {b1}) * {g}) / (np.sqrt({v_t}) + {eps})", dt)
    return cast(f"{var} - {lr_t} * {m_t} / (np.sqrt({v_t}) + {eps})", dt)


UPDATES: dict[str, UpdateRule] = {
    "Assign": UpdateRule((0,), lambda slot, a, dt, node: cast(a[0], dt), reads=False),
    "AssignAdd": UpdateRule((0,), lambda slot, a, dt, node: cast(f"{a[0]} + {a[1]}", dt), exact_shape=(1,)),
    "AssignSub": UpdateRule((0,), lambda slot, a, dt, node: cast(f"{a[0]} - {a[1]}", dt), exact_shape=(1,)),
    "ApplyGradientDescent": UpdateRule((0,), _gd, exact_shape=(2,)),
    "ApplyMomentum": UpdateRule((0, 1), _momentum, exact_shape=(3,)),
    "ApplyAdam": UpdateRule((0, 1, 2), _adam, exact_shape=(9,)),
}

# Attrs that change the generated code (part of the node, hence of the kernel key).
ATTRS: dict[str, tuple[str, ...]] = {
    "Cast": ("DstT",),
    "ApplyMomentum": ("use_nesterov",),
    "ApplyAdam": ("use_nesterov",),
    **{r: ("axis", "keep_dims") for r in REDUCTIONS},
}
