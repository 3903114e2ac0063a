"""Writes one jitflow While as a TensorFlow 1.x loop frame (the layout is described in loop_export.py)."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import loop_grad_export
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph_io import ExportContext, tensor_ref
from jitflow.framework.loop_export import Frame, LoopExport, export_region, state, tf_type


def closure(targets: list[Tensor], members: set[Operation]) -> list[Operation]:
    """The ops of `members` that `targets` need (data and control), in graph order."""
    seen: set[Operation] = set()
    stack = [t.op for t in targets]
    while stack:
        op = stack.pop()
        if op in seen or op not in members:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return sorted(seen, key=lambda o: o._id)


def _frame_name(st: LoopExport, scope: str) -> str:
    taken = {n.attr["frame_name"].s.decode() for n in st.ctx.graph_def.node if n.op == "Enter"}
    name, i = f"{scope}while_context", 0
    while name in taken:
        i += 1
        name = f"{scope}while_context_{i}"
    return name


def _const(st: LoopExport, name: str, value: int, pivot: str | None) -> str:
    name = st.ctx.unique(name)
    st.node(name, "Const", [f"^{pivot}"] if pivot else [], {"value": np.int32(value), "dtype": dtypes.int32})
    return name


def export_while(ctx: ExportContext, op: Operation) -> None:
    """Writes `op` (a While) and its cond/body sub-graph as a v1 frame."""
    st = state(ctx)
    if st is None:
        raise InvalidArgumentError(None, None, f"While {op.name} can only be written as part of a graph")
    lb = op.attrs["body"]
    n = lb.n
    scope = op.name.rsplit("/", 1)[0] + "/" if "/" in op.name else ""
    fr = Frame(op, lb, _frame_name(st, scope), scope, parallel=op.attrs["parallel_iterations"])
    outer_pivot = st.frames[-1].pivot[st.frames[-1].region] if st.frames else None
    init_refs = [st.ref(t) for t in op.inputs[:n]]
    types = [tf_type(t, st) for t in op.inputs[:n]]
    counter = lb.has_max or op in st.grads  # an iteration count: for maximum_iterations, for the gradient
    if counter:
        init_refs.append(_const(st, f"{scope}iteration_counter", 0, outer_pivot))
        types.append(dtypes.int32)
    st.frames.append(fr)
    try:
        nexts = _write_loop(st, fr, init_refs, types, counter)
    finally:
        st.frames.pop()
    _write_exits(st, fr, op, types, nexts)


def _write_loop(st: LoopExport, fr: Frame, init_refs: list[str], types: list[dtypes.DType],
                counter: bool) -> list[str]:
    """Enter/Merge, the condition, Switch/Identity, the body and NextIteration; returns the Switches."""
    lb, scope = fr.lb, fr.scope
    enters = [st._enter(fr, r, dt, False) for r, dt in zip(init_refs, types)]
    nexts = [st.ctx.unique(f"{scope}NextIteration") for _ in enters]
    for e, nx, dt in zip(enters, nexts, types):
        fr.merges.append(st.ctx.unique(f"{scope}Merge"))
        st.node(fr.merges[-1], "Merge", [e, nx], {"T": dt, "N": 2})
    fr.pivot["cond"] = fr.merges[0]
    members = lb.ctx._ops
    cond_ops = closure([lb.cond_out], members)
    fr.cond_ops = set(cond_ops)
    fr.region = "cond"
    export_region(st, fr, cond_ops)
    cond = st.ref(lb.cond_out)
    if lb.has_max:
        limit = st.enter(fr, len(st.frames), fr.op.inputs[lb.n], fr.op.inputs[lb.n])
        less = st.ctx.unique(f"{scope}Less")
        st.node(less, "Less", [fr.merges[-1], limit], {"T": dtypes.int32})
        both = st.ctx.unique(f"{scope}LogicalAnd")
        st.node(both, "LogicalAnd", [less, cond], {})
        cond = both
    fr.loop_cond = st.ctx.unique(f"{scope}LoopCond")
    st.node(fr.loop_cond, "LoopCond", [cond], {})
    switches = []
    for k, (m, dt) in enumerate(zip(fr.merges, types)):
        switches.append(st.ctx.unique(f"{scope}Switch"))
        st.node(switches[-1], "Switch", [m, fr.loop_cond], {"T": dt})
        # the body's view of a variable takes the name of the sub-graph input it stands for (TF's Identity_k)
        native = k < lb.n and getattr(lb, "exit_names", None) is None  # (an imported loop's inputs are not)
        fr.idents.append(lb.ctx.inputs[k].op.name if native else st.ctx.unique(f"{scope}Identity"))
        st.node(fr.idents[-1], "Identity", [f"{switches[-1]}:1"], {"T": dt})
    fr.pivot["body"] = fr.idents[0]
    fr.region = "body"
    export_region(st, fr, [o for o in closure(list(lb.outs), members) if o not in fr.cond_ops])
    outs = [st.ref(t) for t in lb.outs]
    pushes = loop_grad_export.write_pushes(st, fr)
    if counter:
        one = _const(st, f"{scope}add/y", 1, fr.idents[0])
        add = st.ctx.unique(f"{scope}add")
        st.node(add, "AddV2", [fr.idents[-1], one], {"T": dtypes.int32})
        outs.append(add)
    for k, (nx, r, dt) in enumerate(zip(nexts, outs, types)):
        st.node(nx, "NextIteration", [r] + (pushes if k == 0 else []), {"T": dt})  # pushes run each iteration
    return switches


def _write_exits(st: LoopExport, fr: Frame, op: Operation, types: list[dtypes.DType], switches: list[str]) -> None:
    """An Exit per variable, under TF's names; references to the While's outputs are pointed at them."""
    if any(c.type != "WhileGrad" for c in op.outputs[fr.lb.n].consumers()):
        stub = st.ctx.unique(f"{fr.scope}history")  # jitflow's record for the gradient; TF's are stacks
        st.node(stub, "Const", [], {"value": np.float32(0), "dtype": dtypes.float32})
        st.remap[tensor_ref(op.outputs[fr.lb.n])] = stub
    named = exit_names(op)
    for k, (sw, dt) in enumerate(zip(switches, types)):
        name = named[k] if k < len(named) else st.ctx.unique(f"{fr.scope}Exit")
        st.ctx.names.add(name)
        st.node(name, "Exit", [sw], {"T": dt})
        if k == fr.lb.n:
            st.counters[op] = name
        if k < fr.lb.n:
            st.remap[tensor_ref(op.outputs[k])] = name
            if k == 0:
                st.remap["^" + op.name] = "^" + name


def exit_names(op: Operation) -> list[str]:
    """The names of a While's Exit nodes in a GraphDef: TF's (`while/Exit`, `while/Exit_1`, ...), or
    those the loop was imported with."""
    lb = op.attrs["body"]
    named = list(getattr(lb, "exit_names", None) or [])
    taken = op.graph._ops_by_name
    out: list[str] = []
    for k in range(lb.n):
        if k < len(named) and named[k]:
            out.append(named[k])
            continue
        base = op.name if k == 0 else f"{op.name}_{k}"
        name, i = base, 0
        while k and (name in taken or name in out):
            i += 1
            name = f"{base}_{i}"
        out.append(name)
    return out


def graph_def_name(item: Any) -> str:
    """The name of a tensor or op in the GraphDef jitflow writes (a While's outputs are its Exits)."""
    if isinstance(item, Tensor) and item.op.type == "While" and item.value_index < item.op.attrs["body"].n:
        return exit_names(item.op)[item.value_index] + ":0"
    return str(item.name)
