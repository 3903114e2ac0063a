"""The pass that moves the compiled steps of ops placed on an available GPU to CUDA (see the package doc)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, cast

from jitflow.compiler.gpu import conv as gconv
from jitflow.compiler.gpu import loop_state, runtime  # runtime through the module: tests stand in for it
from jitflow.compiler.gpu.memory import DeviceIO
from jitflow.compiler.gpu.runtime import OnDevice, mark_multi_device, usable_gpu
from jitflow.compiler.gpu.steps import (
    CudaClusterStep,
    CudaMatMulStep,
    CudaSparseXentStep,
    DeviceReadStep,
    DeviceReshape,
    DeviceUnbroadcastDyn,
    FusedMatMulStep,
)
from jitflow.compiler.placement import requested_gpu
from jitflow.compiler.plan import TRASH_SLOT, Plan, Step
from jitflow.compiler.step import CPU, CUDA
from jitflow.framework.graph import Operation, Tensor

# -- the hook into lower() -----------------------------------------------------------------------------


@dataclass
class _Rewrite:
    """What the rewrite knows about the plan: fed and fetched tensors, readers, available GPUs."""

    plan: Plan
    n_gpus: int
    fed: set[Tensor]
    fetched: set[Tensor]
    readers: dict[Tensor, set[Operation]]
    listed: set[str]  # op names the plan's report already lists in a cluster
    gpu_ops: set[Operation] = field(default_factory=set)
    cuda_steps: list[tuple[Any, list[Tensor | None]]] = field(default_factory=list)
    through: set[Operation] = field(default_factory=set)  # ops that hand their first input on unchanged


def lower_gpu_clusters(plan: Plan) -> None:
    """Moves the compiled steps of ops placed on an available GPU to CUDA, in place (see the module doc).

    Call it at the end of `lower(plan)`, once `plan.steps` holds the final ClusterSteps and MatMulSteps.
    """
    if not any(requested_gpu(op) is not None for op in plan.ops):
        return  # nothing asks for a GPU: never import numba.cuda
    n_gpus = runtime.gpu_count()
    if n_gpus == 0:
        return
    from jitflow.compiler.lower import readers_of  # (lower imports this module lazily too)

    fetch_set, feed_set = set(plan.fetch_slots), set(plan.feed_slots)
    readers = readers_of(plan.ops)
    rw = _Rewrite(plan, n_gpus, {t for t, s in plan.slots.items() if s in feed_set},
                  {t for t, s in plan.slots.items() if s in fetch_set}, readers,
                  {name for entry in plan.report.get("clusters", []) for name in entry.get("ops", [])})
    steps: list[Step] = [_on_device(rw, st) for st in plan.steps]
    if not rw.cuda_steps:
        return
    dev_readers = _device_readers(plan.ops, rw.gpu_ops, readers, rw.fetched, rw.fed, rw.through)
    for cs, outs in rw.cuda_steps:
        kept = loop_state.kept_on_device(plan, cs, outs, rw.fetched)  # fetched, yet left on the device
        cs.io.host_out = [t is not None and (t in rw.fetched and not keep or any(r not in dev_readers
                                                                                 for r in readers.get(t, ())))
                          for t, keep in zip(outs, kept)]
        cs.io.detach = kept
        cs.io.dev_out = [t is not None and any(r in dev_readers and r.type not in SHAPE_ONLY
                                               for r in readers.get(t, ())) for t in outs]
    loop_state.note_device_feeds(plan, readers, dev_readers, rw.gpu_ops)
    device_reads = _device_variable_reads(rw, steps, dev_readers)
    _limit_in_place(steps, [cs for cs, _ in rw.cuda_steps], device_reads, readers, rw.through)
    _fuse_epilogues(steps, readers, rw.fetched)
    gconv.fuse_conv_epilogues(steps, readers, rw.fetched)
    _place_on_devices(steps, n_gpus, readers)
    plan.steps = steps
    if plan.debug >= 3:
        for cs, _ in rw.cuda_steps:
            print(f"jitflow: cuda step {cs.report.get('ops')}", file=sys.stderr)


def _on_device(rw: _Rewrite, st: Step) -> Step:
    """The CUDA (or device pass-through) step replacing `st`, or `st` when it stays on the host."""
    fed = rw.fed
    if st.backend != CPU and st.kind != "op":
        return st
    if st.kind == "cluster":
        c = cast(Any, st).c
        return _cuda_cluster(rw, st) if c.backend == "cuda" else st  # chosen when the cluster was built
    op = st.ops[0] if len(st.ops) == 1 else None
    if op is None or usable_gpu(op, rw.n_gpus) is None:
        return st
    return _op_on_device(rw, cast(Any, st), op, fed)


def _op_on_device(rw: _Rewrite, st: Any, op: Operation, fed: set[Tensor]) -> Step:
    """The CUDA step of a one-op step placed on an available GPU (by its declared kind), or `st`."""
    if st.kind == "matmul":
        ins = list(op.inputs)
        io = DeviceIO([rw.plan.slots[t] for t in ins], [t.op.type == "Const" and t not in fed for t in ins],
                      [_var_of(t, fed) for t in ins])
        entry: dict[str, Any] = {"ops": [op.name], "backend": "cuda", "key": "", "compile_seconds": 0.0,
                                 "source": "deferred"}
        if op.name not in rw.listed:
            rw.plan.report.setdefault("clusters", []).append(entry)
        return _added(rw, CudaMatMulStep(st, io, entry), [op], [op.outputs[0]])
    if st.kind == "sparse_xent":
        io = DeviceIO([rw.plan.slots[t] for t in op.inputs], [False, False], [None, None])
        st.report.update(backend="cuda", key="", compile_seconds=0.0, source="deferred")
        outs = [t if t not in fed else None for t in op.outputs]
        return _added(rw, CudaSparseXentStep(st, io), [op], outs)
    if op.type in gconv.DEVICE_WINDOW_OPS and (st.kind == "window" or op.type == "BiasAddGrad"):
        return _device_window(rw, st, op)
    if st.kind == "unbroadcast":
        rw.through.add(op)
        return DeviceUnbroadcastDyn(st)
    if st.kind == "op" and op.type in RESHAPES:
        rw.through.add(op)
        return DeviceReshape(st, [rw.plan.slots[t] for t in op.inputs],
                             TRASH_SLOT if op.outputs[0] in fed else rw.plan.slots[op.outputs[0]])
    return st


def _device_window(rw: _Rewrite, st: Step, op: Operation) -> Step:
    """The CUDA step of a conv, pooling or BiasAddGrad op (`compiler/gpu/conv.py`)."""
    entry = cast(Any, st).report if st.kind == "window" else None  # a WindowStep reports its kernel
    if entry is None:  # BiasAddGrad's interpreted step: a cluster of the report now, not a fallback
        entry = {"ops": [op.name]}
        rw.plan.report.setdefault("clusters", []).append(entry)
        rw.plan.report["fallbacks"] = [f for f in rw.plan.report.get("fallbacks", []) if f["op"] != op.name]
    consts = [t.op.type == "Const" and t not in rw.fed for t in op.inputs]
    step = gconv.device_window_step(st, op, rw.plan.slots, rw.fed, consts, _var_of, entry)
    return _added(rw, step, [op], [op.outputs[0]])


def _cuda_cluster(rw: _Rewrite, st: Any) -> Step:
    """The CUDA step of a cluster built for the CUDA backend (its ops all sit on one available GPU)."""
    c, fed = st.c, rw.fed
    consts = [inp.tensor is not None and inp.tensor.op.type == "Const" and inp.tensor not in fed
              for inp in c.inputs]
    io = DeviceIO(st.in_slots, consts, [_var_of(inp.tensor, fed) for inp in c.inputs])
    st.report["backend"] = "cuda"
    st.report.update(key="", compile_seconds=0.0, source="deferred")  # the CPU kernel is not used
    return _added(rw, CudaClusterStep(st, io), c.ops, [o.tensor for o in c.outputs])


def _added(rw: _Rewrite, step: Any, ops: list[Operation], outs: list[Tensor | None]) -> Any:
    """Records a new CUDA step, its ops and the tensors it produces."""
    rw.gpu_ops.update(ops)
    rw.cuda_steps.append((step, outs))
    return step


def _device_variable_reads(rw: _Rewrite, steps: list[Step], dev_readers: set[Operation]) -> set[str]:
    """Reads of variables consumed only on the device become device reads (in `steps`); their names."""
    device_reads: set[str] = set()
    for i, st in enumerate(steps):
        op = st.ops[0] if st.kind == "op" and len(st.ops) == 1 else None
        if op is not None and op.type == "VariableV2":
            t = op.outputs[0]
            rs = rw.readers.get(t, set())
            if rs and rs <= dev_readers and t not in rw.fetched and t not in rw.fed:
                steps[i] = DeviceReadStep(st, op.name, rw.plan.slots[t])
                device_reads.add(op.name)
    return device_reads


SHAPE_ONLY = frozenset({"Shape", "Size", "Rank"})
PASS_THROUGH = frozenset({"Identity", "StopGradient"})
# Structural ops that only change a value's shape: on the device they reshape the device array.
RESHAPES = frozenset({"Reshape", "ExpandDims", "Squeeze"})


def _device_readers(ops: list[Operation], gpu_ops: set[Operation], readers: dict[Tensor, set[Operation]],
                    fetched: set[Tensor], fed: set[Tensor], through: set[Operation]) -> set[Operation]:
    """Ops that may read a device array: CUDA ops, shape queries, and pass-throughs read only by such."""
    dev = set(gpu_ops) | {op for op in ops if op.type in SHAPE_ONLY}
    changed = True
    while changed:
        changed = False
        for op in ops:
            if op in dev or (op.type not in PASS_THROUGH and op not in through) or op.control_inputs:
                continue
            t = op.outputs[0]
            rs = readers.get(t, set())
            if rs and rs <= dev and t not in fetched and t not in fed:
                dev.add(op)
                changed = True
    return dev


def _limit_in_place(steps: list[Step], cuda_steps: list[Any], device_reads: set[str],
                    readers: dict[Tensor, set[Operation]], through: set[Operation]) -> None:
    """No in-place update of a variable whose device snapshot (read through a pass-through) is used later.

    A variable read directly is read again before each consumer, so it always sees the current value; a
    pass-through's output keeps the value it was given, which an in-place update would change under it.
    """
    pos: dict[Operation, int] = {}
    for i, st in enumerate(steps):
        for op in st.ops:
            pos.setdefault(op, i)
    last_use: dict[str, int] = {}
    for op in pos:
        if op.type != "VariableV2" or op.name not in device_reads:
            continue
        stack = [r for r in readers.get(op.outputs[0], ()) if r.type in PASS_THROUGH or r in through]
        seen: set[Operation] = set()
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            for r in readers.get(p.outputs[0], ()):
                last_use[op.name] = max(last_use.get(op.name, -1), pos.get(r, len(steps)))
                if r.type in PASS_THROUGH or r in through:
                    stack.append(r)
    for cs in cuda_steps:
        if cs.kind == "cluster":
            here = steps.index(cs)
            cs.in_place_ok = {v for v in cs.in_place_ok if last_use.get(v, -1) < here}


def _fuse_epilogues(steps: list[Step], readers: dict[Tensor, set[Operation]], fetched: set[Tensor]) -> None:
    """Fuses each CUDA MatMul into the elementwise CUDA cluster that alone reads its product, in place.

    The fused step runs where the epilogue ran (its other inputs are ready there); only steps without side
    effects may sit between the two, so the MatMul's operands still hold the values it would have read.
    """
    from jitflow.compiler.cluster import ELEMENTWISE

    owner: dict[Operation, int] = {}
    for i, st in enumerate(steps):
        if st.kind == "cluster" and st.backend == CUDA:
            for op in st.ops:
                owner[op] = i
    drop: set[int] = set()
    for i, mm in enumerate(steps):
        if mm.kind != "matmul" or mm.backend != CUDA:
            continue
        t = mm.ops[0].outputs[0]
        rs = readers.get(t, set())
        j = owner.get(next(iter(rs))) if rs else None
        if j is None or t in fetched or any(owner.get(r) != j for r in rs):
            continue
        epi = cast(CudaClusterStep, steps[j])
        ins = [k for k, inp in enumerate(epi.c.inputs) if inp.tensor is t]
        if epi.c.kind != ELEMENTWISE or len(ins) != 1 or any(v is not None for v in epi.stores) \
                or j < i or not all(_pure(steps[p]) for p in range(i + 1, j)):
            continue
        steps[j] = FusedMatMulStep(cast(CudaMatMulStep, mm), epi, ins[0])
        drop.add(i)
    for i in sorted(drop, reverse=True):
        del steps[i]


def _pure(step: Step) -> bool:
    """True for a step without side effects (no variable update, no stateful op)."""
    return not step.stateful


def _place_on_devices(steps: list[Step], n_gpus: int, readers: dict[Tensor, set[Operation]]) -> None:
    """Steps of ops on /gpu:N (N > 0) run with device N current; device 0 is the default context.

    A device read of a variable goes to the device of the steps that consume it.
    """
    for i, st in enumerate(steps):
        ops = list(st.ops)
        if st.kind == "fused_matmul":  # it runs where its epilogue ran: on the epilogue's device
            ops = list(cast(FusedMatMulStep, st).epi.ops)
        if st.kind == "device_read" and ops:
            ops = list(readers.get(ops[0].outputs[0], ()))
        devs = {usable_gpu(op, n_gpus) for op in ops} - {None}
        if st.backend == CUDA and len(devs) == 1 and devs != {0}:
            dev = devs.pop()
            assert dev is not None
            steps[i] = OnDevice(st, dev)
            mark_multi_device()


def _var_of(t: Tensor | None, fed: set[Tensor]) -> str | None:
    """The variable whose value tensor `t` is (its device mirror can stand in for the host value)."""
    if t is None or t in fed or t.op.type != "VariableV2":
        return None
    return t.op.name
