"""Stage 3 of a run: a plan, built once per run signature and replayed on every later call.

A plan is a flat list of steps over numbered value slots. Each step implements the `Step` protocol
(`compiler/step.py`): called as `step(ctx, vals)`, it reads its input slots and writes its output slots,
and declares its ops, slots, effects and backend. The interpreter makes one step per op (`OpStep`),
the compiler one per fused cluster. Slot 0 always holds None (the value passed for reference inputs),
slot 1 takes values nobody reads (outputs of ops whose tensor is fed), slot 2 holds the run's `Arena`
of reusable buffers; feeds start at slot 3.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jitflow import flags
from jitflow.compiler.cse import dedupe
from jitflow.compiler.prune import prune
from jitflow.compiler.step import (  # noqa: F401 - the slot numbers are re-exported: defined here first
    ARENA_SLOT,
    FIRST_SLOT,
    NONE_SLOT,
    TRASH_SLOT,
    Call,
    DeadAwareStep,
    Step,
    op_step,
)
from jitflow.framework.graph import Operation, Tensor


@dataclass
class Plan:
    """Steps and slots for one run signature."""

    steps: list[Step]
    n_slots: int
    feed_slots: list[int]
    fetch_slots: list[int]  # -1 for an op target (its result is None)
    ops: list[Operation]
    slots: dict[Tensor, int]
    # Filled by the compiler: clusters, fallbacks and timings, for explain().
    report: dict[str, Any] = field(default_factory=lambda: {"clusters": [], "fallbacks": []})
    dead_aware: bool = False
    # The interpreted step of every op (for the compiler), and the variables read lazily (just before
    # each consumer, see build_plan).
    op_steps: dict[Operation, Step] = field(default_factory=dict)
    lazy_vars: set[Operation] = field(default_factory=set)
    fetches: list[Any] = field(default_factory=list)
    # Arenas of reusable buffers not in use by a run (one is taken per run: concurrent runs never share).
    arenas: list[Any] = field(default_factory=list)
    debug: int = 0  # JITFLOW_DEBUG when the plan was built (>= 2: per-step timings)
    # Initial slot values (constants folded in by the compiler), copied at the start of every run.
    template: list[Any] | None = None
    # (steps, their bound calls) as `execute` last bound them (`step.bound_calls`)
    bound: tuple[Sequence[Step], list[Call]] | None = None
    # The steps of `bound` that can share work with the helpers of `kernels/packed_helpers.py` (`wants_helpers`)
    helped: list[Any] = field(default_factory=list)
    # How runs walk the steps (`compiler/inter_op.py`): None until the first run decides, False for in order
    overlap: Any = None
    # GPU plans (compiler/gpu/loop_state.py): fetched values may stay device arrays (a loop body's); the
    # feeds (by position) that may be given device arrays, and those that CUDA steps read.
    device_fetches: bool = False
    device_feeds: frozenset[int] = frozenset()
    device_used: frozenset[int] = frozenset()
    # The plan as one compiled call per tuple of feed shapes (`compiler/native_plan.py`): None before its first
    # run, its `Translations`, or False when it cannot be one
    native: Any = None


def _interp_step(op: Operation, in_slots: list[int], out_slots: list[int]) -> Step:
    """The interpreted step of `op`: its reference kernel from `in_slots` into `out_slots`."""
    return op_step(op, in_slots, out_slots)


def _dead_aware_step(op: Operation, in_slots: list[int], out_slots: list[int], ctrl_slots: list[int],
                     op_slot: int) -> Step:
    """A step for graphs with `cond`: an op with a dead input or control input is dead itself."""
    return DeadAwareStep(op, in_slots, out_slots, ctrl_slots, op_slot)


def var_reads(op: Operation, lazy_vars: set[Operation], op_steps: dict[Operation, Step],
              done: set[Operation] | None = None) -> list[Step]:
    """The read steps of the variables `op` consumes, to run just before it (reads are not hoisted).

    A variable's snapshot (`v/read`, an Identity of the variable) is read lazily too, after its variable.
    """
    refs = op.opdef.ref_inputs
    out: list[Step] = []
    for i, t in enumerate(op.inputs):
        if i not in refs and t.op in lazy_vars:
            out.extend(var_reads(t.op, lazy_vars, op_steps, done))
            if done is None or t.op not in done:
                out.append(op_steps[t.op])
                if done is not None:
                    done.add(t.op)
    return out


def lazy_reads(ops: list[Operation], fed: set[Tensor]) -> set[Operation]:
    """Variables, and the snapshots (`v/read`) that must be read late, read when their consumer runs.

    A variable's own output is always read by its consumer's step (TF's reference semantics): a read
    ordered after an assign by control dependencies sees the new value. A snapshot is read late only
    when one of its consumers depends on an assign of that variable; otherwise it keeps its early place,
    so that (as in TF, whose reads run as soon as they can) unordered readers see the value from before
    the step's updates.
    """
    lazy = {op for op in ops if op.type == "VariableV2" and op.outputs[0] not in fed}
    snaps = [op for op in ops if op.type == "Identity" and not op.control_inputs and op.inputs[0].op in lazy
             and op.outputs[0] not in fed]
    if not snaps:
        return lazy
    writers: dict[Operation, int] = {}  # variable -> bit mask of the ops that write it
    bit: dict[Operation, int] = {}
    for op in ops:
        for r in op.opdef.ref_inputs:
            b = bit.setdefault(op, 1 << len(bit))
            writers[op.inputs[r].op] = writers.get(op.inputs[r].op, 0) | b
    if not writers:
        return lazy
    after: dict[Operation, int] = {}  # op -> mask of the writers it (transitively) runs after
    for op in ops:
        m = bit.get(op, 0)
        for t in op.inputs:
            m |= after.get(t.op, 0)
        for c in op.control_inputs:
            m |= after.get(c, 0)
        after[op] = m
    consumers: dict[Operation, list[Operation]] = {s: [] for s in snaps}
    for op in ops:
        for t in op.inputs:
            if t.op in consumers:
                consumers[t.op].append(op)
    return lazy | {s for s in snaps if any(after[c] & writers.get(s.inputs[0].op, 0) for c in consumers[s])}


def fetched_reads(plan: Plan, fetches: list[Tensor | Operation]) -> list[Step]:
    """Fetched variables (and snapshots) are read once more when the run ends: TF returns their final value."""
    steps: list[Step] = []
    done: set[Operation] = set()
    for f in fetches:
        if isinstance(f, Tensor) and f.op in plan.lazy_vars and f.op not in done:
            steps.extend(var_reads(f.op, plan.lazy_vars, plan.op_steps, done))
            steps.append(plan.op_steps[f.op])
            done.add(f.op)
    return steps


def build_plan(fetches: list[Tensor | Operation], feeds: list[Tensor], lower: Any = None) -> Plan:
    """Prunes the graph to what `fetches` need given `feeds`, assigns slots and makes one step per op.

    `lower(plan)`, when given, replaces groups of interpreted steps by compiled ones (the JIT).
    """
    fed = set(feeds)
    fetch_tensors = [f for f in fetches if isinstance(f, Tensor)]
    targets = [f for f in fetches if isinstance(f, Operation)]
    ops = prune(fetch_tensors, targets, fed)
    removed: list[tuple[str, str]] = []
    if lower is not None:  # the interpreter runs every op as written: the reference the JIT is tested against
        ops, fetches, removed = dedupe(ops, fetches, fed)
    slots: dict[Tensor, int] = {}
    n = FIRST_SLOT
    for t in feeds:
        slots[t] = n
        n += 1
    for op in ops:
        for t in op.outputs:
            if t not in slots:
                slots[t] = n
                n += 1
    dead_aware = any(op.type == "Switch" for op in ops)
    op_slots: dict[Operation, int] = {}
    if dead_aware:
        for op in ops:
            op_slots[op] = n
            n += 1
    steps: list[Step] = []
    # A variable is read when its consumer runs (TF's reference semantics), so a read ordered after an
    # assign by control dependencies sees the new value: its VariableV2 step is emitted just before each
    # consumer instead of once, early.
    lazy_vars = set() if dead_aware else lazy_reads(ops, fed)
    op_steps: dict[Operation, Step] = {}
    for op in ops:
        if op in lazy_vars:
            op_steps[op] = _interp_step(op, [slots[t] for t in op.inputs], [slots[op.outputs[0]]])
            continue
        refs = op.opdef.ref_inputs
        steps.extend(var_reads(op, lazy_vars, op_steps))
        in_slots = [NONE_SLOT if i in refs else slots[t] for i, t in enumerate(op.inputs)]
        out_slots = [TRASH_SLOT if t in fed else slots[t] for t in op.outputs]
        if dead_aware:
            ctrl = [op_slots[c] for c in op.control_inputs if c in op_slots]
            ref_dead = [op_slots[t.op] for i, t in enumerate(op.inputs) if i in refs and t.op in op_slots]
            step = _dead_aware_step(op, in_slots, out_slots, ctrl + ref_dead, op_slots[op])
        else:
            step = _interp_step(op, in_slots, out_slots)
        op_steps[op] = step
        steps.append(step)
    fetch_slots = [slots[f] if isinstance(f, Tensor) else -1 for f in fetches]
    plan = Plan(steps, n, [slots[t] for t in feeds], fetch_slots, ops, slots, dead_aware=dead_aware)
    plan.op_steps = op_steps
    plan.lazy_vars = lazy_vars
    plan.fetches = list(fetches)
    steps.extend(fetched_reads(plan, fetches))
    plan.debug = flags.debug_level()
    if lower is not None and not dead_aware:
        lower(plan)
    else:
        plan.native = False  # (an interpreted plan stays the reference: never one compiled call)
    if removed:
        plan.report["deduplicated"] = removed
    return plan
