"""The pass that moves the compiled steps of ops placed on an available GPU to CUDA (see the package doc)."""
from __future__ import annotations

import sys
import types
from typing import Any

from jitflow.compiler.gpu import runtime  # through the module: tests stand in for its functions
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
from jitflow.framework.graph import Operation, Tensor

# -- the hook into lower() -----------------------------------------------------------------------------


def lower_gpu_clusters(plan: Plan) -> None:
    """Moves the compiled steps of ops placed on an available GPU to CUDA, in place (see the module doc).

    Call it at the end of `lower(plan)`, once `plan.steps` holds the final ClusterSteps and MatMulSteps.
    """
    if not any(requested_gpu(op) is not None for op in plan.ops):
        return  # nothing asks for a GPU: never import numba.cuda
    n_gpus = runtime.gpu_count()
    if n_gpus == 0:
        return
    from jitflow.compiler import lower as low

    fetched = {t for t, s in plan.slots.items() if s in set(plan.fetch_slots)}
    feed_set = set(plan.feed_slots)
    fed = {t for t, s in plan.slots.items() if s in feed_set}
    readers: dict[Tensor, set[Operation]] = {}
    for op in plan.ops:
        for i, t in enumerate(op.inputs):
            if i not in op.opdef.ref_inputs:
                readers.setdefault(t, set()).add(op)
    steps: list[Step] = list(plan.steps)
    gpu_ops: set[Operation] = set()
    cuda_steps: list[tuple[Any, list[Tensor | None]]] = []
    listed = {name for entry in plan.report.get("clusters", []) for name in entry.get("ops", [])}
    through: set[Operation] = set()  # ops that hand their first input on unchanged (when shapes allow)
    for i, st in enumerate(steps):
        if isinstance(st, low.ClusterStep) and _all_on(st.c.ops, n_gpus):
            c = st.c
            consts = [inp.tensor is not None and inp.tensor.op.type == "Const" and inp.tensor not in fed
                      for inp in c.inputs]
            io = DeviceIO(st.in_slots, consts, [_var_of(inp.tensor, fed) for inp in c.inputs])
            c.backend = "cuda"
            st.report["backend"] = "cuda"
            st.report.update(key="", compile_seconds=0.0, source="deferred")  # the CPU kernel is not used
            steps[i] = CudaClusterStep(st, io)
            gpu_ops.update(c.ops)
            cuda_steps.append((steps[i], [o.tensor for o in c.outputs]))
        elif isinstance(st, low.MatMulStep) and usable_gpu(st.op, n_gpus) is not None:
            ins = list(st.op.inputs)
            io = DeviceIO([st.sa, st.sb], [t.op.type == "Const" and t not in fed for t in ins],
                     [_var_of(t, fed) for t in ins])
            entry: dict[str, Any] = {"ops": [st.op.name], "backend": "cuda", "key": "", "compile_seconds": 0.0,
                                     "source": "deferred"}
            if st.op.name not in listed:
                plan.report.setdefault("clusters", []).append(entry)
            steps[i] = CudaMatMulStep(st, io, entry)
            gpu_ops.add(st.op)
            cuda_steps.append((steps[i], [st.op.outputs[0]]))
        elif isinstance(st, low.SparseXentStep) and usable_gpu(st.op, n_gpus) is not None:
            io = DeviceIO([st.sf, st.sl], [False, False], [None, None])
            st.report.update(backend="cuda", key="", compile_seconds=0.0, source="deferred")
            steps[i] = CudaSparseXentStep(st, io)
            gpu_ops.add(st.op)
            cuda_steps.append((steps[i], [t if s > TRASH_SLOT else None
                                          for t, s in zip(st.op.outputs, st.out_slots)]))
        elif isinstance(st, low.UnbroadcastDynStep) and usable_gpu(st.op, n_gpus) is not None:
            steps[i] = DeviceUnbroadcastDyn(st)
            through.add(st.op)
        elif isinstance(st, types.FunctionType) and (op := getattr(st, "op", None)) is not None \
                and op.type in RESHAPES and usable_gpu(op, n_gpus) is not None:
            steps[i] = DeviceReshape(st, [plan.slots[t] for t in op.inputs],
                                     TRASH_SLOT if op.outputs[0] in fed else plan.slots[op.outputs[0]])
            through.add(op)
    if not cuda_steps:
        return
    dev_readers = _device_readers(plan.ops, gpu_ops, readers, fetched, fed, through)
    for cs, outs in cuda_steps:
        cs.io.host_out = [t is not None and (t in fetched or any(r not in dev_readers for r in readers.get(t, ())))
                          for t in outs]
        cs.io.dev_out = [t is not None and any(r in dev_readers and r.type not in SHAPE_ONLY
                                               for r in readers.get(t, ())) for t in outs]
    device_reads: set[str] = set()
    for i, st in enumerate(steps):
        op = getattr(st, "op", None)
        if isinstance(st, types.FunctionType) and op is not None and op.type == "VariableV2":
            t = op.outputs[0]
            rs = readers.get(t, set())
            if rs and rs <= dev_readers and t not in fetched and t not in fed:
                steps[i] = DeviceReadStep(st, op.name, plan.slots[t])
                device_reads.add(op.name)
    _limit_in_place(steps, [cs for cs, _ in cuda_steps], device_reads, readers, through)
    _fuse_epilogues(steps, readers, fetched)
    _place_on_devices(steps, n_gpus, readers)
    plan.steps = steps
    if plan.debug >= 3:
        for cs, _ in cuda_steps:
            print(f"jitflow: cuda step {cs.report.get('ops')}", file=sys.stderr)


# Host steps that only look at a value's shape (they work on device arrays), and ops passing it through.
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
        c = getattr(st, "c", None)
        for op in (c.ops if c is not None else [getattr(st, "op", None)]):
            if op is not None:
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
        if isinstance(cs, CudaClusterStep):
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
        if isinstance(st, CudaClusterStep):
            for op in st.c.ops:
                owner[op] = i
    drop: set[int] = set()
    for i, mm in enumerate(steps):
        if not isinstance(mm, CudaMatMulStep):
            continue
        t = mm.op.outputs[0]
        rs = readers.get(t, set())
        j = owner.get(next(iter(rs))) if rs else None
        if j is None or t in fetched or any(owner.get(r) != j for r in rs):
            continue
        epi = steps[j]
        assert isinstance(epi, CudaClusterStep)
        ins = [k for k, inp in enumerate(epi.c.inputs) if inp.tensor is t]
        if epi.c.kind != ELEMENTWISE or len(ins) != 1 or any(v is not None for v in epi.stores) \
                or j < i or not all(_pure(steps[p]) for p in range(i + 1, j)):
            continue
        steps[j] = FusedMatMulStep(mm, epi, ins[0])
        drop.add(i)
    for i in sorted(drop, reverse=True):
        del steps[i]


def _pure(step: Step) -> bool:
    """True for a step without side effects (no variable update, no stateful op)."""
    from jitflow.framework import registry

    if isinstance(step, (DeviceReadStep, CudaMatMulStep)):
        return True
    c = getattr(step, "c", None)
    if c is not None:
        return all(o.var is None for o in c.outputs) and all(op.opdef.kind != registry.STATEFUL for op in c.ops)
    op = getattr(step, "op", None)
    return op is not None and (op.type == "VariableV2" or op.opdef.kind != registry.STATEFUL)


def _place_on_devices(steps: list[Step], n_gpus: int, readers: dict[Tensor, set[Operation]]) -> None:
    """Steps of ops on /gpu:N (N > 0) run with device N current; device 0 is the default context.

    A device read of a variable goes to the device of the steps that consume it.
    """
    for i, st in enumerate(steps):
        c = getattr(st, "c", None)
        ops = list(c.ops) if c is not None else [op for op in [getattr(st, "op", None)] if op is not None]
        if isinstance(st, DeviceReadStep) and ops:
            ops = list(readers.get(ops[0].outputs[0], ()))
        devs = {usable_gpu(op, n_gpus) for op in ops} - {None}
        if isinstance(st, (CudaClusterStep, CudaMatMulStep, FusedMatMulStep, CudaSparseXentStep, DeviceReadStep,
                           DeviceReshape, DeviceUnbroadcastDyn)) and len(devs) == 1 and devs != {0}:
            dev = devs.pop()
            assert dev is not None
            steps[i] = OnDevice(st, dev)
            mark_multi_device()


def _all_on(ops: list[Operation], n_gpus: int) -> bool:
    devs = {usable_gpu(op, n_gpus) for op in ops}
    return len(devs) == 1 and None not in devs


def _var_of(t: Tensor | None, fed: set[Tensor]) -> str | None:
    """The variable whose value tensor `t` is (its device mirror can stand in for the host value)."""
    if t is None or t in fed or t.op.type != "VariableV2":
        return None
    return t.op.name
