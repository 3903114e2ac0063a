"""The `Step` protocol: what every step of a plan declares about itself, and the interpreted steps.

A plan (`compiler/plan.py`) is a list of steps over numbered value slots. Every step, interpreted or
compiled, on any backend, is an object that declares:

* `kind`: what it is, for passes that rewrite steps (`"op"` for an interpreted op, `"cluster"`,
  `"matmul"`, `"softmax"`, `"sparse_xent"`, `"xent_grad"`, `"segment_sum"`, `"unbroadcast"`, `"window"`,
  `"chain"`, `"device_read"`, `"reshape"`, `"fused_matmul"`, `"split"`, `"concat"`);
* `ops`: the graph ops whose semantics it implements;
* `reads` / `writes`: the value slots it reads and the ones it produces for later steps (feeds and
  op outputs; the reserved slots below `FIRST_SLOT` are never listed; a step that falls back to its
  ops' interpreted steps may also write the slots of values inside it);
* `stateful`: True when it updates a variable or runs an op with side effects (a variable read is not);
* `backend`: where it runs: `"interp"` (reference kernels), `"cpu"` (compiled or library code on the
  host) or `"cuda"`;

and is called as `step(ctx, vals)`. The compiler's passes and the CUDA rewrite read these fields,
never the attributes of a particular step class.

This module also holds the interpreted steps: `OpStep` (one op through its NumPy reference kernel),
`DeadAwareStep` (the same inside `cond`), `IdentityStep` and `VarReadStep` (cheaper forms of Identity
and of a variable read) and `Chain` (steps run one after the other, as one step).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jitflow.compiler.interp import op_error
from jitflow.framework import registry
from jitflow.framework.dead_value import DEAD
from jitflow.framework.graph import Operation

NONE_SLOT = 0
TRASH_SLOT = 1
ARENA_SLOT = 2
FIRST_SLOT = 3

INTERP, CPU, CUDA = "interp", "cpu", "cuda"
BACKENDS = (INTERP, CPU, CUDA)


@runtime_checkable
class Step(Protocol):
    """One step of a plan (see the module doc); implementations may declare the fields as attributes."""

    @property
    def kind(self) -> str: ...

    @property
    def ops(self) -> tuple[Operation, ...]: ...

    @property
    def reads(self) -> tuple[int, ...]: ...

    @property
    def writes(self) -> tuple[int, ...]: ...

    @property
    def stateful(self) -> bool: ...

    @property
    def backend(self) -> str: ...

    def __call__(self, ctx: Any, vals: list) -> None: ...


def value_slots(slots: Iterable[int]) -> tuple[int, ...]:
    """The value slots among `slots` (reserved slots and -1 dropped), each once, in order."""
    return tuple(dict.fromkeys(s for s in slots if s >= FIRST_SLOT))


def has_effects(ops: Iterable[Operation]) -> bool:
    """True when one of `ops` has side effects (a stateful op other than a variable's read)."""
    return any(op.type != "VariableV2" and op.opdef.kind == registry.STATEFUL for op in ops)


Call = Callable[[Any, list], None]


def bound_calls(steps: Sequence[Step]) -> tuple[Sequence[Step], list[Call]]:
    """(`steps`, their `__call__` methods bound): for loops that run the same steps many times. Calling a
    bound method skips CPython's instance-call slot, which costs ~40 ns a step (as much as a small step
    spends on itself). A run of variable reads and slot copies is one call (`SlotMoves`). Callers keep the
    pair and rebind when their list of steps is another object."""
    calls: list[Call] = []
    run: list[Step] = []
    for st in [*steps, None]:
        if type(st) is VarReadStep or type(st) is IdentityStep:
            run.append(st)
            continue
        if run:
            calls.append(run[0].__call__ if len(run) == 1 else SlotMoves(run).__call__)
            run = []
        if st is not None:
            calls.append(st.__call__)
    return steps, calls


def describe_step(step: Step) -> str:
    """'cluster[a,b]' for a step of several ops (or a cluster), else 'Type:name', for debug output."""
    if step.kind == "cluster" or len(step.ops) > 1:
        return step.kind + "[" + ",".join(op.name for op in step.ops) + "]"
    if step.ops:
        op = step.ops[0]
        return f"{op.type}:{op.name}"
    return step.kind


class OpStep:
    """One op with one output through its NumPy reference kernel (the interpreter)."""

    __slots__ = ("op", "kernel", "in_slots", "out", "ops", "reads", "writes", "stateful")
    kind = "op"
    backend = INTERP

    def __init__(self, op: Operation, in_slots: list[int], out_slots: list[int]) -> None:
        kernel = op.opdef.kernel
        assert kernel is not None
        self.op = op
        self.kernel = kernel
        self.in_slots = in_slots
        self.out = out_slots[0] if out_slots else -1
        self.ops = (op,)
        self.reads = value_slots(in_slots)
        self.writes = value_slots(out_slots)
        self.stateful = has_effects(self.ops)

    def __call__(self, ctx: Any, vals: list) -> None:
        ins = [vals[i] for i in self.in_slots]
        try:
            vals[self.out] = self.kernel(ctx, self.op, ins)
        except Exception as e:  # noqa: BLE001 - reported as the op's error
            raise op_error(self.op, ins, e) from e


class OpStepN(OpStep):
    """An op with zero or several outputs through its reference kernel (which returns a sequence)."""

    __slots__ = ("out_slots",)

    def __init__(self, op: Operation, in_slots: list[int], out_slots: list[int]) -> None:
        super().__init__(op, in_slots, out_slots)
        self.out_slots = out_slots

    def __call__(self, ctx: Any, vals: list) -> None:
        ins = [vals[i] for i in self.in_slots]
        try:
            res = self.kernel(ctx, self.op, ins)
        except Exception as e:  # noqa: BLE001 - reported as the op's error
            raise op_error(self.op, ins, e) from e
        if self.out_slots:
            for s, v in zip(self.out_slots, res):
                vals[s] = v


def op_step(op: Operation, in_slots: list[int], out_slots: list[int]) -> OpStep:
    """The interpreted step of `op` (the one-output form when it has one output)."""
    return OpStep(op, in_slots, out_slots) if len(out_slots) == 1 else OpStepN(op, in_slots, out_slots)


class DeadAwareStep:
    """An interpreted op in a graph with `cond`: an op with a dead input or control input is dead itself."""

    kind = "op"
    backend = INTERP

    def __init__(self, op: Operation, in_slots: list[int], out_slots: list[int], ctrl_slots: list[int],
                 op_slot: int) -> None:
        self.inner = op_step(op, in_slots, out_slots)
        self.is_merge = op.type == "Merge"
        self.in_slots, self.out_slots, self.ctrl_slots, self.op_slot = in_slots, out_slots, ctrl_slots, op_slot
        self.ops = (op,)
        self.reads = value_slots([*in_slots, *ctrl_slots])
        self.writes = value_slots([*out_slots, op_slot])
        self.stateful = self.inner.stateful

    def __call__(self, ctx: Any, vals: list) -> None:
        in_slots, out_slots, ctrl_slots = self.in_slots, self.out_slots, self.ctrl_slots
        if self.is_merge:
            for k, i in enumerate(in_slots):
                if vals[i] is not DEAD:
                    if any(vals[c] is DEAD for c in ctrl_slots):
                        break
                    vals[out_slots[0]] = vals[i]
                    if len(out_slots) > 1:
                        vals[out_slots[1]] = np.int32(k)
                    vals[self.op_slot] = True
                    return
        elif not any(vals[i] is DEAD for i in in_slots) and not any(vals[c] is DEAD for c in ctrl_slots):
            self.inner(ctx, vals)
            vals[self.op_slot] = True
            return
        for s in out_slots:
            vals[s] = DEAD
        vals[self.op_slot] = DEAD


class IdentityStep:
    """Identity (or StopGradient) as a slot copy: cheaper than its interpreted step."""

    __slots__ = ("src", "dst", "ops", "reads", "writes")
    kind = "op"
    backend = INTERP
    stateful = False

    def __init__(self, op: Operation, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.ops = (op,)
        self.reads = value_slots([src])
        self.writes = value_slots([dst])

    def __call__(self, ctx: Any, vals: list) -> None:
        vals[self.dst] = vals[self.src]


class ReshapeStep:
    """Reshape to a constant shape: the target is read once, not per run (a batch-1 CNN ran two of these at
    ~4 us each); anything NumPy rejects goes to the interpreted step for TF's error."""

    __slots__ = ("src", "dst", "target", "fallback", "ops", "reads", "writes")
    kind = "op"
    backend = INTERP
    stateful = False

    def __init__(self, op: Operation, src: int, dst: int, target: tuple[int, ...], fallback: Step) -> None:
        self.src, self.dst, self.target, self.fallback = src, dst, target, fallback
        self.ops = (op,)
        self.reads = value_slots([src, *fallback.reads])
        self.writes = value_slots([dst])

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.src]
        if type(x) is np.ndarray:
            try:
                vals[self.dst] = x.reshape(self.target)
                return
            except ValueError:
                pass
        self.fallback(ctx, vals)


class ShapeStep:
    """Shape of an array as a slot write (a batch-1 CNN's dropout ran its interpreted step at ~4 us); anything
    else (a scalar, a value missing) goes to the interpreted step."""

    __slots__ = ("src", "dst", "dtype", "fallback", "ops", "reads", "writes")
    kind = "op"
    backend = INTERP
    stateful = False

    def __init__(self, op: Operation, src: int, dst: int, fallback: Step) -> None:
        self.src, self.dst, self.fallback = src, dst, fallback
        self.dtype = np.dtype(op.attrs["out_type"].np)
        self.ops = (op,)
        self.reads = value_slots([src])
        self.writes = value_slots([dst])

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.src]
        if type(x) is np.ndarray:
            vals[self.dst] = np.array(x.shape, self.dtype)
        else:
            self.fallback(ctx, vals)


class VarReadStep:
    """A variable's read as a dict lookup; its interpreted step when the variable is missing (its error)."""

    __slots__ = ("step", "name", "dst", "ops", "reads", "writes")
    kind = "op"
    backend = INTERP
    stateful = False

    def __init__(self, step: Step, dst: int) -> None:
        self.step = step
        self.name = step.ops[0].name
        self.dst = dst
        self.ops = step.ops
        self.reads = step.reads
        self.writes = value_slots([dst])

    def __call__(self, ctx: Any, vals: list) -> None:
        v = ctx.variables.get(self.name)
        if v is None:
            return self.step(ctx, vals)  # raises the interpreter's FailedPreconditionError
        vals[self.dst] = v
        return None


class Chain:
    """Steps run one after the other, as one step (an op chain's interpreted fallback)."""

    kind = "chain"

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.calls = bound_calls(self.steps)[1]
        self.ops = tuple(op for st in steps for op in st.ops)
        self.reads = value_slots(s for st in steps for s in st.reads)
        self.writes = value_slots(s for st in steps for s in st.writes)
        self.stateful = any(st.stateful for st in steps)
        backends = {st.backend for st in steps}
        self.backend = backends.pop() if len(backends) == 1 else CPU

    def __call__(self, ctx: Any, vals: list) -> None:
        for call in self.calls:
            call(ctx, vals)


class SlotMoves:
    """Consecutive `VarReadStep`s and `IdentityStep`s as one call, in their order (a batch-1 CNN's plan runs
    16 of them, ~0.5 us each as steps of their own)."""

    __slots__ = ("moves",)

    def __init__(self, steps: Sequence[Step]) -> None:
        # (variable name, destination slot, the read's step) or (None, source slot, destination slot)
        self.moves: list[tuple[Any, Any, Any]] = []
        for st in steps:
            if isinstance(st, VarReadStep):
                self.moves.append((st.name, st.dst, st))
            else:
                assert isinstance(st, IdentityStep)
                self.moves.append((None, st.src, st.dst))

    def __call__(self, ctx: Any, vals: list) -> None:
        variables = ctx.variables
        for name, a, b in self.moves:
            if name is None:
                vals[b] = vals[a]
                continue
            v = variables.get(name)
            if v is None:
                b(ctx, vals)  # the read's own step: the interpreter's FailedPreconditionError
            else:
                vals[a] = v
