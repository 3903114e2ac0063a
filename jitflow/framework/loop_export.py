"""Export of jitflow While loops as TensorFlow 1.x loop frames, as `tf.compat.v1.while_loop` writes them.

For a While with n loop variables the frame `<scope>/while_context` holds, per variable, an Enter (the
initial value), a Merge (Enter, NextIteration), a Switch on the LoopCond, an Identity of the Switch's
true output, a NextIteration of the body's result and an Exit of the Switch's false output; the ops
that compute the condition read the Merges, those of the body the Identities; each captured tensor
comes in through a constant Enter; constants get the frame's pivot as control input, as TF's do.
A `maximum_iterations` becomes a counter variable ANDed into the condition, as in TF.
The Exit nodes take TF's names (`<scope>/Exit`, `<scope>/Exit_1`, ...) and every reference to a While
output is rewritten to them. Nested loops nest frames. TensorArrays are written in TF's handle + flow
form by loop_tensor_arrays.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Graph, Operation, Tensor
from jitflow.framework.graph_io import ExportContext, export_op, make_node, tensor_ref
from jitflow.protos.node_def import NodeDef

RESOURCE = 20  # DT_RESOURCE: TF's type of TensorArray and stack handles
VARIANT, FLOAT = dtypes.variant.as_datatype_enum, dtypes.float32.as_datatype_enum
_HANDLE_SOURCES = {"TFTensorArrayV3": 0, "TensorArrayGradV3": 0, "TensorArrayGradWithShape": 0, "StackV2": 0}


@dataclass
class Frame:
    """One loop frame being written."""

    op: Operation
    lb: Any
    frame_name: str
    scope: str
    region: str = "cond"
    merges: list[str] = field(default_factory=list)
    idents: list[str] = field(default_factory=list)
    cond_ops: set[Operation] = field(default_factory=set)
    enters: dict[Any, str] = field(default_factory=dict)
    pivot: dict[str, str] = field(default_factory=dict)
    loop_cond: str = ""
    members: set[Operation] = field(default_factory=set)  # the ops written inside (the sub-graph's by default)
    fixed: dict[Tensor, str] = field(default_factory=dict)  # tensors with a frame-local name (gradient frames)
    parallel: int = 10  # parallel_iterations
    renames: dict[str, str] | None = None  # op name -> node name, when the ops are written a second time

    def __post_init__(self) -> None:
        if not self.members and self.lb is not None:
            self.members = self.lb.ctx._ops


class LoopExport:
    """The loop part of one GraphDef export (kept on the ExportContext as `loops`)."""

    def __init__(self, ctx: ExportContext, graph: Graph) -> None:
        self.ctx = ctx
        self.inner: set[Operation] = set()
        self.outer_of: dict[Tensor, Tensor] = {}
        self.remap: dict[str, str] = {}
        self.frames: list[Frame] = []
        self.exit_idents: set[Operation] = set()
        self.grads: dict[Operation, list[Operation]] = {}  # forward While -> its WhileGrad ops
        self.pushes: dict[Operation, Any] = {}  # WhileGrad -> what its forward frame pushed for it
        self.counters: dict[Operation, str] = {}  # forward While -> the Exit of its iteration counter
        self.grad_sets: dict[Operation, set[Operation]] = {}  # WhileGrad -> its gradient ops
        for op in graph.get_operations():
            if op.type == "While":
                self._note_loop(op)
            elif op.type == "WhileGrad":
                from jitflow.framework import loop_grad_export

                self.grads.setdefault(op.inputs[0].op, []).append(op)
                self.grad_sets[op] = loop_grad_export.grad_members(op)
                self.inner |= self.grad_sets[op] | {t.op for t in op.inputs[0].op.attrs["body"].grad_inputs}

    def _note_loop(self, op: Operation) -> None:
        lb = op.attrs["body"]
        self.inner |= lb.ctx._ops
        for t, outer in zip(lb.ctx.inputs, op.inputs):
            self.outer_of[t] = outer
        for t, outer in zip(lb.ctx.capture_inputs, lb.ctx.captured):
            self.outer_of[t] = outer
        for name in getattr(lb, "exit_names", None) or ():
            ident = op.graph._ops_by_name.get(name) if name else None
            if ident is not None and ident.attrs.get("_loop_exit"):
                self.exit_idents.add(ident)

    def top_level(self, ops: list[Operation]) -> list[Operation]:
        """The ops written outside every frame. Ops outside that read a sub-graph's values (the unused
        branches of a loop's gradient, which never run) are left out, with what reads them."""
        dead: set[Operation] = set()
        out = []
        for op in ops:
            if op in self.inner or op in self.exit_idents:
                continue
            if any(t.op in self.inner or t.op in dead for t in op.inputs) or \
                    any(c in self.inner or c in dead for c in op.control_inputs):
                dead.add(op)
                continue
            out.append(op)
        return out

    def finish(self) -> None:
        """Rewrites references to While outputs (and jitflow TensorArray flows) to TF's nodes."""
        for node in self.ctx.graph_def.node:
            if "T" in node.attr and node.attr["T"].type == VARIANT:
                node.attr["T"].type = FLOAT  # a jitflow TensorArray flow: TF's flows are float
            for i, r in enumerate(node.input):
                new = self.remap.get(r)
                if new is not None:
                    node.input[i] = new

    # ---- references ------------------------------------------------------------------------------

    def level_of(self, op: Operation) -> int:
        """How deep in the frames being written `op` lives (0: outside them all)."""
        for d in range(len(self.frames), 0, -1):
            if op in self.frames[d - 1].members:
                return d
        return 0

    def ref(self, t: Tensor, depth: int | None = None) -> str:
        """How a node at frame depth `depth` (the current one by default) names tensor `t`."""
        depth = len(self.frames) if depth is None else depth
        if depth == 0:
            return tensor_ref(t)
        fr = self.frames[depth - 1]
        if t in fr.fixed:
            return fr.fixed[t]
        if fr.renames is not None and t.op.name in fr.renames:
            new = fr.renames[t.op.name]
            return new if t.value_index == 0 else f"{new}:{t.value_index}"
        if t.op.type == "_SubgraphInput" and t.op in fr.members:
            ins = fr.lb.ctx.inputs
            if t in ins:
                k = ins.index(t)
                return fr.merges[k] if fr.region == "cond" else fr.idents[k]
            return self.enter(fr, depth, self.outer_of[t], t)
        if t.op not in fr.members:
            return self.enter(fr, depth, t, t)
        return tensor_ref(t)  # (a body op may read a condition value directly, as TF writes it)

    def handle_ref(self, ta: Operation) -> str:
        """How the current frame names the handle of the TensorArray that `ta` created."""
        depth = len(self.frames)
        level = self.level_of(ta)
        name = f"{ta.name}:0"
        for d in range(level + 1, depth + 1):
            fr = self.frames[d - 1]
            key = ("handle", ta)
            if key not in fr.enters:
                fr.enters[key] = self._enter(fr, name, dtypes.float32, True, resource=True)
            name = fr.enters[key]
        return name

    def enter(self, fr: Frame, depth: int, outer: Tensor, inner: Tensor) -> str:
        """The constant Enter through which frame `fr` reads the outer tensor."""
        if outer not in fr.enters:
            src = self.ref(outer, depth - 1)
            fr.enters[outer] = self._enter(fr, src, tf_type(outer, self), True, resource=is_handle(outer, self),
                                          ref=outer.op.type in ("VariableV2", "Variable"))
        return fr.enters[outer]

    def _enter(self, fr: Frame, src: str, dt: dtypes.DType, const: bool, resource: bool = False,
               ref: bool = False) -> str:
        """An Enter into frame `fr` (a RefEnter for a variable used by reference, as TF writes it)."""
        name = self.ctx.unique(f"{fr.scope}Enter")
        attrs = {"T": dt, "frame_name": fr.frame_name, "is_constant": const, "parallel_iterations": fr.parallel}
        node = self.node(name, "RefEnter" if ref else "Enter", [src], attrs)
        if resource:
            node.attr["T"].type = RESOURCE
        return name

    def node(self, name: str, op_type: str, inputs: list[str], attrs: dict[str, Any]) -> NodeDef:
        return make_node(self.ctx, name, op_type, inputs, attrs)


def tf_type(t: Tensor, st: LoopExport) -> dtypes.DType:
    """The TF type of a loop value: a jitflow TensorArray flow (variant) travels as TF's float flow."""
    return dtypes.float32 if t.dtype is dtypes.variant else t.dtype


def is_handle(t: Tensor, st: LoopExport) -> bool:
    """Whether `t` is a TF-form handle (a TensorArray's or a stack's), following loop inputs."""
    seen = 0
    while seen < 1000:
        seen += 1
        op = t.op
        if _HANDLE_SOURCES.get(op.type) == t.value_index:
            return True
        if op.type == "_SubgraphInput" and t in st.outer_of:
            t = st.outer_of[t]
        elif op.type == "Identity":
            t = op.inputs[0]
        else:
            return False
    return False


def state(ctx: ExportContext) -> LoopExport | None:
    st: LoopExport | None = ctx.loops
    return st


def prepare(ctx: ExportContext, graph: Graph, ops: list[Operation]) -> list[Operation]:
    """Sets up the loop part of an export; returns the ops to write at the top level."""
    st = LoopExport(ctx, graph)
    ctx.loops = st
    return st.top_level(ops)


def finish(ctx: ExportContext) -> None:
    st = state(ctx)
    if st is not None:
        st.finish()


def export_region(st: LoopExport, fr: Frame, ops: list[Operation]) -> None:
    """Writes the ops of the cond or body part of a frame, with their references made frame-local."""
    for op in ops:
        if op.type == "_SubgraphInput" or op in st.exit_idents:  # (a nested loop's Exit stands for it)
            continue
        start = len(st.ctx.graph_def.node)
        if op.type == "While":
            export_op(st.ctx, op)
            continue
        export_op(st.ctx, op)
        for node in st.ctx.graph_def.node[start:]:
            if fr.renames is not None and node.name == op.name:  # (a second gradient of one loop)
                node.name = fr.renames[op.name] = st.ctx.unique(op.name)
            _localize(st, fr, node)


def _localize(st: LoopExport, fr: Frame, node: NodeDef) -> None:
    g = fr.op.graph
    for i, r in enumerate(node.input):
        ctrl = r.startswith("^")
        name, _, idx = r.lstrip("^").partition(":")
        op = g._ops_by_name.get(name)
        if op is None:
            continue
        if op.type == "TensorArrayV3" and idx == "0":
            continue  # a TensorArray handle, already named for this frame
        if ctrl:
            if op not in fr.members:
                node.input[i] = "^" + fr.pivot[fr.region]  # an outer control input: TF needs it in-frame
            elif fr.renames is not None and name in fr.renames:
                node.input[i] = "^" + fr.renames[name]
            continue
        node.input[i] = st.ref(op.outputs[int(idx or 0)])
    if not node.input:
        node.input.append("^" + fr.pivot[fr.region])  # a constant inside the loop: in the frame, as TF's
