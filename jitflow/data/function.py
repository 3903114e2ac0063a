"""User functions of `map`/`filter`/`flat_map`: traced once into graph ops, run as a sub-plan.

The function is called once with placeholders standing for one element; the ops it creates live in
the user's graph (unreachable from the user's fetches) and run through the session's own plan and JIT,
per session, with the element's arrays fed to the placeholders.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.compiler.execute import execute
from jitflow.compiler.plan import Plan, build_plan
from jitflow.data import structure
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape, as_shape

_FEEDABLE = ("Placeholder", "PlaceholderWithDefault")


class TracedFunction:
    """One traced user function: its input placeholders, flat outputs and per-session plans."""

    def __init__(self, fn: Any, in_structure: Any, in_types: list[dtypes.DType], in_shapes: list[TensorShape],
                 what: str, allow_datasets: bool = False) -> None:
        g = get_default_graph()
        self.what = what
        self.name = getattr(fn, "__name__", "fn")
        first = len(g.get_operations())
        with g.name_scope(f"{what}_{_clean(self.name)}"):
            self.inputs = [g.create_op("Placeholder", [], {"dtype": dt, "shape": sh}, name=f"arg{i}").outputs[0]
                           for i, (dt, sh) in enumerate(zip(in_types, in_shapes))]
            args = structure.pack_as(in_structure, list(self.inputs))
            ret = fn(*args) if isinstance(args, tuple) and not hasattr(args, "_fields") else fn(args)
            self.structure = _normalize(ret, allow_datasets, what)
            flat = structure.flatten(self.structure)
            # a dataset returned by flat_map/interleave's function: its captures are the outputs to compute
            self.outputs = self.structure._captures() if hasattr(self.structure, "_captures") else \
                [x for x in flat if isinstance(x, Tensor)]
        self.ops = g.get_operations()[first:]
        self.captures = _external_feeds(self.ops, self.outputs, set(self.inputs))
        self._plans: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()  # per session
        self._lock = threading.Lock()

    @property
    def output_types(self) -> list[dtypes.DType]:
        return [t.dtype for t in self.outputs]

    @property
    def output_shapes(self) -> list[TensorShape]:
        return [t.shape for t in self.outputs]

    def elementwise(self) -> bool:
        """Whether running the function once over a batch equals running it per element and stacking.

        True when every op is elementwise (or Identity/Cast), the operands of each op that come from the
        inputs have one rank r and its other operands rank <= r (so a leading batch dimension broadcasts
        through), and every output comes from an input.
        """
        if not self.inputs or not self.outputs or self.captures:
            return False
        derived: dict[Tensor, int] = {}
        for t in self.inputs:
            if t.shape.ndims is None:
                return False
            derived[t] = t.shape.ndims
        for op in self.ops:
            if op.type == "Placeholder" and op.outputs[0] in derived:
                continue
            r = _batched_rank(op, derived)
            if r == -2:
                return False
            if r >= 0:
                derived.update((t, r) for t in op.outputs)
        return all(t in derived for t in self.outputs)

    def plan(self, ctx: Any) -> Plan:
        """The sub-plan for session `ctx` (built on first use, with the session's JIT setting)."""
        plan = self._plans.get(ctx)
        if plan is None:
            with self._lock:
                plan = self._plans.get(ctx)
                if plan is None:
                    lower = ctx._lowering() if hasattr(ctx, "_lowering") else None
                    plan = build_plan(list(self.outputs), list(self.inputs) + self.captures, lower)
                    self._plans[ctx] = plan
        return plan

    def call(self, ctx: Any, args: list[Any], captured: list[Any]) -> list[Any]:
        """The flat output arrays for one element's flat input arrays."""
        return execute(self.plan(ctx), ctx, list(args) + list(captured))


def _batched_rank(op: Operation, derived: dict[Tensor, int]) -> int:
    """The rank of `op`'s outputs when it depends on the inputs (-1 when it does not, -2 when it
    cannot run over a batch)."""
    ranks = {derived[t] for t in op.inputs if t in derived}
    if not ranks:
        return -1 if op.opdef.kind in (registry.SOURCE, registry.ELEMENTWISE) else -2
    if len(ranks) > 1 or (op.opdef.kind != registry.ELEMENTWISE and op.type not in ("Identity", "Cast")):
        return -2
    r = ranks.pop()
    if any(t not in derived and (t.shape.ndims is None or t.shape.ndims > r) for t in op.inputs):
        return -2
    return r


def _clean(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name).lstrip("_.-") or "fn"


def _normalize(ret: Any, allow_datasets: bool, what: str) -> Any:
    """The function's result with lists as tuples (TF 1.x) and every leaf a Tensor (or a Dataset)."""
    from jitflow.data.dataset_ops import Dataset
    from jitflow.ops.constant_op import convert_to_tensor

    if isinstance(ret, list):
        ret = tuple(ret)
    if ret is None:
        raise TypeError(f"The function passed to `{what}` returned None; it must return a tensor or a "
                        "structure of tensors.")

    def leaf(x: Any) -> Any:
        if isinstance(x, Dataset):
            if not allow_datasets:
                raise TypeError(f"The function passed to `{what}` must return tensors, not a Dataset.")
            return x
        if isinstance(x, Operation):
            raise TypeError(f"The function passed to `{what}` returned an Operation ({x.name}); it must "
                            "return tensors.")
        return x if isinstance(x, Tensor) else convert_to_tensor(x)

    return structure.map_structure(leaf, ret)


def _depends_on(t: Tensor, inputs: set[Tensor]) -> bool:
    seen: set[Operation] = set()
    stack = [t]
    while stack:
        x = stack.pop()
        if x in inputs:
            return True
        if x.op in seen:
            continue
        seen.add(x.op)
        stack.extend(x.op.inputs)
    return False


def _external_feeds(ops: list[Operation], outputs: list[Tensor], inputs: set[Tensor]) -> list[Tensor]:
    """Tensors from outside the function that depend on a placeholder: fed to the sub-plan at run time."""
    mine = set(ops)
    outer: list[Tensor] = []
    for op in ops:
        outer.extend(t for t in op.inputs if t.op not in mine)
    outer.extend(t for t in outputs if t.op not in mine and t not in inputs)
    return [t for t in dict.fromkeys(outer) if _fed_upstream(t)]


def _fed_upstream(t: Tensor) -> bool:
    seen: set[Operation] = set()
    stack = [t.op]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if op.type in _FEEDABLE:
            return True
        stack.extend(x.op for x in op.inputs)
    return False


def check_output(values: list[Any], fn: TracedFunction) -> list[np.ndarray]:
    """The function's outputs as arrays of their declared dtypes (the plan may give NumPy scalars)."""
    out = []
    for v, t in zip(values, fn.outputs):
        arr = v if type(v) is np.ndarray else np.asarray(v, dtype=t.dtype.np)
        out.append(arr)
    return out


def check_predicate(fn: TracedFunction) -> None:
    """`filter`'s function must return one scalar bool (ValueError otherwise, as in TF)."""
    if len(fn.outputs) != 1 or structure.is_structure(fn.structure) or fn.outputs[0].dtype != dtypes.bool \
            or not fn.outputs[0].shape.is_compatible_with(as_shape([])):
        got = ", ".join(f"{t.dtype.name}{t.shape}" for t in fn.outputs)
        raise ValueError(f"`predicate` return type must be convertible to a scalar boolean tensor. Was {got}.")

