"""The JIT stage of plan building: replace groups of interpreted steps by compiled ones.

`lower(plan)` clusters the plan's ops (`compiler/cluster.py`), builds the cluster IR, and replaces the
members' interpreted steps by one `ClusterStep` per cluster (placed where its last member was). MatMul
runs through BLAS into a reused buffer. Everything else keeps its interpreted step; the reasons are in
`plan.report["fallbacks"]`.

The steps themselves (`ClusterStep`, `MatMulStep`, ...) live in `compiler/steps.py`.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from jitflow import errors, flags
from jitflow.codegen import lowering as L
from jitflow.compiler.cluster import REDUCTION, STRUCTURAL, Cluster, build_cluster, canonical_attrs, cluster
from jitflow.compiler.placement import gpu_count, requested_gpu
from jitflow.compiler.plan import TRASH_SLOT, Plan, Step, fetched_reads, var_reads
from jitflow.compiler.steps import (  # noqa: F401 - re-exported: the steps were defined here first
    ClusterStep,
    MatMulStep,
    SoftmaxStep,
    SparseXentStep,
    UnbroadcastDynStep,
    _dynamic_unbroadcast,
    _warm,
    compile_kernel,
    compile_predicted,
    reduce_axes,
)
from jitflow.compiler.window_steps import WINDOW_OPS, find_epilogues, window_step
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.ir.expr import Dialect

# Ops whose reference kernel already is a BLAS call with reused buffers: their own step, not a fallback.
_BLAS_KERNELS = frozenset({"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"})
_AXIS_REDUCTIONS = ("Sum", "Mean", "Max", "Min", "Prod", "All", "Any")
_ANY_DIALECT = Dialect()  # whether a node lowers (and whether it can fail) is the same in every dialect


def member_reason(op: Operation) -> str | None:
    """None if `op` can join a cluster; "" if it is lowered as its own step; else why it cannot."""
    t = op.type
    if t in STRUCTURAL:
        return "structural"
    if t in _BLAS_KERNELS or t in WINDOW_OPS:
        return ""  # its own step: the conv/pool kernels of jitflow/kernels (compiler/window_steps.py)
    if t in _ROW_OPS:
        dt = np.dtype(op.inputs[0].dtype.np).name
        ok = dt in ("float32", "float64") and (len(op.inputs) == 1 or np.dtype(op.inputs[1].dtype.np).name
                                               in ("int32", "int64"))
        return "" if ok else f"{t} on {dt} is interpreted"
    if t in _BLAS:
        dts = {np.dtype(x.dtype.np).name for x in op.inputs}
        return "" if dts <= {"float32", "float64"} and len(dts) == 1 else f"{t} on {sorted(dts)} is interpreted"
    try:
        in_dts = [np.dtype(x.dtype.np).name for x in op.inputs]
        out_dts = [np.dtype(x.dtype.np).name for x in op.outputs]
    except TypeError:
        return "dtype not supported by the compiler"
    for dt in in_dts + out_dts:
        if dt not in L.SUPPORTED:
            return f"dtype {dt} not supported by the compiler"
    rule = L.update_rule(t)
    if rule is not None:
        var_dt = in_dts[rule.refs[0]]
        if rule.reads and var_dt not in L.NUMERIC:
            return f"{t} of a {var_dt} variable is interpreted"
        if any(op.inputs[r].op.type != "VariableV2" for r in rule.refs):
            return f"{t} of a reference that is not a variable"
        return None
    kind = op.opdef.kind
    if L.derived_attrs(op) is None:
        return (f"{t} target shape is known only at run time (identity when the shapes already match, "
                "else interpreted)")
    if kind == registry.REDUCTION:
        rule_r = L.REDUCTIONS.get(t)
        if rule_r is None:
            return f"no lowering for reduction {t}"
        if in_dts[0] not in rule_r.dtypes:
            return f"{t} on {in_dts[0]} is interpreted"
        axes = op.attrs.get("axis") if t in _AXIS_REDUCTIONS else None
        if axes is not None and any(a < 0 for a in axes):
            return "reduction axes are not known when the plan is built"
        return None
    if kind == registry.STATEFUL:
        return f"stateful op {t} runs as its own step"
    lowered = L.has_elementwise(t)
    if kind != registry.ELEMENTWISE and not lowered:
        return f"no lowering for {t} ({kind})"
    if not lowered:
        return op.opdef.no_lowering or f"no lowering for elementwise op {t}"
    if t == "Select" and op.inputs[0].shape.ndims == 1 and (op.inputs[1].shape.ndims or 0) > 1:
        return "Select with a vector condition picks rows (interpreted)"
    if t == "Select" and op.inputs[0].shape.ndims is None:
        return "Select with a condition of unknown rank"
    names = [f"a{i}" for i in range(len(in_dts))]
    attrs = dict(canonical_attrs(op, L.ATTRS.get(t, ())))
    if L.node_code(t, names, in_dts, out_dts[0], attrs.get, _ANY_DIALECT) is None:
        return f"{t} on {', '.join(in_dts)} has no lowering"
    return None


# -- steps -------------------------------------------------------------------------------------------------


_BLAS = {"MatMul": MatMulStep}
_ROW_OPS = ("SparseSoftmaxCrossEntropyWithLogits", "Softmax", "LogSoftmax")


# -- the entry -----------------------------------------------------------------------------------------------


_wide_tried = False


def _wide_vectors_once() -> None:
    """512-bit vectors for the kernels on AVX-512 hosts (~20% on W2); must precede the first compile.

    A process-wide Numba setting (see `vmath.enable_wide_vectors`); it is part of every kernel's cache
    key, so kernels built with and without it never mix.
    """
    global _wide_tried
    if not _wide_tried:
        _wide_tried = True
        from jitflow.codegen import vmath

        vmath.enable_wide_vectors()


def lower(plan: Plan) -> None:
    """Replaces the plan's interpreted steps by compiled clusters and BLAS steps, in place."""
    _wide_vectors_once()
    ops = plan.ops
    feed_set = set(plan.feed_slots)
    fed = {t for t, s in plan.slots.items() if s in feed_set}
    fetched = {t for t, s in plan.slots.items() if s in set(plan.fetch_slots)}
    epilogues = find_epilogues(ops, fetched, fed)  # Conv2D -> BiasAdd (-> Relu) in the conv's output pass
    absorbed = {m for e in epilogues.values() for m in e.ops}
    fused_at = {e.ops[-1]: conv_op for conv_op, e in epilogues.items()}
    res = cluster(ops, fed, lambda op: "" if op in absorbed else member_reason(op))
    # an UnbroadcastTo whose target is a run-time Shape gets its own step (below): not a fallback
    fallbacks = [f for f in res.fallbacks if not _dynamic_unbroadcast(f.op, fed)]
    report: dict[str, Any] = {"clusters": [], "fallbacks": [
        {"op": f.op.name, "type": f.op.type, "reason": f.reason} for f in fallbacks]}
    plan.report = report
    if fallbacks and flags.fallback_is_error():
        f = fallbacks[0]
        raise errors.UnimplementedError(f.op.node_def, f.op, f"JITFLOW_FALLBACK=error: op {f.op.name} "
                                                             f"({f.op.type}) would run interpreted: {f.reason}")
    readers: dict[Tensor, set[Operation]] = {}
    for op in ops:
        for i, t in enumerate(op.inputs):
            if i not in op.opdef.ref_inputs:
                readers.setdefault(t, set()).add(op)
    own: dict[Operation, Step] = {}  # ops lowered as their own step (BLAS)
    matmul_of: dict[Tensor, Operation] = {}
    for op in ops:
        if op.type in _BLAS and member_reason(op) == "":
            t = op.outputs[0]
            own[op] = _BLAS[op.type](op, [plan.slots[x] for x in op.inputs], plan.slots[t], t in fetched,
                                     plan.op_steps[op])
            matmul_of[t] = op
        elif op.type in WINDOW_OPS:
            own[op], window_entry = window_step(op, plan.slots, fetched, plan.op_steps[op], epilogues.get(op),
                                                plan.op_steps)
            report["clusters"].append(window_entry)
        elif _dynamic_unbroadcast(op, fed) and member_reason(op):
            shape_op = op.inputs[1].op
            own[op] = UnbroadcastDynStep(op, plan.slots[op.inputs[0]], plan.slots[shape_op.inputs[0]],
                                         plan.slots[op.outputs[0]], [plan.op_steps[shape_op], plan.op_steps[op]])
        elif op.type in _ROW_OPS and member_reason(op) == "":
            row_entry: dict[str, Any] = {"ops": [op.name], "backend": "cpu", "key": "", "compile_seconds": 0.0,
                                         "source": "deferred"}
            report["clusters"].append(row_entry)
            outs = [TRASH_SLOT if t in fed else plan.slots[t] for t in op.outputs]
            if op.type == "SparseSoftmaxCrossEntropyWithLogits":
                own[op] = SparseXentStep(op, [plan.slots[x] for x in op.inputs], outs,
                                         [t in fetched for t in op.outputs], plan.op_steps[op], row_entry)
            else:
                own[op] = SoftmaxStep(op, plan.slots[op.inputs[0]], outs[0], op.outputs[0] in fetched,
                                      plan.op_steps[op], row_entry)
    var_shapes = {op.name: op.attrs.get("shape") for op in ops if op.type == "VariableV2"}
    gpu_plan = any(requested_gpu(op) is not None for op in ops)
    n_gpus = gpu_count() if gpu_plan else 0
    cluster_steps: list[ClusterStep] = []
    cluster_at: dict[Operation, ClusterStep] = {}  # last member -> its cluster's step
    clustered: set[Operation] = set()
    for members in res.clusters:
        mset = set(members)
        needed = {t for m in members for t in m.outputs
                  if t in fetched or any(r not in mset for r in readers.get(t, ()))}
        for m in members:
            for r in m.opdef.ref_inputs:
                v = m.inputs[r].op
                var_shapes.setdefault(v.name, v.attrs.get("shape"))
        upd_refs = {t: (r.refs, r.reads) for t, r in L.UPDATES.items()}
        c = build_cluster(members, fed, needed, upd_refs, L.ATTRS, "cpu", L.DATA_INPUTS, L.derived_attrs)
        in_slots = [plan.slots[i.tensor] if i.tensor is not None else -1 for i in c.inputs]
        out_slots = [plan.slots[o.tensor] if o.tensor is not None else -1 for o in c.outputs]
        fresh = [o.var is not None or (o.tensor is not None and o.tensor in fetched) for o in c.outputs]
        epilogue_of = [matmul_of[i.tensor].name for i in c.inputs if i.tensor in matmul_of]
        entry: dict[str, Any] = {"ops": epilogue_of + [m.name for m in members], "backend": c.backend,
                                 "key": "", "compile_seconds": 0.0, "source": "deferred"}
        report["clusters"].append(entry)
        member_steps = [plan.op_steps[m] for m in members]
        step = ClusterStep(c, in_slots, out_slots, fresh, member_steps, entry, var_shapes)
        step.has_checks = any(_has_checks(c, k) for k in range(len(c.nodes)))
        cluster_steps.append(step)
        cluster_at[members[-1]] = step
        clustered |= mset
        if not (n_gpus and all(requested_gpu(m) is not None for m in members)):
            _warm(step)  # (a GPU cluster compiles for CUDA instead)
        if flags.debug_level() >= 3:
            print(f"jitflow: cluster {entry['ops']} ({c.kind}, {len(c.inputs)} inputs, "
                  f"{len(c.outputs)} outputs)", file=sys.stderr)
    if flags.debug_level() >= 3:
        for f in report["fallbacks"]:
            print(f"jitflow: fallback {f['op']} ({f['type']}): {f['reason']}", file=sys.stderr)
    folded = _fold_constants(plan, fed)
    unused = _unused_shape_ops(ops, clustered | {o for o, st in own.items() if isinstance(st, UnbroadcastDynStep)},
                               cluster_steps, fetched)
    for st in cluster_steps:  # the interpreted fallback of a cluster still needs those values
        pre = [plan.op_steps[t.op] for m in st.c.ops for t in m.inputs if t.op in unused]
        if pre:
            st.member_steps = pre + st.member_steps
    steps: list[Step] = []
    for op in ops:
        if op in plan.lazy_vars or op in folded or op in unused or op in epilogues or op in absorbed:
            if op not in fused_at:
                continue
            conv_op = fused_at[op]  # a fused conv runs where its last epilogue op was: its bias is ready
            for m in [conv_op, *epilogues[conv_op].ops]:
                steps.extend(var_reads(m, plan.lazy_vars, plan.op_steps))
            steps.append(own[conv_op])
            continue
        cstep = cluster_at.get(op)
        if cstep is not None:
            done: set[Operation] = set()
            for m in cstep.c.ops:  # variables are read just before the step that consumes them
                steps.extend(var_reads(m, plan.lazy_vars, plan.op_steps, done))
            steps.append(cstep)
        elif op.type == "NoOp" and not op.outputs:
            continue  # orders its control inputs, which the plan order already does
        elif op not in clustered:
            own_step = own.get(op) or _light_step(op, plan, fed)
            if isinstance(own_step, UnbroadcastDynStep) and op.inputs[1].op not in unused:
                own_step.fallback = own_step.fallback[1:]  # the Shape step runs anyway
            steps.extend(var_reads(op, plan.lazy_vars, plan.op_steps))
            steps.append(own_step or plan.op_steps[op])
    steps.extend(fetched_reads(plan, plan.fetches))
    # variable reads: a dict lookup (the interpreted step only when the variable is missing, to raise)
    steps = [_light_var_read(st) for st in steps]
    plan.steps = steps
    _mark_array_outputs(cluster_steps, readers)
    if gpu_plan:
        from jitflow.compiler.gpu import lower_gpu_clusters  # only plans that ask for a GPU load it

        lower_gpu_clusters(plan)


def _light_step(op: Operation, plan: Plan, fed: set[Tensor]) -> Step | None:
    """A cheaper step than the interpreted one for Identity (a slot copy), or None."""
    if op.type in ("Identity", "StopGradient") and len(op.inputs) == 1 and op.outputs[0] not in fed:
        src, dst = plan.slots[op.inputs[0]], plan.slots[op.outputs[0]]

        def identity(ctx: Any, vals: list) -> None:
            vals[dst] = vals[src]

        identity.op = op  # type: ignore[attr-defined]
        return identity
    return None


def _light_var_read(step: Step) -> Step:
    op = getattr(step, "op", None)
    if op is None or op.type != "VariableV2" or not hasattr(step, "slots"):
        return step
    name, dst = op.name, step.slots[1][0]  # type: ignore[attr-defined]

    def read(ctx: Any, vals: list) -> None:
        v = ctx.variables.get(name)
        if v is None:
            return step(ctx, vals)  # raises the interpreter's FailedPreconditionError
        vals[dst] = v
        return None

    read.op = op  # type: ignore[attr-defined]
    return read


def _unused_shape_ops(ops: list[Operation], clustered: set[Operation], cluster_steps: list[ClusterStep],
                      fetched: set[Tensor]) -> set[Operation]:
    """Shape/Size/Rank ops whose value nothing reads any more (e.g. targets folded into a cluster)."""
    read: set[Tensor] = {i.tensor for st in cluster_steps for i in st.c.inputs if i.tensor is not None}
    controls: set[Operation] = set()
    for op in ops:
        controls.update(op.control_inputs)
        if op not in clustered:
            read.update(op.inputs)
    return {op for op in ops if op.type in ("Shape", "Size", "Rank") and op not in controls
            and not any(t in read or t in fetched for t in op.outputs)}


def _fold_constants(plan: Plan, fed: set[Tensor]) -> set[Operation]:
    """Const values go into the plan's initial slots: no step runs for them. Returns the folded ops."""
    template: list[Any] = [None] * plan.n_slots
    folded: set[Operation] = set()
    for op in plan.ops:
        if op.type == "Const" and not op.control_inputs and op.outputs[0] not in fed:
            value = op.attrs["value"]
            if isinstance(value, np.ndarray):
                template[plan.slots[op.outputs[0]]] = value
                folded.add(op)
    if folded:
        plan.template = template
    return folded


def _mark_array_outputs(cluster_steps: list[ClusterStep], readers: dict[Tensor, set[Operation]]) -> None:
    """One-element outputs read only by clusters (or only fetched) may stay NumPy scalars."""
    in_cluster = {m for st in cluster_steps for m in st.c.ops}
    for st in cluster_steps:
        mine = set(st.c.ops)
        st.need_array = [o.tensor is not None and any(r not in in_cluster and r not in mine
                                                      for r in readers.get(o.tensor, ()))
                         for o in st.c.outputs]


def _has_checks(c: Cluster, k: int) -> bool:
    node = c.nodes[k]
    if node.op_type in L.UPDATES or c.kind == REDUCTION and k == len(c.nodes) - 1:
        return False
    e = L.node_code(node.op_type, [f"a{i}" for i in range(len(node.args))], [c.value_dtype(a) for a in node.args],
                    node.dtype, node.attr, _ANY_DIALECT)
    return bool(e is not None and e.checks)
