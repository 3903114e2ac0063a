"""What the code generators emit for each node of a cluster, from the op definitions.

An elementwise op's code comes from its OpDef: `OpDef.lowering` is a `jitflow.ir.formula.Elementwise`,
whose formula is traced into a `jitflow.ir.expr` tree and rendered by the backend's `Dialect`
(`node_code`). A variable-update op's OpDef carries a `formula.Update` (the optimizer Apply ops), or the
op is one of the Assign ops of `UPDATES`. Rendered expressions carry checks: conditions under which the
op must fail (integer division by zero, ...); the kernel raises a flag and the step re-runs the cluster
interpreted, which reports the error exactly as the interpreter does.

Tables kept here, keyed by registry op type:

* `REDUCTIONS`: how to accumulate and finish a reduction.
* `UPDATES`: variable updates: which ref inputs they write, whether they read the current values, and
  the new value of each ref (filled from the OpDefs' update formulas on first use).
* `ATTRS` (attrs that change the code, part of the kernel key; formulas add theirs), `derived_attrs(op)`
  (computed ones, e.g. UnbroadcastTo's target), `DATA_INPUTS` (inputs that are iterated over; the others
  only parameterize the op) and `SHAPE_CHECKS` (run-time shape rules beyond broadcasting, e.g.
  BiasAdd's).

Rendered code uses ``np.<dtype>(...)`` casts; calls are the dialect's (NumPy ufuncs or vmath's
vectorizable functions on the CPU, `codegen/cudamath.py` on CUDA).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jitflow.framework import registry
from jitflow.ir import expr, formula
from jitflow.ir.cluster import Cluster

FLOAT, INT, NUMERIC, SUPPORTED = expr.FLOAT, expr.INT, expr.NUMERIC, expr.SUPPORTED
Expr = expr.Rendered  # a scalar expression and the conditions under which its op fails


def cast(code: str, dt: str) -> str:
    """`code` converted to dtype `dt` (integers wrap, as NumPy's do)."""
    return f"np.{'bool_' if dt == 'bool' else dt}({code})"


def const(value: float | int, dt: str) -> str:
    """A typed literal (a bare Python float would promote float32 math to float64)."""
    return cast(repr(float(value)) if dt in FLOAT else repr(int(value)), dt)


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

UpdateFn = Callable[[int, list[str], str, Any, expr.Dialect], str]


@dataclass(frozen=True)
class UpdateRule:
    """A variable update op: the refs it writes and each new value.

    `new(slot, args, dtype, node, dialect)` gives the new value of the slot-th ref. `args` are the current values
    of the refs (when `reads` is True) followed by the op's other inputs in order.
    """

    refs: tuple[int, ...]
    new: UpdateFn
    reads: bool = True
    exact_shape: tuple[int, ...] = field(default=())  # op input positions that must have the var's shape
    scalar_args: tuple[int, ...] = field(default=())  # op input positions that must be rank 0
    same_shape_refs: bool = False  # every updated ref (slot variables) must have the var's shape


UPDATES: dict[str, UpdateRule] = {
    "Assign": UpdateRule((0,), lambda slot, a, dt, node, d: cast(a[0], dt), reads=False),
    "AssignAdd": UpdateRule((0,), lambda slot, a, dt, node, d: cast(f"{a[0]} + {a[1]}", dt), exact_shape=(1,)),
    "AssignSub": UpdateRule((0,), lambda slot, a, dt, node, d: cast(f"{a[0]} - {a[1]}", dt), exact_shape=(1,)),
}


def _apply_rule(upd: formula.Update) -> UpdateRule:
    """The rule of an optimizer Apply op, traced from its OpDef's update formula (one formula)."""

    def new(slot: int, a: list[str], dt: str, node: Any, dialect: expr.Dialect) -> str:
        rule = upd.chosen(lambda name, default: node.attr(name, default) if node is not None else default)
        res = rule(*[expr.arg(i, dt) for i in range(len(a))])
        return expr.render(res[slot], a, dialect, dt).code

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
    """True if `op_type` has an elementwise lowering (a formula in its OpDef)."""
    return elementwise_formula(op_type) is not None


def node_expr(c: Cluster, k: int, names: list[str], dialect: expr.Dialect) -> Expr:
    """The scalar expression of node k of `c` in `dialect`, given the names of all value ids."""
    node = c.nodes[k]
    args = [names[a] for a in node.args]
    rule = update_rule(node.op_type)
    if rule is not None:
        return Expr(rule.new(int(node.attr("slot", 0)), args, node.dtype, node, dialect))
    in_dts = [c.value_dtype(a) for a in node.args]
    e = node_code(node.op_type, args, in_dts, node.dtype, node.attr, dialect)
    if e is None:
        raise ValueError(f"no lowering for {node.op_type} on {in_dts}")
    return e


def node_code(op_type: str, args: list[str], in_dts: list[str], out_dt: str, attr: Callable[[str], Any],
              dialect: expr.Dialect) -> Expr | None:
    """The expression of an elementwise node in `dialect` (None: no lowering for these dtypes).

    `args` name the operands; `attr(name)` gives the value of a code-changing attr.
    """
    f = elementwise_formula(op_type)
    sym = None if f is None else f.trace(in_dts, attr)
    return None if sym is None else expr.render(sym, args, dialect, out_dt)

# Attrs that change the generated code (part of the node, hence of the kernel key).
ATTRS: dict[str, tuple[str, ...]] = {r: ("axis", "keep_dims") for r in REDUCTIONS}
