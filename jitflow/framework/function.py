"""Sub-graph tracing: a Python function traced once into ops that read only its own inputs.

A loop body is built in the user's graph, but as a closed sub-graph: each input is a `_SubgraphInput`
op, and every tensor the function reads from outside is *captured*: replaced by another input op, whose
value the enclosing op (the `While`) passes in. Variables the function assigns stay references, so the
assignment reaches the session's variable. The executor plans the sub-graph once and replays it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Graph, Operation, Tensor
from jitflow.framework.tensor_shape import TensorShape, as_shape


def _input_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    raise RuntimeError(f"Sub-graph input '{op.name}' was not fed by its enclosing op")


registry.register_op("_SubgraphInput", lambda op: [(op.attrs["dtype"], op.attrs["shape"])], _input_kernel,
                     registry.SOURCE)


@contextlib.contextmanager
def outside_control_flow(g: Graph) -> Iterator[None]:
    """Builds ops in the graph's top level (no cond branch, no loop body): variables and initializers."""
    saved = g._control_flow_context
    g._control_flow_context = None
    try:
        yield
    finally:
        g._control_flow_context = saved


class SubgraphContext:
    """The control-flow context of a function being traced into a closed sub-graph."""

    def __init__(self, g: Graph, outer: Any, name: str) -> None:
        self.graph = g
        self.outer = outer
        self.name = name
        self._ops: set[Operation] = set()
        self.inputs: list[Tensor] = []
        self.captured: list[Tensor] = []  # outside tensors, in the order of their inputs below
        self.capture_inputs: list[Tensor] = []
        self._captures: dict[Tensor, Tensor] = {}
        self.ref_vars: set[Operation] = set()  # variables used as references (assigned) inside

    def contains(self, op: Operation) -> bool:
        return op in self._ops

    def add_input(self, dtype: dtypes.DType, shape: Any, name: str) -> Tensor:
        """A new input of the sub-graph (a loop variable, say)."""
        t = self._new_input(dtype, as_shape(shape), name)
        self.inputs.append(t)
        return t

    def _new_input(self, dtype: dtypes.DType, shape: TensorShape, name: str) -> Tensor:
        g = self.graph
        saved = g._control_flow_context
        g._control_flow_context = None
        try:
            with g.control_dependencies(None):
                op = g.create_op("_SubgraphInput", [], {"dtype": dtype, "shape": shape}, name=name)
        finally:
            g._control_flow_context = saved
        self._ops.add(op)
        return op.outputs[0]

    def capture(self, t: Tensor) -> Tensor:
        """`t` (from outside) as seen inside: an input fed with t's value by the enclosing op."""
        res = self._captures.get(t)
        if res is None:
            res = self._new_input(t.dtype, t.shape, "capture")
            self._captures[t] = res
            self.captured.append(t)
            self.capture_inputs.append(res)
        return res

    def inside(self, t: Tensor) -> Tensor:
        """`t` itself if built inside the sub-graph, else its capture."""
        return t if self.contains(t.op) else self.capture(t)

    def enter_op(self, op_type: str, inputs: list[Tensor]) -> tuple[list[Tensor], list[Operation]]:
        """Called by Graph.create_op for each op built inside: outside values become captures."""
        refs = registry.get_opdef(op_type).ref_inputs
        new: list[Tensor] = []
        for i, t in enumerate(inputs):
            if self.contains(t.op):
                new.append(t)
            elif i in refs or t.op.type == "VariableV2":
                # A variable used by reference: read and written in place on every iteration.
                self.ref_vars.add(t.op)
                new.append(t)
            else:
                new.append(self.capture(t))
        return new, []

    def created(self, op: Operation) -> None:
        self._ops.add(op)

    def control_inputs_ok(self, op: Operation) -> None:
        """Drops control inputs on ops outside the sub-graph (they ran before the enclosing op)."""
        outside = [c for c in op._control_inputs if not self.contains(c)]
        for c in outside:
            op._control_inputs.remove(c)


@contextlib.contextmanager
def tracing(ctx: SubgraphContext) -> Iterator[SubgraphContext]:
    """Ops built inside belong to `ctx`'s sub-graph; outer control dependencies do not apply."""
    g = ctx.graph
    saved = g._control_flow_context
    g._control_flow_context = ctx
    try:
        with g.control_dependencies(None):
            yield ctx
    finally:
        g._control_flow_context = saved
    for op in list(ctx._ops):
        ctx.control_inputs_ok(op)
