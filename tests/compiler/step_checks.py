"""What the `Step` protocol promises, checked on every step of a plan (CPU and CUDA tests share it)."""
from __future__ import annotations

from typing import Any

from jitflow.compiler.plan import Plan
from jitflow.compiler.step import BACKENDS, FIRST_SLOT, Step, has_effects
from jitflow.framework.graph import Operation


def check_step(step: Any, plan: Plan) -> None:
    """`step` declares its kind, ops, slots, effects and backend, and they agree with the graph."""
    assert isinstance(step, Step), f"{step!r} does not implement the Step protocol"
    assert callable(step)
    assert isinstance(step.kind, str) and step.kind
    assert step.backend in BACKENDS, step.backend
    assert isinstance(step.stateful, bool)
    assert isinstance(step.ops, tuple) and step.ops and all(isinstance(op, Operation) for op in step.ops)
    assert set(step.ops) <= set(plan.ops), f"{step.kind} step runs ops outside its plan"
    for slots in (step.reads, step.writes):
        assert isinstance(slots, tuple) and all(type(s) is int for s in slots)
        assert all(FIRST_SLOT <= s < plan.n_slots for s in slots), slots
        assert len(set(slots)) == len(slots)
    assert step.stateful == has_effects(step.ops), (step.kind, [op.type for op in step.ops])
    if plan.dead_aware:
        return  # (an op of a graph with `cond` also reads and writes the liveness slots of ops)
    # a step reads values of the plan's tensors (its ops' inputs, or what their shape comes from) and
    # writes the values of its ops' outputs
    assert set(step.reads) <= set(plan.slots.values()), (step.kind, step.reads)
    ins = {plan.slots[t] for op in step.ops for t in op.inputs if t in plan.slots}
    # (an unbroadcast reads its target's source; a cross-entropy gradient the logits its forward step read)
    assert step.kind in ("unbroadcast", "xent_grad") or set(step.reads) <= ins, (step.kind, step.reads, ins)
    outs = {plan.slots[t] for op in step.ops for t in op.outputs}
    # (an update written in place also drops the dead slots that held the variable's old array)
    clears = set(getattr(step, "clears", ()))
    assert set(step.writes) <= outs | clears, (step.kind, step.writes, outs)


def check_plan(plan: Plan) -> set[tuple[str, str]]:
    """Checks every step of `plan` (and every interpreted op step); returns the (kind, backend) pairs seen."""
    seen = set()
    for step in [*plan.steps, *plan.op_steps.values()]:
        check_step(step, plan)
        seen.add((step.kind, step.backend))
        for inner in (getattr(step, "fallback", None), getattr(step, "step", None)):  # wrapped steps too
            if isinstance(inner, Step):
                check_step(inner, plan)
    return seen
