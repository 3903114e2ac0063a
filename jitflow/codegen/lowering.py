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

Also: `ATTRS` (attrs that change the code, part of the kernel key), `derived_attrs(op)` (computed
ones, e.g. UnbroadcastTo's target), `DATA_INPUTS` (inputs that are iterated over; the others only
parameterize the op) and `SHAPE_CHECKS` (run-time shape rules beyond broadcasting, e.g. BiasAdd's).
Adding an op type to these tables is all it takes to compile it; the tests compare every entry with
the interpreter.

Expressions use ``np.<dtype>(...)`` casts, ``np`` ufuncs on scalars and ``V.<fn>_<f32|f64>`` for the
vectorizable transcendental functions of `jitflow.codegen.vmath` (the CPU backend binds ``V`` to that
module; another backend binds it to its own math). The tables are backend-neutral; the CPU generator
additionally swaps some NumPy ufuncs for vmath versions (`codegen/cpu.py`, ``CPU_VMATH``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jitflow.framework import registry
from jitflow.ir import expr, formula

FLOAT, INT, NUMERIC, SUPPORTED = expr.FLOAT, expr.INT, expr.NUMERIC, expr.SUPPORTED


Expr = expr.Rendered  # a scalar expression and the conditions under which its op fails


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
# NumPy ufunc names here; the CPU generator swaps in vectorizable vmath versions (codegen/cpu.py)
for _n, _f in (("Sin", "sin"), ("Cos", "cos"), ("Tan", "tan"), ("Asin", "arcsin"), ("Acos", "arccos"),
               ("Atan", "arctan"), ("Sinh", "sinh"), ("Cosh", "cosh"), ("Floor", "floor"), ("Ceil", "ceil"),
               ("Round", "rint")):
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

ELEMENTWISE["BiasAdd"] = _arith("+")
ELEMENTWISE["ZerosLike"] = lambda a, ins, out, node: Expr(const(0, out)) if out in SUPPORTED else None
ELEMENTWISE["OnesLike"] = lambda a, ins, out, node: Expr(const(1, out)) if out in SUPPORTED else None

# Inputs that are data (iterated over); the others only parameterize the op (e.g. a target shape).
DATA_INPUTS: dict[str, tuple[int, ...]] = {"UnbroadcastTo": (0,)}


def derived_attrs(op: Any) -> tuple[tuple[str, Any], ...] | None:
    """Code-changing attrs computed from the op (not stored on it); None: the op cannot be lowered."""
    if op.type == "UnbroadcastTo":
        # the reduced dims follow from the target and the gradient's rank at run time
        target = op.attrs["shape"].as_tuple()
        if target is None or None in target:
            return None
        return (("target", tuple(int(d) for d in target)),)
    return ()

# Runtime shape rules beyond broadcasting: op type -> check(arg shapes) (False: run interpreted).
SHAPE_CHECKS: dict[str, Callable[[list[tuple[int, ...]]], bool]] = {
    "BiasAdd": lambda s: len(s[0]) >= 2 and len(s[1]) == 1 and s[0][-1] == s[1][0],
    "AddN": lambda s: all(x == s[0] for x in s),
    "Select": lambda s: s[0] == s[1] == s[2] or len(s[0]) == 0,
}

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
    "UnbroadcastTo": ReduceRule(NUMERIC, _wide, lambda dt: const(0, dt), "{acc} + {v}"),
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
    exact_shape: tuple[int, ...] = field(default=())  # op input positions that must have the var's shape
    scalar_args: tuple[int, ...] = field(default=())  # op input positions that must be rank 0
    same_shape_refs: bool = False  # every updated ref (slot variables) must have the var's shape


UPDATES: dict[str, UpdateRule] = {
    "Assign": UpdateRule((0,), lambda slot, a, dt, node: cast(a[0], dt), reads=False),
    "AssignAdd": UpdateRule((0,), lambda slot, a, dt, node: cast(f"{a[0]} + {a[1]}", dt), exact_shape=(1,)),
    "AssignSub": UpdateRule((0,), lambda slot, a, dt, node: cast(f"{a[0]} - {a[1]}", dt), exact_shape=(1,)),
}


def _apply_rule(upd: formula.Update) -> UpdateRule:
    """The rule of an optimizer Apply op, traced from its OpDef's update formula (one formula)."""

    def new(slot: int, a: list[str], dt: str, node: Any) -> str:
        rule = upd.chosen(lambda name, default: node.attr(name, default) if node is not None else default)
        res = rule(*[expr.arg(i, dt) for i in range(len(a))])
        return expr.render(res[slot], a, _NEUTRAL, dt).code

    nrefs = len(upd.refs)
    grad = nrefs + upd.args.index("grad") if "grad" in upd.args else -1
    scalars = tuple(nrefs + i for i, n in enumerate(upd.args) if n != "grad")
    return UpdateRule(tuple(range(nrefs)), new, exact_shape=(grad,) if grad >= 0 else (),
                      scalar_args=scalars, same_shape_refs=True)


def update_rule(op_type: str) -> UpdateRule | None:
    """The update rule of `op_type` (Assign*, or an op whose OpDef has an update formula), or None."""
    rule = UPDATES.get(op_type)
    if rule is None:
        upd = registry.lowering_of(op_type)
        if isinstance(upd, formula.Update):
            rule = UPDATES[op_type] = _apply_rule(upd)
            ATTRS[op_type] = tuple(attr for attr, _, _ in upd.variants)
    return rule


def elementwise_formula(op_type: str) -> formula.Elementwise | None:
    """The formula of an elementwise op from its OpDef (its code-changing attrs join `ATTRS`), or None."""
    f = registry.lowering_of(op_type)
    if not isinstance(f, formula.Elementwise):
        return None
    if f.attrs and op_type not in ATTRS:
        ATTRS[op_type] = f.attrs
    return f


def has_elementwise(op_type: str) -> bool:
    """True if `op_type` has an elementwise lowering (a formula or a table entry)."""
    return op_type in ELEMENTWISE or elementwise_formula(op_type) is not None


def node_code(op_type: str, args: list[str], in_dts: list[str], out_dt: str, node: Any,
              dialect: expr.Dialect) -> Expr | None:
    """The expression of an elementwise node in `dialect` (None: no lowering for these dtypes).

    `node` gives the code-changing attrs (`node.attr(name, default)`; None: the defaults).
    """
    f = elementwise_formula(op_type)
    if f is not None:
        sym = f.trace(in_dts, lambda name: node.attr(name) if node is not None else _DEFAULTS.get(name))
        return None if sym is None else expr.render(sym, args, dialect, out_dt)
    tpl = ELEMENTWISE.get(op_type)
    return None if tpl is None else tpl(args, in_dts, out_dt, node)


# attr values that decide nothing about lowering, for questions asked before a node exists
_DEFAULTS: dict[str, Any] = {"alpha": 0.2}
_NEUTRAL = expr.Dialect()

# Attrs that change the generated code (part of the node, hence of the kernel key).
ATTRS: dict[str, tuple[str, ...]] = {
    "Cast": ("DstT",),
    "LeakyRelu": ("alpha",),
    "LeakyReluGrad": ("alpha",),
    **{r: ("axis", "keep_dims") for r in REDUCTIONS},
}
