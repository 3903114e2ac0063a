"""What an OpDef says about its own lowering: an elementwise formula or a variable-update rule.

Both hold Python functions over values that are NumPy arrays (the reference kernel) or `expr.Sym`s
(code generation), so the formula is written once and every backend derives its code from it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jitflow.ir import expr


@dataclass(frozen=True)
class Elementwise:
    """The lowering of an elementwise op: `formula(*inputs, **attrs)` for inputs whose first dtype is
    in `dtypes`; `attrs` names the op attrs the formula reads (they change the generated code).

    `shape_check(input shapes)`: a run-time rule beyond broadcasting (False: that run is interpreted).
    `refuse(op)`: why this op, as built, is not fused (None: it may be).
    """

    formula: Callable[..., Any]
    dtypes: tuple[str, ...] = expr.FLOAT
    attrs: tuple[str, ...] = ()
    shape_check: Callable[[list[tuple[int, ...]]], bool] | None = None
    refuse: Callable[[Any], str | None] | None = None

    def trace(self, in_dts: Sequence[str], attrs: Callable[[str], Any]) -> expr.Sym | None:
        """The symbolic expression for inputs of `in_dts`, or None when those dtypes do not lower."""
        if not in_dts or in_dts[0] not in self.dtypes:
            return None
        return expr.trace(self.formula, in_dts, **{a: attrs(a) for a in self.attrs})

    def evaluate(self, ins: Sequence[Any], attrs: Callable[[str], Any], out_dt: Any) -> Any:
        """The formula on NumPy arrays: the op's reference result, in `out_dt`."""
        res = self.formula(*ins, **{a: attrs(a) for a in self.attrs})
        return np_cast(res, out_dt)


def np_cast(x: Any, dt: Any) -> Any:
    """`x` as an array of `dt` (no copy when it already is one)."""
    return np.asarray(x).astype(dt, copy=False)


@dataclass(frozen=True)
class Reduction:
    """The lowering of a reduction: the input dtypes it lowers for, the accumulator's dtype for an input
    dtype, the accumulator's start value (a number, for the accumulator dtype), and the combine step as a
    template over ``{acc}`` and ``{v}`` (Python operators only: the same text in every dialect). `mean`
    divides by the number of reduced elements at the end. `data_inputs`: the inputs iterated over (the
    others only parameterize the op; None: all); `derived_attrs(op)`: code-changing attrs computed from
    the op (None: it cannot be lowered as built)."""

    dtypes: tuple[str, ...]
    acc_dtype: Callable[[str], str]
    init: Callable[[str], Any]
    combine: str
    mean: bool = False
    data_inputs: tuple[int, ...] | None = None
    derived_attrs: Callable[[Any], tuple[tuple[str, Any], ...] | None] | None = None


def wide(dt: str) -> str:
    """The accumulator of a sum: float64 for floats (no worse than NumPy's pairwise float32 sums), else
    the 64-bit integer of the same signedness."""
    if dt in expr.FLOAT:
        return "float64"
    return "uint64" if dt.startswith("u") else "int64"


def extreme(sign: int) -> Callable[[str], Any]:
    """The start value of a max (sign -1: the lowest value) or min (sign 1: the highest)."""
    def init(dt: str) -> Any:
        if dt in expr.FLOAT:
            return float("inf") * sign
        info = np.iinfo(dt)
        return int(info.max if sign > 0 else info.min)
    return init


SUM = Reduction(expr.NUMERIC, wide, lambda dt: 0, "{acc} + {v}")


UpdateFn = Callable[..., tuple]


@dataclass(frozen=True)
class Update:
    """A variable-update op: its reference inputs (variable, then slots), its other inputs, and the rule
    ``rule(*ref values, *other inputs) -> new ref values``; `variants` are (bool attr, the value that
    selects it, rule)."""

    refs: tuple[str, ...]
    args: tuple[str, ...]
    rule: UpdateFn
    variants: tuple[tuple[str, bool, UpdateFn], ...] = ()

    def chosen(self, attr: Callable[[str, bool], bool]) -> UpdateFn:
        """The rule that the attrs select (`attr(name, default)` reads one)."""
        for name, value, rule in self.variants:
            if bool(attr(name, not value)) is value:
                return rule
        return self.rule
