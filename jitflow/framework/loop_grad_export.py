"""jitflow's loop gradient (`WhileGrad`) written as TensorFlow 1.x writes a while_loop's gradient.

The forward frame pushes, every iteration, each value the gradient reads onto a stack (`StackV2` /
`StackPushV2`, ordered before the next iteration as TF orders them) and counts its iterations. The
gradient frame runs that many times: it pops the values (`StackPopV2`), runs the body's gradient ops,
carries the gradient of each loop variable and sums the gradient of each captured tensor. TensorArray
gradients become TF's gradient arrays (`TensorArrayGradV3`, source "gradients"), written and read by
index like TF's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph_io import ExportContext, make_node, tensor_ref
from jitflow.framework.loop_export import Frame, LoopExport, export_region, state, tf_type

SOURCE = "gradients"


def grad_members(op: Operation) -> set[Operation]:
    """The ops of a WhileGrad's gradient sub-graph (between its feeds and its results)."""
    lb = op.inputs[0].op.attrs["body"]
    if lb.saved is None:
        return set()
    feeds = {t.op for t in lb.ctx.inputs + lb.ctx.capture_inputs + lb.saved + lb.grad_inputs}
    body = lb.ctx._ops
    back: set[Operation] = set()
    stack = [t.op for t in lb.grad_outs if t is not None]
    while stack:
        o = stack.pop()
        if o in back or o in body or o in feeds:
            continue
        back.add(o)
        stack.extend(t.op for t in o.inputs)
        stack.extend(o.control_inputs)
    reach: set[Operation] = set()
    for o in sorted(back, key=lambda o: o._id):
        if any(i.op in feeds or i.op in body or i.op in reach for i in o.inputs) or \
                any(c in reach for c in o.control_inputs):
            reach.add(o)
    return reach


def _needed(lb: Any, members: set[Operation]) -> list[Tensor]:
    """The per-iteration values (loop variables, body values) the gradient ops read."""
    per_iter = set(lb.ctx.inputs) | set(lb.saved or ())
    out: dict[Tensor, None] = {}
    for o in sorted(members, key=lambda o: o._id):
        for t in o.inputs:
            if t in per_iter:
                out[t] = None
    return list(out)


def write_pushes(st: LoopExport, fr: Frame) -> list[str]:
    """In a forward frame's body: a stack and a push for each value its gradients read; the pushes'
    names as control inputs (for the frame's NextIteration)."""
    out: list[str] = []
    for g in st.grads.get(fr.op, []):
        if len(st.frames) > 1:
            raise InvalidArgumentError(None, None, f"The gradient {g.name} of a loop nested in another loop "
                                                   "cannot be written to a GraphDef")
        pushed = []
        for t in _needed(fr.lb, st.grad_sets[g]):
            size = st.ctx.unique(f"{g.name}/Const")
            st.node(size, "Const", [], {"value": np.int32(-1), "dtype": dtypes.int32})
            acc = st.ctx.unique(f"{g.name}/f_acc")
            st.node(acc, "StackV2", [size], {"elem_type": tf_type(t, st), "stack_name": ""})
            enter = st._enter(fr, acc, dtypes.float32, True, resource=True)
            push = st.ctx.unique(f"{g.name}/StackPushV2")
            st.node(push, "StackPushV2", [enter, st.ref(t)],
                    {"T": tf_type(t, st), "swap_memory": bool(fr.op.attrs.get("swap_memory"))})
            out.append("^" + push)
            pushed.append((t, acc))
        st.pushes[g] = pushed
    return out


def export_while_grad(ctx: ExportContext, op: Operation) -> None:
    """Writes a WhileGrad as TF's gradient frame."""
    st = state(ctx)
    fwd = op.inputs[0].op
    if st is None or op not in st.pushes or fwd not in st.counters:
        raise InvalidArgumentError(None, None, f"The loop gradient {op.name} can only be written with its forward "
                                               f"loop {fwd.name}")
    lb = fwd.attrs["body"]
    n, caps = lb.n, lb.ctx.captured
    accs = [j for j in range(len(caps)) if lb.grad_outs[n + j] is not None]
    scope = op.name.rsplit("/", 1)[0] + "/" if "/" in op.name else ""
    from jitflow.framework.loop_frame_export import _frame_name

    fr = Frame(op, None, _frame_name(st, scope), scope, members=st.grad_sets[op],
               parallel=fwd.attrs["parallel_iterations"], renames={} if st.grads[fwd][0] is not op else None)
    inits = [st.counters[fwd]] + [tensor_ref(t) for t in op.inputs[1:1 + n]]
    types = [dtypes.int32] + [tf_type(t, st) for t in op.inputs[1:1 + n]]
    for j in accs:
        zeros = st.ctx.unique(f"{scope}zeros_like")
        st.node(zeros, "ZerosLike", [tensor_ref(caps[j])], {"T": tf_type(caps[j], st)})
        inits.append(zeros)
        types.append(tf_type(caps[j], st))
    st.frames.append(fr)
    try:
        switches = _write_grad_loop(st, fr, lb, inits, types, accs)
    finally:
        st.frames.pop()
    for k, (sw, dt) in enumerate(zip(switches, types)):
        name = st.ctx.unique(f"{scope}Exit")
        st.node(name, "Exit", [sw], {"T": dt})
        if k == 0:
            continue
        out = op.outputs[k - 1] if k <= n else op.outputs[n + accs[k - 1 - n]]
        st.remap[tensor_ref(out)] = name
    for j in range(len(caps)):
        if j not in accs:  # no gradient: zeros, as the WhileGrad kernel gives
            zeros = st.ctx.unique(f"{scope}zeros_like")
            st.node(zeros, "ZerosLike", [tensor_ref(caps[j])], {"T": tf_type(caps[j], st)})
            st.remap[tensor_ref(op.outputs[n + j])] = zeros


def _loop_head(st: LoopExport, fr: Frame, inits: list[str], types: list[dtypes.DType],
               cond: str) -> tuple[list[str], list[str]]:
    """Enter, Merge (with the NextIteration names to come), condition `cond` on the first variable,
    LoopCond, Switch and Identity; returns (switches, nexts)."""
    enters = [st._enter(fr, r, dt, False) for r, dt in zip(inits, types)]
    nexts = [st.ctx.unique(f"{fr.scope}NextIteration") for _ in enters]
    for e, nx, dt in zip(enters, nexts, types):
        fr.merges.append(st.ctx.unique(f"{fr.scope}Merge"))
        st.node(fr.merges[-1], "Merge", [e, nx], {"T": dt, "N": 2})
    fr.pivot["cond"] = fr.merges[0]
    zero = _int_const(st, fr, 0, fr.merges[0])
    test = st.ctx.unique(f"{fr.scope}{cond}")
    st.node(test, cond, [fr.merges[0], zero], {"T": dtypes.int32})
    fr.loop_cond = st.ctx.unique(f"{fr.scope}LoopCond")
    st.node(fr.loop_cond, "LoopCond", [test], {})
    switches = []
    for m, dt in zip(fr.merges, types):
        switches.append(st.ctx.unique(f"{fr.scope}Switch"))
        st.node(switches[-1], "Switch", [m, fr.loop_cond], {"T": dt})
        fr.idents.append(st.ctx.unique(f"{fr.scope}Identity"))
        st.node(fr.idents[-1], "Identity", [f"{switches[-1]}:1"], {"T": dt})
    fr.pivot["body"] = fr.idents[0]
    fr.region = "body"
    return switches, nexts


def _int_const(st: LoopExport, fr: Frame, v: int, pivot: str) -> str:
    name = st.ctx.unique(f"{fr.scope}Const")
    st.node(name, "Const", [f"^{pivot}"], {"value": np.int32(v), "dtype": dtypes.int32})
    return name


def _write_grad_loop(st: LoopExport, fr: Frame, lb: Any, inits: list[str], types: list[dtypes.DType],
                     accs: list[int]) -> list[str]:
    n = lb.n
    switches, nexts = _loop_head(st, fr, inits, types, "Greater")
    for k, t in enumerate(lb.grad_inputs):
        fr.fixed[t] = fr.idents[1 + k]
    used = {t for o in fr.members for t in o.inputs}
    for t, outer in zip(lb.ctx.capture_inputs, lb.ctx.captured):
        if t in used:  # a loop invariant: entered again, from outside, into the gradient frame
            fr.fixed[t] = st.enter(fr, len(st.frames), outer, outer)
    for t, acc in st.pushes[fr.op]:
        enter = st._enter(fr, acc, dtypes.float32, True, resource=True)
        pop = st.ctx.unique(f"{fr.scope}StackPopV2")
        st.node(pop, "StackPopV2", [enter, f"^{fr.idents[0]}"], {"elem_type": tf_type(t, st)})
        fr.fixed[t] = pop
    export_region(st, fr, sorted(fr.members, key=lambda o: o._id))
    outs = [st.ctx.unique(f"{fr.scope}sub")]
    st.node(outs[0], "Sub", [fr.idents[0], _int_const(st, fr, 1, fr.idents[0])], {"T": dtypes.int32})
    for k in range(n):
        g = lb.grad_outs[k]
        if g is None:
            name = st.ctx.unique(f"{fr.scope}zeros_like")
            st.node(name, "ZerosLike", [fr.idents[1 + k]], {"T": types[1 + k]})
            outs.append(name)
        else:
            outs.append(st.ref(g))
    for i, j in enumerate(accs):
        name = st.ctx.unique(f"{fr.scope}add")
        st.node(name, "AddV2", [fr.idents[1 + n + i], st.ref(lb.grad_outs[n + j])], {"T": types[1 + n + i]})
        outs.append(name)
    for nx, r, dt in zip(nexts, outs, types):
        st.node(nx, "NextIteration", [r], {"T": dt})
    return switches


# ---- TensorArray gradients in TF's form ------------------------------------------------------------------

def _grad_array(ctx: ExportContext, op: Operation, flow_in: str) -> str:
    """A TensorArrayGradV3 node for the forward array of `op`; returns its name."""
    from jitflow.framework.loop_tensor_arrays import array_of

    st = state(ctx)
    ta = array_of(op.attrs["forward"], st)
    handle = st.handle_ref(ta) if st is not None else f"{ta.name}:0"
    name = ctx.unique(f"{op.name}/TensorArrayGradV3")
    make_node(ctx, name, "TensorArrayGradV3", [handle, flow_in], {"source": SOURCE}, op.device)
    return name


def _export_ta_grad(ctx: ExportContext, op: Operation) -> None:
    ins = [tensor_ref(t) for t in op.inputs]
    t = op.type
    if t == "TensorArrayGradAdd":
        make_node(ctx, op.name, "AddN", ins, {"T": dtypes.float32, "N": len(ins)}, op.device)
        return
    if t in ("TensorArrayGradFrom", "TensorArrayGradFromSplit"):
        zero = ctx.unique(f"{op.name}/flow")
        make_node(ctx, zero, "Const", [], {"value": np.float32(0), "dtype": dtypes.float32}, op.device)
        gh = _grad_array(ctx, op, zero)
        if t == "TensorArrayGradFrom":  # (indices, values)
            make_node(ctx, op.name, "TensorArrayScatterV3", [f"{gh}:0", ins[0], ins[1], f"{gh}:1"],
                      {"T": op.inputs[1].dtype}, op.device)
        else:  # (values, lengths)
            make_node(ctx, op.name, "TensorArraySplitV3", [f"{gh}:0", ins[0], ins[1], f"{gh}:1"],
                      {"T": op.inputs[0].dtype}, op.device)
        return
    gh = _grad_array(ctx, op, ins[0])
    if t == "TensorArrayGradRead":  # (g, index, like)
        make_node(ctx, op.name, "TensorArrayReadV3", [f"{gh}:0", ins[1], f"{gh}:1"],
                  {"dtype": op.outputs[0].dtype}, op.device)
    elif t == "TensorArrayGradGather":  # (g, indices, like)
        make_node(ctx, op.name, "TensorArrayGatherV3", [f"{gh}:0", ins[1], f"{gh}:1"],
                  {"dtype": op.outputs[0].dtype}, op.device)
    else:  # TensorArrayGradSplit (g, like, lengths): the elements' gradients concatenated
        make_node(ctx, op.name, "TensorArrayConcatV3", [f"{gh}:0", f"{gh}:1"],
                  {"dtype": op.outputs[0].dtype}, op.device)


def _export_grad(ctx: ExportContext, op: Operation) -> None:
    export_while_grad(ctx, op)


EXPORT_HOOKS: dict[str, Any] = {
    "WhileGrad": _export_grad,
    **{t: _export_ta_grad for t in ("TensorArrayGradAdd", "TensorArrayGradFrom", "TensorArrayGradFromSplit",
                                    "TensorArrayGradGather", "TensorArrayGradRead", "TensorArrayGradSplit")},
}
