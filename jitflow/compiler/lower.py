"""The JIT stage of plan building: replace groups of interpreted steps by compiled ones.

`lower(plan)` runs `PASSES` in order over a `Lowering` (the plan and what earlier passes decided):

1. `cluster_ops`: group the ops into clusters (`compiler/cluster.py`); report the fallbacks.
2. `library_kernels`: MatMul through BLAS, softmax/cross-entropy row kernels, run-time UnbroadcastTo.
3. `build_clusters`: each cluster's IR and `ClusterStep`; CPU kernels compile here, GPU clusters later.
4. `fold_constants`: Const values into the plan's initial slots.
5. `prune_shape_ops`: Shape ops whose value nothing reads any more.
6. `order_steps`: the new step list, variables read just before their consumers.
7. `mark_array_outputs`: which one-element outputs may stay NumPy scalars.
8. `move_to_gpu`: steps of ops placed on an available GPU become CUDA steps (`compiler/gpu/`).
9. `update_in_place`: compiled variable updates that may write over the variable's array
   (`compiler/in_place.py`).

Everything else keeps its interpreted step; the reasons are in `plan.report["fallbacks"]`. The steps
themselves (`ClusterStep`, `MatMulStep`, ...) live in `compiler/steps.py`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jitflow import errors, flags
from jitflow.codegen import lowering as L
from jitflow.compiler import placement  # gpu_count through the module: tests stand in for it
from jitflow.compiler.backend import backend, cluster_backend, devices_of
from jitflow.compiler.cluster import (
    REDUCTION,
    Cluster,
    Clustering,
    build_cluster,
    canonical_attrs,
    cluster,
)
from jitflow.compiler.in_place import update_in_place
from jitflow.compiler.placement import requested_gpu
from jitflow.compiler.plan import TRASH_SLOT, Plan, Step, fetched_reads, var_reads
from jitflow.compiler.segment_steps import SegmentSumStep
from jitflow.compiler.slice_steps import SLICE_OPS, slice_step
from jitflow.compiler.step import Chain, IdentityStep, ReshapeStep, ShapeStep, VarReadStep
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
from jitflow.compiler.window_steps import WINDOW_OPS, Epilogue, find_epilogues, window_step
from jitflow.compiler.xent_grad import XentGrad, XentGradStep, find_xent_grads
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.ir.expr import Dialect
from jitflow.kernels.omp import passive_wait
from jitflow.ops.op_util import const_value

# Ops whose reference kernel already is a BLAS call with reused buffers: their own step, not a fallback.
_BLAS_KERNELS = frozenset({"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"})
_AXIS_REDUCTIONS = ("Sum", "Mean", "Max", "Min", "Prod", "All", "Any")
_ANY_DIALECT = Dialect()  # whether a node lowers (and whether it can fail) is the same in every dialect


def member_reason(op: Operation) -> str | None:
    """None if `op` can join a cluster; "" if it is lowered as its own step; else why it cannot."""
    t = op.type
    if op.opdef.structural:
        return "structural"
    if t in registry.INTERPRETED:
        return registry.INTERPRETED[t]
    if t in ("While", "WhileGrad"):  # the loop's sub-plans are lowered on their own
        return "loop: its cond/body sub-plans are planned and compiled separately (see the loop's entries)"
    if t in _BLAS_KERNELS or t in WINDOW_OPS:
        return ""  # its own step: the conv/pool kernels of jitflow/kernels (compiler/window_steps.py)
    if op.opdef.library:
        return _library_reason(op)
    try:
        in_dts = [np.dtype(x.dtype.np).name for x in op.inputs]
        out_dts = [np.dtype(x.dtype.np).name for x in op.outputs]
    except TypeError:
        return "dtype not supported by the compiler"
    for dt in in_dts + out_dts:
        if dt not in L.SUPPORTED:
            return f"dtype {dt} not supported by the compiler"
    if L.update_rule(t) is not None:
        return _update_reason(op, in_dts)
    if L.derived_attrs(op) is None:
        return (f"{t} target shape is known only at run time (identity when the shapes already match, "
                "else interpreted)")
    kind = op.opdef.kind
    if kind == registry.REDUCTION:
        return _reduction_reason(op, in_dts)
    if kind == registry.STATEFUL:
        return f"stateful op {t} runs as its own step"
    return _elementwise_reason(op, in_dts, out_dts)


def _passes_through(op: Operation, fed: set[Tensor]) -> bool:
    """An Identity (StopGradient) that may join its producer's cluster: no control inputs, not fed, not a
    variable's snapshot (read lazily, `plan.var_reads`), of a dtype kernels handle."""
    if op.type not in ("Identity", "StopGradient") or op.control_inputs or len(op.inputs) != 1:
        return False
    x = op.inputs[0]
    return x not in fed and op.outputs[0] not in fed and x.op.type != "VariableV2" \
        and np.dtype(x.dtype.np).name in L.SUPPORTED


def _library_reason(op: Operation) -> str:
    """"" when a row-kernel or BLAS op takes its library step (its dtypes allow it), else why not."""
    t = op.type
    if op.opdef.library == "segments":
        dt, it = (np.dtype(x.dtype.np).name for x in op.inputs[:2])
        ok = dt in ("float32", "float64") and it in ("int32", "int64") and requested_gpu(op) is None
        return "" if ok else f"{t} of {dt} by {it} ids is interpreted"
    if op.opdef.library == "rows":
        dt = np.dtype(op.inputs[0].dtype.np).name
        ok = dt in ("float32", "float64") and (len(op.inputs) == 1 or np.dtype(op.inputs[1].dtype.np).name
                                               in ("int32", "int64"))
        return "" if ok else f"{t} on {dt} is interpreted"
    dts = {np.dtype(x.dtype.np).name for x in op.inputs}
    return "" if dts <= {"float32", "float64"} and len(dts) == 1 else f"{t} on {sorted(dts)} is interpreted"


def _update_reason(op: Operation, in_dts: list[str]) -> str | None:
    """Why a variable update cannot be fused (None: it can)."""
    rule = L.update_rule(op.type)
    assert rule is not None
    var_dt = in_dts[rule.refs[0]]
    if rule.reads and var_dt not in L.NUMERIC:
        return f"{op.type} of a {var_dt} variable is interpreted"
    if any(op.inputs[r].op.type != "VariableV2" for r in rule.refs):
        return f"{op.type} of a reference that is not a variable"
    return None


def _reduction_reason(op: Operation, in_dts: list[str]) -> str | None:
    """Why a reduction cannot be fused (None: it can)."""
    t = op.type
    rule = L.reduction_rule(t)
    if rule is None:
        return op.opdef.no_lowering or f"no lowering for reduction {t}"
    if in_dts[0] not in rule.dtypes:
        return f"{t} on {in_dts[0]} is interpreted"
    axes = op.attrs.get("axis") if t in _AXIS_REDUCTIONS else None
    if axes is not None and any(a < 0 for a in axes):
        return "reduction axes are not known when the plan is built"
    return None


def _elementwise_reason(op: Operation, in_dts: list[str], out_dts: list[str]) -> str | None:
    """Why an elementwise (or other) op cannot be fused (None: its formula lowers for these dtypes)."""
    t, kind = op.type, op.opdef.kind
    if not L.has_elementwise(t):
        if kind != registry.ELEMENTWISE:
            return f"no lowering for {t} ({kind})"
        return op.opdef.no_lowering or f"no lowering for elementwise op {t}"
    refuse = L.elementwise_formula(t).refuse  # type: ignore[union-attr]
    if refuse is not None and (why := refuse(op)) is not None:
        return why
    names = [f"a{i}" for i in range(len(in_dts))]
    attrs = dict(canonical_attrs(op, L.ATTRS.get(t, ())))
    if L.node_code(t, names, in_dts, out_dts[0], attrs.get, _ANY_DIALECT) is None:
        return f"{t} on {', '.join(in_dts)} has no lowering"
    return None


# -- the entry -----------------------------------------------------------------------------------------------


@dataclass
class Lowering:
    """The plan being lowered and what the passes of `lower` have decided so far."""

    plan: Plan
    fed: set[Tensor]
    fetched: set[Tensor]
    readers: dict[Tensor, set[Operation]]  # tensor -> the ops that read it (reference inputs aside)
    clustering: Clustering | None = None
    own: dict[Operation, Step] = field(default_factory=dict)  # ops lowered as their own step
    matmul_of: dict[Tensor, Operation] = field(default_factory=dict)  # MatMul outputs (epilogue reports)
    cluster_steps: list[ClusterStep] = field(default_factory=list)
    cluster_at: dict[Operation, ClusterStep] = field(default_factory=dict)  # last member -> its step
    clustered: set[Operation] = field(default_factory=set)
    folded: set[Operation] = field(default_factory=set)  # Const ops now in the plan's template
    unused: set[Operation] = field(default_factory=set)  # Shape ops nothing reads any more
    epilogues: dict[Operation, Epilogue] = field(default_factory=dict)  # Conv2D -> its fused BiasAdd (Relu, pool)
    absorbed: set[Operation] = field(default_factory=set)  # epilogue ops run inside their conv's step
    prologues: dict[Operation, Operation] = field(default_factory=dict)  # cross-entropy -> its logits' bias Add
    xent_grads: dict[Operation, XentGrad] = field(default_factory=dict)  # cross-entropy -> its backward Mul chain

    @classmethod
    def start(cls, plan: Plan) -> Lowering:
        """The state before the first pass: which tensors are fed, fetched, and who reads each."""
        feed_set, fetch_set = set(plan.feed_slots), set(plan.fetch_slots)
        return cls(plan, {t for t, s in plan.slots.items() if s in feed_set},
                   {t for t, s in plan.slots.items() if s in fetch_set}, readers_of(plan.ops))


def readers_of(ops: list[Operation]) -> dict[Tensor, set[Operation]]:
    """Tensor -> the ops of `ops` that read its value (reference inputs do not)."""
    readers: dict[Tensor, set[Operation]] = {}
    for op in ops:
        for i, t in enumerate(op.inputs):
            if i not in op.opdef.ref_inputs:
                readers.setdefault(t, set()).add(op)
    return readers


def cluster_ops(low: Lowering) -> None:
    """Groups the plan's ops into clusters and reports the ops left interpreted, with reasons.

    Under JITFLOW_FALLBACK=error the first such op is an UnimplementedError instead.
    """
    plan = low.plan
    low.epilogues = find_epilogues(plan.ops, low.fetched, low.fed)  # Conv2D -> BiasAdd (-> Relu) (-> pool)
    low.prologues = find_bias_prologues(plan.ops, low.readers, low.fetched, low.fed)
    low.xent_grads = find_xent_grads(plan.ops, low.readers, low.fetched, low.fed,
                                     lambda op: member_reason(op) == "" and requested_gpu(op) is None)
    low.absorbed = {m for e in low.epilogues.values() for m in e.ops} | set(low.prologues.values()) \
        | {x.colsum for x in low.xent_grads.values() if x.colsum is not None}
    own = low.absorbed | {x.mul for x in low.xent_grads.values()}  # the Mul: an XentGradStep at its place
    res = low.clustering = cluster(plan.ops, low.fed, lambda op: "" if op in own else member_reason(op),
                                   lambda op: _passes_through(op, low.fed))
    # an UnbroadcastTo whose target is a run-time Shape gets its own step (library_kernels): not a fallback
    fallbacks = [f for f in res.fallbacks if not _dynamic_unbroadcast(f.op, low.fed)]
    plan.report = {"clusters": [], "fallbacks": [
        {"op": f.op.name, "type": f.op.type, "reason": f.reason} for f in fallbacks]}
    refused = [f for f in fallbacks if f.op.type not in registry.INTERPRETED]  # py_func: interpreted by design
    if refused and flags.fallback_is_error():
        f = refused[0]
        raise errors.UnimplementedError(f.op.node_def, f.op, f"JITFLOW_FALLBACK=error: op {f.op.name} "
                                                             f"({f.op.type}) would run interpreted: {f.reason}")


def library_kernels(low: Lowering) -> None:
    """Ops lowered as their own step: MatMul through BLAS, convolutions and pooling (`window_steps.py`),
    softmax and cross-entropy row kernels, and UnbroadcastTo with a run-time target."""
    plan, fed, fetched = low.plan, low.fed, low.fetched
    for op in plan.ops:
        if op.opdef.library == "blas" and member_reason(op) == "":
            t = op.outputs[0]
            low.own[op] = MatMulStep(op, [plan.slots[x] for x in op.inputs], plan.slots[t], t in fetched,
                                         plan.op_steps[op])
            low.matmul_of[t] = op
        elif op.type in WINDOW_OPS and op not in low.absorbed:  # (a pool fused into its conv's step is)
            low.own[op], window_entry = window_step(op, plan.slots, fetched, plan.op_steps[op],
                                                    low.epilogues.get(op), plan.op_steps)
            plan.report["clusters"].append(window_entry)
        elif _dynamic_unbroadcast(op, fed) and member_reason(op):
            shape_op = op.inputs[1].op
            low.own[op] = UnbroadcastDynStep(op, plan.slots[op.inputs[0]], plan.slots[shape_op.inputs[0]],
                                             plan.slots[op.outputs[0]], [plan.op_steps[shape_op], plan.op_steps[op]])
        elif op.opdef.library == "rows" and member_reason(op) == "":
            low.own[op] = _row_step(low, op)
        elif op.opdef.library == "segments" and member_reason(op) == "":
            low.own[op] = SegmentSumStep(op, [plan.slots[x] for x in op.inputs], plan.slots[op.outputs[0]],
                                         plan.op_steps[op])


def find_bias_prologues(ops: list[Operation], readers: dict[Tensor, set[Operation]], fetched: set[Tensor],
                        fed: set[Tensor]) -> dict[Operation, Operation]:
    """SparseSoftmaxCrossEntropyWithLogits -> the Add (AddV2, BiasAdd) of a bias vector to its logits matrix,
    when nothing else reads (fetches, feeds, orders on) the sum: the row kernel adds the bias itself, and
    a classifier's ``matmul(h, w) + b`` logits are written once instead of twice (W8: 700 x 10,000)."""
    controls = {c for op in ops for c in op.control_inputs}
    found: dict[Operation, Operation] = {}
    for op in ops:
        if op.type != "SparseSoftmaxCrossEntropyWithLogits" or member_reason(op) != "" \
                or requested_gpu(op) is not None:
            continue
        logits = op.inputs[0]
        add = logits.op
        if add.type not in ("Add", "AddV2", "BiasAdd") or add.control_inputs or {add, op} & controls \
                or logits in fetched or logits in fed or readers.get(logits) != {op} \
                or requested_gpu(add) is not None or _bias_operands(add) is None:
            continue
        found[op] = add
    return found


def _bias_operands(add: Operation) -> tuple[Tensor, Tensor] | None:
    """(matrix, bias) of an Add of a [k] vector to an [n, k] matrix of the same float dtype, else None."""
    a, b = add.inputs
    if add.type != "BiasAdd" and a.shape.ndims == 1:
        a, b = b, a
    ka, kb = a.shape.as_tuple(), b.shape.as_tuple()
    if ka is None or kb is None or len(ka) != 2 or len(kb) != 1 or ka[1] is None or ka[1] != kb[0] \
            or a.dtype != b.dtype or np.dtype(a.dtype.np).name not in ("float32", "float64"):
        return None
    return a, b


def _row_step(low: Lowering, op: Operation) -> Step:
    """The row-kernel step of a softmax or sparse cross-entropy op (its kernel compiles on first use)."""
    plan, fed, fetched = low.plan, low.fed, low.fetched
    entry: dict[str, Any] = {"ops": [op.name], "backend": "cpu", "key": "", "compile_seconds": 0.0,
                             "source": "deferred"}
    plan.report["clusters"].append(entry)
    outs = [TRASH_SLOT if t in fed else plan.slots[t] for t in op.outputs]
    if op.type == "SparseSoftmaxCrossEntropyWithLogits":
        add = low.prologues.get(op)
        if add is None:
            step = SparseXentStep(op, [plan.slots[x] for x in op.inputs], outs, [t in fetched for t in op.outputs],
                                  plan.op_steps[op], entry)
        else:
            operands = _bias_operands(add)
            assert operands is not None  # find_bias_prologues checked
            x, b = operands
            entry["ops"] = [add.name, op.name]
            step = SparseXentStep(op, [plan.slots[x], plan.slots[op.inputs[1]]], outs,
                                  [t in fetched for t in op.outputs], Chain([plan.op_steps[add], plan.op_steps[op]]),
                                  entry, plan.slots[b])
        grad = low.xent_grads.get(op)
        if grad is not None:
            step.split = True
            grad_entry: dict[str, Any] = {"ops": [m.name for m in (grad.mul, grad.colsum) if m is not None],
                                          "backend": "cpu", "key": "", "compile_seconds": 0.0, "source": "deferred"}
            plan.report["clusters"].append(grad_entry)
            low.own[grad.mul] = XentGradStep(step, grad, plan.slots, plan.op_steps, grad_entry)
        return step
    return SoftmaxStep(op, plan.slots[op.inputs[0]], outs[0], op.outputs[0] in fetched, plan.op_steps[op], entry)


def build_clusters(low: Lowering) -> None:
    """Builds the IR of every cluster and its step, choosing its backend: CUDA when its ops all sit on one
    GPU of this machine (`move_to_gpu` makes its CUDA step), else the CPU, whose kernel compiles now (or
    comes from the cache)."""
    plan = low.plan
    assert low.clustering is not None
    var_shapes = {op.name: op.attrs.get("shape") for op in plan.ops if op.type == "VariableV2"}
    n_gpus = placement.gpu_count() if devices_of(plan.ops) else 0
    upd_refs = {t: (r.refs, r.reads) for t, r in L.UPDATES.items()}
    for members in low.clustering.clusters:
        for m in members:
            for r in m.opdef.ref_inputs:
                v = m.inputs[r].op
                var_shapes.setdefault(v.name, v.attrs.get("shape"))
        name = cluster_backend(members, n_gpus)
        if name == "cuda" and _host_scalars(members):
            name = "cpu"
        step = _cluster_step(low, members, upd_refs, var_shapes, name)
        low.cluster_steps.append(step)
        low.cluster_at[members[-1]] = step
        low.clustered.update(members)
        if backend(name).compiles_when_built:
            _warm(step)  # (a CUDA cluster compiles when move_to_gpu has made its step)
        if flags.debug_level() >= 3:
            print(f"jitflow: cluster {step.report['ops']} ({step.c.kind}, {len(step.c.inputs)} inputs, "
                  f"{len(step.c.outputs)} outputs)", file=sys.stderr)
    if flags.debug_level() >= 3:
        for f in plan.report["fallbacks"]:
            print(f"jitflow: fallback {f['op']} ({f['type']}): {f['reason']}", file=sys.stderr)


def _host_scalars(members: list[Operation]) -> bool:
    """int32 scalar clusters of GPU ops run on the host, as TF keeps int32 in host memory (gpu/loop_state)."""
    from jitflow.compiler.gpu.loop_state import host_scalars

    return host_scalars(members)


def _cluster_step(low: Lowering, members: list[Operation], upd_refs: dict[str, tuple[tuple[int, ...], bool]],
                  var_shapes: dict[str, Any], backend: str) -> ClusterStep:
    """The IR of one cluster, and the step that runs it (reported in the plan)."""
    plan, fetched = low.plan, low.fetched
    mset = set(members)
    needed = {t for m in members for t in m.outputs
              if t in fetched or any(r not in mset for r in low.readers.get(t, ()))}
    c = build_cluster(members, low.fed, needed, upd_refs, L.ATTRS, backend, L.data_inputs, L.derived_attrs)
    in_slots = [plan.slots[i.tensor] if i.tensor is not None else -1 for i in c.inputs]
    out_slots = [plan.slots[o.tensor] if o.tensor is not None else -1 for o in c.outputs]
    fresh = [o.var is not None or (o.tensor is not None and o.tensor in fetched) for o in c.outputs]
    epilogue_of = [low.matmul_of[i.tensor].name for i in c.inputs if i.tensor in low.matmul_of]
    entry: dict[str, Any] = {"ops": epilogue_of + [m.name for m in members], "backend": c.backend,
                             "key": "", "compile_seconds": 0.0, "source": "deferred"}
    plan.report["clusters"].append(entry)
    step = ClusterStep(c, in_slots, out_slots, fresh, [plan.op_steps[m] for m in members], entry, var_shapes)
    step.has_checks = any(_has_checks(c, k) for k in range(len(c.nodes)))
    return step


def fold_constants(low: Lowering) -> None:
    """Const values go into the plan's initial slots: no step runs for them."""
    low.folded = _fold_constants(low.plan, low.fed)


def prune_shape_ops(low: Lowering) -> None:
    """Drops Shape/Size/Rank ops whose value nothing reads any more (a target folded into a cluster);
    a cluster's interpreted fallback still runs those it needs, first."""
    kept = low.clustered | {o for o, st in low.own.items() if isinstance(st, UnbroadcastDynStep)}
    low.unused = _unused_shape_ops(low.plan.ops, kept, low.cluster_steps, low.fetched)
    for st in low.cluster_steps:
        pre = [low.plan.op_steps[t.op] for m in st.c.ops for t in m.inputs if t.op in low.unused]
        if pre:
            st.member_steps = pre + st.member_steps


def order_steps(low: Lowering) -> None:
    """The plan's new step list: each cluster at its last member's place, variables read just before the
    step that consumes them (a dict lookup when the variable exists), Identity as a slot copy."""
    plan = low.plan
    steps: list[Step] = []
    fused_at = {e.at: conv_op for conv_op, e in low.epilogues.items()}
    for op in plan.ops:
        if op in fused_at:  # a fused step runs at its epilogue's place (`Epilogue.at`): its inputs are ready
            conv_op = fused_at[op]
            for m in [conv_op, *low.epilogues[conv_op].ops]:
                steps.extend(var_reads(m, plan.lazy_vars, plan.op_steps))
            steps.append(low.own[conv_op])
            continue
        if op in plan.lazy_vars or op in low.folded or op in low.unused or op in low.epilogues \
                or op in low.absorbed:
            continue
        cstep = low.cluster_at.get(op)
        if cstep is not None:
            done: set[Operation] = set()
            for m in cstep.c.ops:
                steps.extend(var_reads(m, plan.lazy_vars, plan.op_steps, done))
            steps.append(cstep)
        elif op.type == "NoOp" and not op.outputs:
            continue  # orders its control inputs, which the plan order already does
        elif op not in low.clustered:
            own_step = low.own.get(op) or _light_step(op, plan, low.fed)
            if isinstance(own_step, UnbroadcastDynStep) and op.inputs[1].op not in low.unused:
                own_step.fallback = own_step.fallback[1:]  # the Shape step runs anyway
            if op in low.prologues:  # the bias Add it computes reads variables too (a dense layer's bias)
                steps.extend(var_reads(low.prologues[op], plan.lazy_vars, plan.op_steps))
            steps.extend(var_reads(op, plan.lazy_vars, plan.op_steps))
            steps.append(own_step or plan.op_steps[op])
    steps.extend(fetched_reads(plan, plan.fetches))
    plan.steps = [_light_var_read(st) for st in steps]


def mark_array_outputs(low: Lowering) -> None:
    """One-element cluster outputs read only by clusters (or only fetched) may stay NumPy scalars."""
    _mark_array_outputs(low.cluster_steps, low.readers)


def move_to_gpu(low: Lowering) -> None:
    """Steps of ops placed on an available GPU become CUDA steps: the CUDA backend's `place`
    (`compiler/gpu/`, loaded only for plans that ask for a GPU)."""
    for name in devices_of(low.plan.ops):
        backend(name).place(low.plan)


# The passes of `lower`, in order.
PASSES = (cluster_ops, library_kernels, build_clusters, fold_constants, prune_shape_ops, order_steps,
          mark_array_outputs, move_to_gpu, update_in_place)


def lower(plan: Plan) -> None:
    """Replaces the plan's interpreted steps by compiled clusters and library steps, in place (`PASSES`)."""
    passive_wait()  # before any parallel kernel of the plan runs (jitflow/kernels/omp.py)
    low = Lowering.start(plan)
    for lowering_pass in PASSES:
        lowering_pass(low)


def _light_step(op: Operation, plan: Plan, fed: set[Tensor]) -> Step | None:
    """A cheaper step than the interpreted one for Identity (a slot copy), Split/Concat, Shape, a Reshape to a
    constant shape, or None."""
    if op.type in SLICE_OPS:
        return slice_step(op, plan.slots, fed, plan.op_steps[op])
    if op.type in ("Identity", "StopGradient") and len(op.inputs) == 1 and op.outputs[0] not in fed:
        return IdentityStep(op, plan.slots[op.inputs[0]], plan.slots[op.outputs[0]])
    if op.type == "Shape" and op.outputs[0] not in fed:
        return ShapeStep(op, plan.slots[op.inputs[0]], plan.slots[op.outputs[0]], plan.op_steps[op])
    if op.type == "Reshape" and op.outputs[0] not in fed and op.inputs[1] not in fed:
        target = const_value(op.inputs[1])
        if target is not None:
            return ReshapeStep(op, plan.slots[op.inputs[0]], plan.slots[op.outputs[0]],
                               tuple(int(d) for d in np.asarray(target).reshape(-1)), plan.op_steps[op])
    return None


def _light_var_read(step: Step) -> Step:
    """A variable's interpreted read as a dict lookup (`VarReadStep`); other steps unchanged."""
    if step.kind != "op" or len(step.ops) != 1 or step.ops[0].type != "VariableV2" or len(step.writes) != 1:
        return step
    return VarReadStep(step, step.writes[0])


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
