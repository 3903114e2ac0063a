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
    in `dtypes`; `attrs` names the op attrs the formula reads (they change the generated code)."""

    formula: Callable[..., Any]
    dtypes: tuple[str, ...] = expr.FLOAT
    attrs: tuple[str, ...] = ()

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
