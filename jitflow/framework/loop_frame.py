"""One TensorFlow loop frame of a GraphDef rebuilt as a jitflow `While` (see loop_import.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from jitflow import dtypes
from jitflow.framework import graph_io
from jitflow.framework.function import SubgraphContext, tracing
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.loop_import import (
    ENTER,
    EXIT,
    NEXT,
    FrameGraph,
    _base,
    _import_level,
    _out_index,
    _strip_controls,
    fresh_name,
    malformed,
    side_effect_ops,
    sub_context,
)
from jitflow.protos.node_def import NodeDef


@dataclass
class LoopParts:
    """A frame's nodes by role."""

    cond: NodeDef
    merges: list[NodeDef] = field(default_factory=list)
    enters: list[NodeDef] = field(default_factory=list)  # the Enter of each merge
    nexts: list[NodeDef] = field(default_factory=list)  # the NextIteration of each merge
    switch_var: dict[str, int] = field(default_factory=dict)  # loop Switch -> its variable
    invariants: list[NodeDef] = field(default_factory=list)  # constant Enters
    exits: list[NodeDef] = field(default_factory=list)
    body: list[NodeDef] = field(default_factory=list)
    exit_side: list[NodeDef] = field(default_factory=list)  # ops between a Switch:0 and an Exit
    views: dict[str, int] = field(default_factory=dict)  # Identity(Switch:1) -> its variable: the input itself


def _is_const(n: NodeDef) -> bool:
    return "is_constant" in n.attr and n.attr["is_constant"].b


def _parts(fg: FrameGraph, name: str) -> LoopParts:
    nodes = fg.frames[name].nodes
    conds = [n for n in nodes if n.op == "LoopCond"]
    if len(conds) != 1:
        raise malformed(nodes[0].name, f"frame '{name}' has {len(conds)} LoopCond nodes, a loop has one")
    p = LoopParts(conds[0])
    by = fg.by_name
    for n in nodes:
        if n.op in ("Merge", "RefMerge") and any(by.get(_base(r)) is not None and by[_base(r)].op in NEXT
                                                 for r in n.input):
            _add_merge(p, n, by, name)
    merge_ix = {m.name: k for k, m in enumerate(p.merges)}
    structural = {n.name for n in p.merges + p.enters + p.nexts} | {p.cond.name}
    for n in nodes:
        if n.op in ("Switch", "RefSwitch") and len(n.input) == 2 and _base(n.input[1]) == p.cond.name:
            if _base(n.input[0]) not in merge_ix:
                raise malformed(n.name, "a Switch on the LoopCond must switch a loop variable's Merge")
            p.switch_var[n.name] = merge_ix[_base(n.input[0])]
            structural.add(n.name)
    read = {_base(r) for n in nodes for r in n.input}
    for n in nodes:
        if n.name in structural or (n.op in ENTER and not _is_const(n) and n.name not in read):
            continue  # (an Enter nothing reads: TF's gradient of an unused loop output)
        if n.op in ENTER:
            if not _is_const(n):
                raise malformed(n.name, "an Enter that is not constant must feed a loop variable's Merge")
            p.invariants.append(n)
        elif n.op in EXIT:
            p.exits.append(n)
        elif n.op in NEXT:
            raise malformed(n.name, "a NextIteration must feed a loop variable's Merge")
        elif n.op == "Identity" and len(n.input) == 1 and n.input[0].endswith(":1") \
                and _base(n.input[0]) in p.switch_var:
            p.views[n.name] = p.switch_var[_base(n.input[0])]  # (one step less per variable and iteration)
        else:
            p.body.append(n)
    _split_exit_side(p)
    return p


def _add_merge(p: LoopParts, m: NodeDef, by: dict[str, NodeDef], frame: str) -> None:
    ins = [by.get(_base(r)) for r in m.input]
    enters = [n for n in ins if n is not None and n.op in ENTER]
    nexts = [n for n in ins if n is not None and n.op in NEXT]
    if len(m.input) != 2 or len(enters) != 1 or len(nexts) != 1:
        raise malformed(m.name, "a loop variable's Merge takes one Enter and one NextIteration")
    if _is_const(enters[0]) or enters[0].attr["frame_name"].s.decode() != frame:
        raise malformed(enters[0].name, "a loop variable enters with a non-constant Enter of its own frame")
    p.merges.append(m)
    p.enters.append(enters[0])
    p.nexts.append(nexts[0])


def _split_exit_side(p: LoopParts) -> None:
    """Body ops whose data come from a Switch's false output run once, after the loop."""
    exit_side: set[str] = set()
    members = {n.name: n for n in p.body}
    for n in graph_io._topological(list(p.body)):
        data = [r for r in n.input if not r.startswith("^")]
        if any((_base(r) in p.switch_var and _out_index(r) == 0) or _base(r) in exit_side for r in data):
            bad = [r for r in data if _base(r) in members and _base(r) not in exit_side]
            bad += [r for r in data if _base(r) in p.switch_var and _out_index(r) != 0]
            if bad:
                raise malformed(n.name, f"it reads both a loop's exit value and the body value '{bad[0]}'")
            exit_side.add(n.name)
    p.exit_side = [n for n in p.body if n.name in exit_side]
    p.body = [n for n in p.body if n.name not in exit_side]


def _scope(frame: str) -> str:
    return frame[:-len("while_context")] if frame.endswith("/while_context") else frame + "/"


def import_frame(ctx: graph_io.ImportContext, fg: FrameGraph, name: str) -> None:
    """Imports frame `name` (and the frames nested in it) as one While; registers its Exit nodes."""
    from jitflow.ops.while_loop import LoopBody

    p = _parts(fg, name)
    g = ctx.graph
    inits = [ctx.tensor(e.input[0], e.name) for e in p.enters]
    outer = {f"{e.name}:0": ctx.tensor(e.input[0], e.name) for e in p.invariants}
    scope = ctx.prefix + _scope(name)
    sctx = SubgraphContext(g, g._control_flow_context, scope)
    with tracing(sctx):
        ins = [sctx.add_input(t.dtype, t.shape, _scope(name) + "loop_var") for t in inits]
        extra = dict(outer)
        for k, m in enumerate(p.merges):
            extra[f"{m.name}:0"] = ins[k]
        for sw, k in p.switch_var.items():
            extra[f"{sw}:1"] = ins[k]
        for view, k in p.views.items():
            extra[f"{view}:0"] = ins[k]
        body = sub_context(ctx, extra)
        _import_level(body, fg, name, p.body)
        cond = sctx.inside(body.tensor(p.cond.input[0], p.cond.name))
        outs = [sctx.inside(body.tensor(n.input[0], n.name)) for n in p.nexts]
        _run_side_effects(body, fg, name, p, outs)
    _check_loop(p, cond, ins, outs)
    lb = LoopBody(sctx, cond, outs, False)
    pi = p.enters[0].attr["parallel_iterations"].i if p.enters and "parallel_iterations" in p.enters[0].attr else 10
    shapes = [x.shape.merge_with(y.shape) for x, y in zip(ins, outs)]  # TF keeps them equal: take what is known
    op = g.create_op("While", inits + sctx.captured,
                     {"body": lb, "T": [t.dtype for t in inits], "shapes": shapes,
                      "parallel_iterations": int(pi) or 10, "back_prop": True, "swap_memory": False},
                     name=fresh_name(ctx, scope + "While"), exact_name=True)
    _import_exits(ctx, p, op, outer)


def _run_side_effects(body: graph_io.ImportContext, fg: FrameGraph, name: str, p: LoopParts,
                      outs: list[Tensor]) -> None:
    """Ops of the body that nothing reads (a gradient's stack pushes) run before its first result."""
    consumed = {_base(r) for f in fg.subtree(name) for n in fg.frames[f].nodes for r in n.input}
    side = side_effect_ops(body, p.body, consumed, set(p.switch_var))
    ctrl = {_base(r) for n in [*p.nexts, p.cond] for r in n.input if r.startswith("^")}  # TF orders pushes so
    side += [body.ops[c] for c in sorted(ctrl) if c in body.ops and body.ops[c] not in side]
    if side and outs:
        g = body.graph
        t = outs[0]
        outs[0] = g.create_op("Identity", [t], {"T": t.dtype}, name=fresh_name(body, t.op.name + "/side_effects"),
                              control_inputs=side, exact_name=True).outputs[0]


def _check_loop(p: LoopParts, cond: Tensor, ins: list[Tensor], outs: list[Tensor]) -> None:
    if cond.dtype is not dtypes.bool:
        raise malformed(p.cond.name, f"the loop condition is {cond.dtype.name}, not bool")
    for m, x, y in zip(p.merges, ins, outs):
        if y.dtype is not x.dtype:
            raise malformed(m.name, f"the loop variable enters as {x.dtype.name} and the body returns "
                                    f"{y.dtype.name}")
        if not x.shape.is_compatible_with(y.shape):
            raise malformed(m.name, f"the loop variable enters with shape {x.shape} and the body returns shape "
                                    f"{y.shape}; jitflow keeps a loop variable's shape")


def _import_exits(ctx: graph_io.ImportContext, p: LoopParts, op: Operation, outer: dict[str, Tensor]) -> None:
    """The ops after the loop: those on a Switch's false side, then each Exit as an Identity."""
    extra = dict(outer)
    for sw, k in p.switch_var.items():
        extra[f"{sw}:0"] = op.outputs[k]
    ex = sub_context(ctx, extra)
    keep = {n.name for n in p.exit_side}
    for n in graph_io._topological([_strip_controls(n, keep) for n in p.exit_side]):
        ctx.ops[n.name] = graph_io.import_node(ex, n)
    lb = op.attrs["body"]
    lb.exit_names = [None] * lb.n
    for e in p.exits:
        if not e.input:
            raise malformed(e.name, "an Exit needs an input")
        src = e.input[0]
        if not ((_base(src) in p.switch_var and _out_index(src) == 0) or _base(src) in keep):
            raise malformed(e.name, "an Exit must read a loop Switch's false output")
        v = ex.tensor(src, e.name)
        direct = v.op is op and lb.exit_names[v.value_index] is None
        with ctx.graph.control_dependencies(None):
            ident = ctx.graph.create_op("Identity", [v], {"T": v.dtype, "_loop_exit": direct},
                                        name=ctx.renamed[e.name], exact_name=True)
        if direct:
            lb.exit_names[v.value_index] = ident.name
        ctx.ops[e.name] = ident
