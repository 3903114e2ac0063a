"""Light steps for Split, SplitV and ConcatV2 with a constant axis (and constant sizes).

Inside a loop body these run once per iteration on small arrays (an LSTM's gates), where the reference
kernels' Python checks and ``np.split`` cost more than the copy itself (W8: 15-25 us per call against
3-5 us here). A split gives views of its input (as ``np.split`` does); a concat is one
``np.concatenate``. Whatever does not fit what the plan was built for (another rank or size, a NumPy
scalar, a dtype NumPy would promote) runs the op's interpreted step, which raises its errors.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.compiler.plan import Step
from jitflow.compiler.step import CPU, value_slots
from jitflow.framework.graph import Operation, Tensor

SLICE_OPS = ("Split", "SplitV", "ConcatV2")


def _const_ints(t: Tensor) -> list[int] | None:
    """The value of a Const tensor as a flat list of ints (None: not a constant)."""
    if t.op.type != "Const" or t.op.control_inputs:
        return None
    v = t.op.attrs.get("value")
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iu":
        return None
    return [int(x) for x in v.reshape(-1)]


class SplitStep:
    """Split / SplitV into views, for inputs of the rank and split-axis size the plan was built for."""

    kind = "split"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, x_slot: int, out_slots: list[int], axis: int, sizes: list[int],
                 fallback: Step) -> None:
        self.op = op
        self.ops = (op,)
        self.reads = value_slots([x_slot])
        self.writes = value_slots(out_slots)
        self.sx = x_slot
        self.out_slots = out_slots
        self.fallback = fallback
        self.dtype = np.dtype(op.inputs[0 if op.type == "SplitV" else 1].dtype.np)
        self.axis = axis  # negative: from the end (the rank is checked per call)
        self.total = sum(sizes)
        starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.cuts = [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.sx]
        if type(x) is not np.ndarray or x.dtype != self.dtype or not -x.ndim <= self.axis < x.ndim \
                or x.shape[self.axis] != self.total:
            return self.fallback(ctx, vals)
        lead = (slice(None),) * (self.axis % x.ndim)
        for s, cut in zip(self.out_slots, self.cuts):
            vals[s] = x[(*lead, cut)]
        return None


class ConcatStep:
    """ConcatV2 of arrays of one dtype along a constant axis: one ``np.concatenate``."""

    kind = "concat"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, in_slots: list[int], out_slot: int, axis: int, fallback: Step) -> None:
        self.op = op
        self.ops = (op,)
        self.reads = value_slots(in_slots)
        self.writes = value_slots([out_slot])
        self.in_slots = in_slots
        self.so = out_slot
        self.axis = axis
        self.fallback = fallback
        self.dtype = np.dtype(op.outputs[0].dtype.np)

    def __call__(self, ctx: Any, vals: list) -> None:
        xs = [vals[s] for s in self.in_slots]
        dt = self.dtype
        for x in xs:
            if type(x) is not np.ndarray or x.dtype != dt or x.ndim == 0:
                return self.fallback(ctx, vals)
        if not -xs[0].ndim <= self.axis < xs[0].ndim:
            return self.fallback(ctx, vals)
        try:
            vals[self.so] = np.concatenate(xs, axis=self.axis)
        except ValueError:  # shapes that do not match: the reference kernel's error
            return self.fallback(ctx, vals)
        return None


def slice_step(op: Operation, slots: dict[Tensor, int], fed: set[Tensor], fallback: Step) -> Step | None:
    """The light step of a Split, SplitV or ConcatV2 op, or None (a run-time axis or sizes, fed outputs)."""
    if any(t in fed for t in op.outputs) or op.control_inputs:
        return None
    if op.type == "ConcatV2":
        ax = _const_ints(op.inputs[-1])
        if ax is None or len(ax) != 1 or len(op.inputs) < 3:
            return None
        return ConcatStep(op, [slots[t] for t in op.inputs[:-1]], slots[op.outputs[0]], ax[0], fallback)
    if op.type == "Split":
        ax, x = _const_ints(op.inputs[0]), op.inputs[1]
        dims = x.shape.as_tuple()
        n = op.attrs["num_split"]
        if ax is None or len(ax) != 1 or dims is None or not -len(dims) <= ax[0] < len(dims):
            return None
        d = dims[ax[0]]
        if d is None or d % n:
            return None
        sizes = [d // n] * n
    else:
        x = op.inputs[0]
        ax, sz = _const_ints(op.inputs[2]), _const_ints(op.inputs[1])
        if ax is None or sz is None or len(ax) != 1 or any(s < 0 for s in sz):
            return None
        sizes = sz
    return SplitStep(op, slots[x], [slots[t] for t in op.outputs], ax[0], sizes, fallback)
