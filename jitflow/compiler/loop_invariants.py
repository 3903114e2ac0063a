"""Loop-invariant work in loop sub-plans: a transposed MatMul operand copied once per loop run.

An LSTM's backward loop computes ``dgates @ kernel^T`` every iteration. BLAS is much slower on a
transposed (column-major) view than on a row-major matrix at these sizes (W8's 20x800 @ 800x400:
163 us against 106 us on this machine), and the kernel is captured from outside the loop, so it is the
same array in every iteration. `hoist_transposes` wraps the MatMul steps of a loop sub-plan whose
transposed operand is such a capture: the first iteration makes a row-major copy of the transpose, later
iterations reuse it. `begin_loop` forgets the copies when a loop starts: between two runs of a loop,
its captured arrays may be different ones (or, for a fed array, changed in place).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.compiler.plan import Plan
from jitflow.compiler.step import CPU
from jitflow.compiler.steps import MatMulStep
from jitflow.framework.graph import Tensor


class InvariantTransposeMatMul:
    """A MatMul step whose transposed operand is loop-invariant: it is transposed into a row-major copy
    once, and the wrapped step gets that copy's transposed view (the same values, in BLAS's fast order)."""

    kind = "matmul"
    backend = CPU
    stateful = False

    def __init__(self, inner: MatMulStep, operand: int) -> None:
        self.inner = inner
        self.op = inner.op
        self.ops, self.reads, self.writes = inner.ops, inner.reads, inner.writes
        self.slot = inner.sb if operand == 1 else inner.sa
        # (the array the copy was made from, the copy's transposed view): one attribute, replaced whole,
        # so that concurrent runs never pair an array with another array's copy
        self.cache: tuple[Any, Any] = (None, None)

    def reset(self) -> None:
        """Forgets the copy (a new loop run may capture other arrays)."""
        self.cache = (None, None)

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.slot]
        cache = self.cache
        if cache[0] is not x:
            if type(x) is not np.ndarray or x.ndim != 2 or x.dtype != self.inner.dtype:
                return self.inner(ctx, vals)  # the step's own checks (and fallback) decide
            cache = self.cache = (x, np.ascontiguousarray(x.T).T)
        vals[self.slot] = cache[1]
        try:
            return self.inner(ctx, vals)
        finally:
            vals[self.slot] = x


def hoist_transposes(plan: Plan, invariant: set[Tensor]) -> list[InvariantTransposeMatMul]:
    """Wraps the plan's MatMul steps whose transposed operand is one of the `invariant` (captured)
    tensors; returns the wrappers (for `begin_loop`)."""
    fed = {plan.slots[t] for t in invariant if t in plan.slots}
    wrapped: list[InvariantTransposeMatMul] = []
    for k, st in enumerate(plan.steps):
        if type(st) is not MatMulStep:
            continue
        if st.tb and st.sb in fed:
            w = InvariantTransposeMatMul(st, 1)
        elif st.ta and st.sa in fed:
            w = InvariantTransposeMatMul(st, 0)
        else:
            continue
        plan.steps[k] = w
        wrapped.append(w)
    return wrapped


def begin_loop(wrapped: list[InvariantTransposeMatMul]) -> None:
    """Called when a loop starts running: its captured arrays may differ from the last run's."""
    for w in wrapped:
        w.reset()
