"""Import of TensorFlow 1.x loop frames (Enter/Merge/Switch/LoopCond/NextIteration/Exit) as jitflow While ops.

TF writes a `tf.while_loop` as a cyclic set of nodes tagged with a frame name. Here each frame becomes
one jitflow `While` whose cond and body are a closed sub-graph (as `tf.while_loop` builds them), so an
imported loop is planned and compiled like a native one:
- each Merge fed by an Enter and a NextIteration is a loop variable: the Enter's input is its initial
  value, the NextIteration's input the body's result; `Merge` and `Switch:1` read the variable;
- a constant Enter (`is_constant`) is a loop invariant, captured by the sub-graph;
- the LoopCond's input is the condition;
- an Exit (possibly after ops on the `Switch:0` side, as TF's gradient code writes) becomes an Identity
  under the Exit's name, reading the While's output, so that `get_tensor_by_name("while/Exit_1:0")` works;
- ops of a frame that nothing in it consumes (a gradient's StackPushV2, say) still run every iteration.
Frames nest (a loop in a loop body). Malformed frames are an InvalidArgumentError naming the node.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from jitflow.errors import InvalidArgumentError
from jitflow.framework import graph_io
from jitflow.framework.graph import Operation, Tensor
from jitflow.protos.node_def import NodeDef

ENTER = ("Enter", "RefEnter")
EXIT = ("Exit", "RefExit")
NEXT = ("NextIteration", "RefNextIteration")
TOP = ""


def _base(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _out_index(ref: str) -> int:
    _, _, idx = ref.partition(":")
    return int(idx or 0)


def malformed(node: str, msg: str) -> InvalidArgumentError:
    return InvalidArgumentError(None, None, f"Malformed while loop in the GraphDef at node '{node}': {msg}")


@dataclass
class Frame:
    """The nodes of one loop frame."""

    name: str
    parent: str
    nodes: list[NodeDef] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


class FrameGraph:
    """The frame of every node of a GraphDef (TOP for nodes outside any loop)."""

    def __init__(self, nodes: list[NodeDef]) -> None:
        self.by_name = {n.name: n for n in nodes}
        self.frame_of: dict[str, str] = {}
        self.frames: dict[str, Frame] = {}
        for n in _postorder(nodes, self.by_name):
            self.frame_of[n.name] = self._assign(n)
        for n in nodes:
            name = self.frame_of[n.name]
            if name != TOP:
                self.frames[name].nodes.append(n)
        for fr in self.frames.values():
            if fr.parent != TOP:
                self.frames[fr.parent].children.append(fr.name)

    def depth(self, f: str) -> int:
        d = 0
        while f != TOP:
            f, d = self.frames[f].parent, d + 1
        return d

    def out_frame(self, ref: str) -> str:
        """The frame in which the tensor `ref` lives (an Exit's output lives in its loop's parent)."""
        n = self.by_name.get(_base(ref))
        if n is None:
            return TOP  # an input_map'd tensor: outside every loop
        f = self.frame_of[n.name]
        return self.frames[f].parent if n.op in EXIT and f != TOP else f

    def _assign(self, n: NodeDef) -> str:
        if n.op in ENTER:
            name = n.attr["frame_name"].s.decode() if "frame_name" in n.attr else ""
            if not name or not n.input:
                raise malformed(n.name, "an Enter needs a frame_name and an input")
            parent = self.out_frame(n.input[0])
            fr = self.frames.setdefault(name, Frame(name, parent))
            if fr.parent != parent:
                raise malformed(n.name, f"frame '{name}' is entered from two different frames")
            return name
        deps = _deps(n, self.by_name)
        if not deps:
            return TOP
        frames = [self.out_frame(d) for d in deps]
        best = max(frames, key=self.depth)
        for d, f in zip(deps, frames):
            if not self._within(best, f):
                raise malformed(n.name, f"input '{d}' lives in frame '{f or '(top level)'}' but the node is "
                                        f"in frame '{best}': a value leaves a loop without an Exit")
        return best

    def _within(self, inner: str, outer: str) -> bool:
        while inner != outer:
            if inner == TOP:
                return False
            inner = self.frames[inner].parent
        return True

    def subtree(self, f: str) -> set[str]:
        out = {f}
        for c in self.frames[f].children:
            out |= self.subtree(c)
        return out


def _deps(n: NodeDef, by_name: dict[str, NodeDef]) -> list[str]:
    """The inputs a node's frame follows from: a loop Merge ignores its NextIteration input."""
    refs = list(n.input)
    if n.op in ("Merge", "RefMerge"):
        refs = [r for r in refs if by_name.get(_base(r)) is None or by_name[_base(r)].op not in NEXT]
    return refs


def _postorder(nodes: list[NodeDef], by_name: dict[str, NodeDef]) -> list[NodeDef]:
    """Nodes after their inputs (NextIteration back edges cut); malformed on another cycle."""
    order: list[NodeDef] = []
    state: dict[str, int] = {}
    for root in nodes:
        stack = [(root, 0)]
        while stack:
            n, i = stack.pop()
            if i == 0:
                if state.get(n.name) == 2:
                    continue
                state[n.name] = 1
            deps = [d for d in (_base(r) for r in _deps(n, by_name)) if d in by_name]
            if i < len(deps):
                stack.append((n, i + 1))
                d = by_name[deps[i]]
                if state.get(d.name) == 1:
                    raise malformed(d.name, "the graph has a cycle that does not pass through a NextIteration")
                if state.get(d.name) != 2:
                    stack.append((d, 0))
                continue
            state[n.name] = 2
            order.append(n)
    return order


def import_nodes(ctx: graph_io.ImportContext, nodes: list[NodeDef]) -> None:
    """Imports `nodes` (some of them in loop frames) into `ctx.graph`."""
    fg = FrameGraph(nodes)
    graph_io._unique_names(ctx, nodes)
    _import_level(ctx, fg, TOP, [n for n in nodes if fg.frame_of[n.name] == TOP])


def _strip_controls(n: NodeDef, keep: set[str]) -> NodeDef:
    """`n` without the control inputs that name nodes outside `keep` (a loop's pivots)."""
    ins = [r for r in n.input if not r.startswith("^") or _base(r) in keep]
    if len(ins) == len(n.input):
        return n
    m = NodeDef()
    m.CopyFrom(n)
    del m.input[:]
    m.input.extend(ins)
    return m


def _unit(name: str, inputs: list[str]) -> NodeDef:
    n = NodeDef(name=name, op="\x00unit")
    n.input.extend(dict.fromkeys(inputs))
    return n


def _import_level(ctx: graph_io.ImportContext, fg: FrameGraph, frame: str, members: list[NodeDef]) -> None:
    """Imports the ordinary nodes of one level (TOP or a loop body), with each child frame as one unit."""
    children = [c for c in (fg.frames[frame].children if frame != TOP else
                            [f.name for f in fg.frames.values() if f.parent == TOP])]
    keep = {n.name for n in members} | {n.name for c in children for n in fg.frames[c].nodes if n.op in EXIT}
    units: list[NodeDef] = [_strip_controls(n, keep) for n in members]
    unit_of: dict[str, str] = {}
    for c in children:
        inside = fg.subtree(c)
        cnodes = [n for f in inside for n in fg.frames[f].nodes]
        names = {n.name for n in cnodes}
        outer = [_base(r) for n in cnodes for r in n.input if _base(r) not in names]
        key = "\x00frame/" + c
        units.append(_unit(key, [r for r in outer if r in keep]))
        unit_of[key] = c
        for n in fg.frames[c].nodes:
            if n.op in EXIT:
                units.append(_unit(n.name, [key]))
                unit_of[n.name] = ""
    for u in graph_io._topological(units):
        if u.op != "\x00unit":
            ctx.ops[u.name] = graph_io.import_node(ctx, u)
        elif unit_of[u.name]:
            from jitflow.framework import loop_frame  # (it builds on this module)

            loop_frame.import_frame(ctx, fg, unit_of[u.name])


def fresh_name(ctx: graph_io.ImportContext, base: str) -> str:
    """A name neither in the graph nor given to a node of the GraphDef being imported."""
    taken = set(ctx.renamed.values())
    g = ctx.graph
    name, i = base, 0
    while name in taken or name in g._ops_by_name or name.lower() in g._names_in_use:
        i += 1
        name = f"{base}_{i}"
    g._mark_name_used(name)
    return name


def sub_context(ctx: graph_io.ImportContext, extra: dict[str, Tensor]) -> graph_io.ImportContext:
    """An ImportContext sharing `ctx`'s names and ops, with more tensors mapped (a loop's structure)."""
    return graph_io.ImportContext(ctx.graph, ctx.prefix, {**ctx.input_map, **extra}, ctx.clear_devices,
                                  ctx.renamed, ctx.ops, ctx.used_inputs)


def side_effect_ops(ctx: graph_io.ImportContext, members: list[NodeDef], consumed: set[str],
                    loop_switches: set[str]) -> list[Operation]:
    """The stateful imported ops among `members` that no node of the frame reads (they must still run).
    Those inside a cond's branch are left to their branch: a dead control input would kill the loop."""
    from jitflow.framework import registry

    by_name = {n.name: n for n in members}
    branch: set[str] = set()
    for n in graph_io._topological(list(members)):
        for r in n.input:
            src = by_name.get(_base(r))
            if _base(r) in branch or (src is not None and src.op in ("Switch", "RefSwitch")
                                      and src.name not in loop_switches):
                branch.add(n.name)
    out = []
    for n in members:
        op = ctx.ops.get(n.name)
        if op is not None and n.name not in consumed and n.name not in branch and \
                registry.get_opdef(op.type).kind == registry.STATEFUL and op.type != "ControlTrigger":
            out.append(op)
    return out
