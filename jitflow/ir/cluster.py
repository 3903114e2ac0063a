"""The cluster IR: a fused group of ops as a straight-line program over scalars.

`compiler/cluster.py` builds it from a plan's ops; the code generators (`codegen/cpu.py`,
`codegen/cuda.py`) render it. It sits below both so that code generation depends on no compiler
module.

The cluster IR
--------------
A `Cluster` is a straight-line program over scalars, run once per point of an iteration space:

* ``inputs``: the kernel's array arguments, in order. Each is a `ClusterInput`: an external tensor
  (feed, constant, variable read, output of another step) or, for a variable update, the variable's
  current value (``var`` set to the variable op's name). Values are always arguments, never baked in.
* ``nodes``: `Node`s in dependency order. A node applies one op type (``op_type`` is the registry type,
  e.g. ``"AddV2"``, ``"Sum"``, ``"AssignSub"``) to earlier values. Value ids: ``0..len(inputs)-1`` are
  the inputs, ``len(inputs) + k`` is node k. ``attrs`` holds only what changes the generated code
  (e.g. ``DstT`` of Cast, ``axis``/``keep_dims`` of reductions), canonicalized to plain data.
* ``outputs``: `ClusterOutput`s: which node values leave the kernel (read by other steps, fetched, or
  stored into a variable).
* ``kind``: ``"elementwise"`` (all nodes elementwise, variable updates included) or ``"reduction"``
  (exactly one reduction node, the last one, fed by every other node: its elementwise prologue).
* Dtypes (NumPy names) and static ranks are on every input and node; sizes are not: kernels are
  shape-polymorphic.

The broadcast pattern is decided from runtime shapes by `Layout` (see `ir/layout.py`): the
broadcast iteration shape is collapsed into groups of adjacent dims; each input has a mask saying which
groups it spans (it is broadcast along the others), and a reduction marks the groups it reduces. A
kernel is specialized on ``(cluster.signature(), layout)``; clusters with equal signatures share
kernels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jitflow.framework.graph import Operation, Tensor

ELEMENTWISE = "elementwise"
REDUCTION = "reduction"


@dataclass(frozen=True)
class ClusterInput:
    """One array argument of a kernel: an external tensor, or a variable's current value."""

    tensor: Tensor | None  # None for a variable's current value
    dtype: str  # NumPy dtype name
    rank: int | None  # static rank (None if unknown)
    var: str | None = None  # variable op name when this is a variable's current value


@dataclass(frozen=True)
class Node:
    """One scalar operation of the kernel body."""

    op_type: str
    args: tuple[int, ...]  # value ids (inputs first, then nodes)
    dtype: str  # NumPy dtype name of the result
    rank: int | None  # static rank of the op's result
    attrs: tuple[tuple[str, Any], ...] = ()  # canonical attrs that change the generated code

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default


@dataclass(frozen=True)
class ClusterOutput:
    """A node value leaving the kernel: for a tensor read outside, and/or a variable's new value."""

    node: int  # index into Cluster.nodes
    tensor: Tensor | None  # the op output it provides (None for a pure variable store)
    var: str | None = None  # variable op name to store the value into


@dataclass
class Cluster:
    """A fused group of ops: the kernel IR shared by the CPU and CUDA code generators."""

    ops: list[Operation]
    inputs: list[ClusterInput]
    nodes: list[Node]
    outputs: list[ClusterOutput]
    kind: str  # ELEMENTWISE or REDUCTION
    backend: str = "cpu"  # "cpu" or "cuda"
    node_ops: list[Operation] = field(default_factory=list)  # the op of each node (for errors)
    _deps: dict[int, frozenset[int]] | None = field(default=None, repr=False, compare=False)

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def value_dtype(self, vid: int) -> str:
        """Dtype of value id `vid` (an input or a node)."""
        return self.inputs[vid].dtype if vid < self.n_inputs else self.nodes[vid - self.n_inputs].dtype

    def deps(self, vid: int) -> frozenset[int]:
        """The input indices that value `vid` depends on (its broadcast shape is theirs)."""
        memo = self._deps
        if memo is None or len(memo) != self.n_inputs + len(self.nodes):
            memo = {}
            for i in range(self.n_inputs):
                memo[i] = frozenset((i,))
            for k, node in enumerate(self.nodes):
                acc: frozenset[int] = frozenset()
                for a in node.args:
                    acc = acc | memo[a]
                memo[self.n_inputs + k] = acc
            self._deps = memo
        return memo[vid]

    def reduction(self) -> Node | None:
        """The reduction node of a REDUCTION cluster."""
        return self.nodes[-1] if self.kind == REDUCTION else None

    def signature(self) -> dict[str, Any]:
        """Everything that determines the generated code, without names: the structural cache key."""
        return {
            "kind": self.kind,
            "backend": self.backend,
            "inputs": [(i.dtype, i.rank, i.var is not None) for i in self.inputs],
            "nodes": [(n.op_type, list(n.args), n.dtype, n.rank, [list(a) for a in n.attrs])
                      for n in self.nodes],
            "outputs": [(o.node, o.var is not None, o.tensor is not None) for o in self.outputs],
        }

    def op_names(self) -> list[str]:
        return [op.name for op in self.ops]
