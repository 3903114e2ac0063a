"""Independent steps of a plan run at once, one per core (TF's inter-op parallelism).

A plan is a list of steps in an order that respects every dependency; many steps need not wait for the
ones just before them. A GAN's step, for instance, runs its discriminator on real and on generated
images and back-propagates two losses: several chains that share no value. Run one after the other, each
kernel splits over both cores, and the small and medium ones gain little from the second core (dcgan:
96 ms per step on one core, 76 ms on two). Run side by side, one kernel per core, both cores do useful
work nearly all the time.

`StepGraph` turns a plan's steps into a dependency graph:

* a step runs after the last earlier writer of each slot it reads or writes, and after the earlier
  readers of each slot it overwrites;
* an op's control inputs are honoured (the step holding the control input runs first);
* steps that update a variable keep their plan order with every step that touches the same variable:
  its reads (`VariableV2`, a snapshot's Identity, a cluster reading it), its other updates, and every
  step reading a slot that may alias the variable's array (a read, and what passes it on without
  computing: Identity, Reshape and other views). A stateful step whose variables are unknown (an
  iterator, a queue, `py_func`) keeps its order with every stateful and every variable-touching step.

So every pair of steps whose order could change a result keeps the plan's order, and a run computes the
serial plan's values, up to the rounding of sums that a kernel splits by thread (a step that runs beside
another runs on one thread).

`run` walks the graph with the calling thread and helper threads (one per further core). Of the ready
steps, the one starting the longest path of measured step times goes first (plan order until steps are
timed). A step that starts while no other big step runs or waits gets every core (its kernels split as in
a serial run), unless it was measured faster on one core; the others run on one core each, and steps under
`SMALL_S` may run beside a step that has every core. Plans gain only when heavy steps are independent,
and every step pays a little scheduling, so `Overlap` times runs both ways and keeps the faster.
"""
from __future__ import annotations

import heapq
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numba

from jitflow import flags
from jitflow.compiler.step import CPU, CUDA, Call, Step
from jitflow.framework.graph import Operation
from jitflow.kernels import threads

# Ops that own a variable.
_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable"})
# Step kinds whose outputs are fresh arrays (compiled kernels writing arena or new buffers).
_FRESH_KINDS = frozenset({"cluster", "matmul", "fused_matmul", "window", "softmax", "sparse_xent", "xent_grad",
                          "segment_sum", "unbroadcast"})
# Ops whose interpreted kernel may return its input array itself (a fallback inside a fused step).
_PASS_THROUGH = frozenset({"Identity", "StopGradient", "Snapshot", "Reshape", "Squeeze", "ExpandDims"})

# A step shorter than this (seconds) needs no core of its own: it may run beside a step that has every
# core (a variable read, a shape, a small elementwise cluster).
SMALL_S = 100e-6

# A step keeps to one core when it alone ran faster there than this fraction of its time on every core
# (dcgan's second conv gradients, batch 32 over 12x12 images: 2.2 ms on one core beside another step, 3.9
# ms alone on both).
ONE_CORE_MARGIN = 0.9

# Steps a plan needs before it is worth scheduling as a graph (each costs a few us of scheduling).
MIN_STEPS = 8


def _trace_var(op: Operation, seen: int = 0) -> str | None:
    """The variable `op`'s output refers to (through Identity and other pass-throughs), or None."""
    while seen < 16:
        if op.type in _VARIABLE_OPS:
            return op.name
        if op.type in ("Identity", "RefIdentity", "Enter", "RefEnter", "Switch", "RefSwitch") and op.inputs:
            op = op.inputs[0].op
            seen += 1
            continue
        return None
    return None


def _is_handle(t: Any) -> bool:
    dt = getattr(t, "dtype", None)
    name = getattr(dt, "name", "")
    return name == "resource" or name.endswith("_ref")


def step_vars(step: Step) -> tuple[frozenset[str], bool]:
    """(the variables `step` reads or updates itself, whether one is unknown)."""
    names: set[str] = set(getattr(step, "var_names", ()) or ())
    names.discard(None)  # type: ignore[arg-type]
    unknown = False
    for op in step.ops:
        if op.type in _VARIABLE_OPS:
            names.add(op.name)
            continue
        refs = op.opdef.ref_inputs
        for i, t in enumerate(op.inputs):
            if i in refs or _is_handle(t) or t.op.type in _VARIABLE_OPS:
                v = _trace_var(t.op)
                if v is None:
                    unknown = True
                else:
                    names.add(v)
    return frozenset(names), unknown


class _Deps:
    """The predecessors of each step, built in one pass over the steps in plan order."""

    def __init__(self) -> None:
        self.last_write: dict[int, int] = {}
        self.readers: dict[int, list[int]] = {}
        self.where: dict[Operation, int] = {}
        self.alias: dict[int, frozenset[str]] = {}  # slot -> variables whose array it may be (or a view of)
        self.touched: dict[str, list[int]] = {}  # variable -> steps touching it since its last update
        self.updated: dict[str, int] = {}  # variable -> its last updating step
        self.stateful: list[int] = []
        self.unknown: list[int] = []

    def add(self, j: int, st: Step) -> set[int]:
        p: set[int] = set()
        for op in st.ops:
            self.where.setdefault(op, j)
            p.update(self.where[c] for c in op.control_inputs if c in self.where)
        for s in st.reads:
            if s in self.last_write:
                p.add(self.last_write[s])
            self.readers.setdefault(s, []).append(j)
        for s in st.writes:
            if s in self.last_write:
                p.add(self.last_write[s])
            p.update(self.readers.get(s, ()))
            self.readers[s] = []
        seen = self._variables(j, st, p)
        fresh = st.kind in _FRESH_KINDS and not any(op.type in _PASS_THROUGH for op in st.ops)
        passes = not fresh and bool(seen or any(op.type in _VARIABLE_OPS for op in st.ops))
        for s in st.writes:
            if passes:
                self.alias[s] = seen
            else:
                self.alias.pop(s, None)
            self.last_write[s] = j
        p.discard(j)
        return p

    def _variables(self, j: int, st: Step, p: set[int]) -> frozenset[str]:
        """Adds the variable orderings of step `j` to `p`; returns the variables it touches."""
        own, unknown = step_vars(st)
        seen = set(own)
        for s in st.reads:
            seen.update(self.alias.get(s, ()))
        if st.stateful and unknown:  # keeps its order with every stateful and variable-touching step
            p.update(self.stateful)
            for steps_of in self.touched.values():
                p.update(steps_of)
            p.update(self.updated.values())
            self.unknown.append(j)
        elif st.stateful:
            p.update(self.unknown)
            p.update(self.updated[v] for v in seen if v in self.updated)  # what it reads, as updated before it
            for v in own:
                p.update(self.touched.get(v, ()))
                if v in self.updated:
                    p.add(self.updated[v])
                self.updated[v] = j
                self.touched[v] = []
        elif seen:
            p.update(self.unknown)
            p.update(self.updated[v] for v in seen if v in self.updated)
        if st.stateful:
            self.stateful.append(j)
        for v in seen:
            self.touched.setdefault(v, []).append(j)
        return frozenset(seen)


def slot_aliases(steps: Sequence[Step]) -> Iterator[tuple[int, Step, dict[int, frozenset[str]]]]:
    """(index, step, slot -> the variables whose array the slot may hold or view, just before the step)."""
    deps = _Deps()
    for j, st in enumerate(steps):
        yield j, st, deps.alias
        deps.add(j, st)


class StepGraph:
    """The dependencies between a plan's steps (see the module doc)."""

    __slots__ = ("n", "preds", "npreds", "succs", "steps")

    def __init__(self, steps: Sequence[Step]) -> None:
        deps = _Deps()
        self.preds = [sorted(deps.add(j, st)) for j, st in enumerate(steps)]
        self.n = len(steps)
        self.steps = steps
        self.npreds = [len(p) for p in self.preds]
        self.succs: list[list[int]] = [[] for _ in range(self.n)]
        for j, p in enumerate(self.preds):
            for i in p:
                self.succs[i].append(j)


def _quiet_fp() -> None:
    from jitflow.compiler.execute import quiet_fp

    quiet_fp()  # NumPy's error state is per thread: TF computes inf/nan silently


_HELPERS = threads.Workers("jitflow-inter-op", _quiet_fp)


def _after_fork() -> None:
    """A forked child has none of the parent's threads (and its locks may be held): new helpers."""
    global _HELPERS, _BLAS
    _HELPERS = threads.Workers("jitflow-inter-op", _quiet_fp)
    _BLAS = _BlasCount()


os.register_at_fork(after_in_child=_after_fork)


def cores() -> int:
    """Threads a run may use: Numba's thread count, at most the machine's cores."""
    return max(1, min(int(numba.config.NUMBA_NUM_THREADS), os.cpu_count() or 1))  # type: ignore[attr-defined]


class Schedule:
    """How a run picks among ready steps: `key[j]` orders them (lowest first; `step_of` maps a key back to
    its step); `small[j]` marks steps too short to need a core of their own, which may run beside a step
    that has every core; `one[j]` marks steps that ran faster on one core than on every core, which keep
    to one core even when they run alone."""

    __slots__ = ("key", "step_of", "small", "one")

    def __init__(self, order: Sequence[int], small: Sequence[bool], one: Sequence[bool] | None = None) -> None:
        self.step_of = list(order)
        self.key = [0] * len(order)
        for pos, j in enumerate(order):
            self.key[j] = pos
        self.small = list(small)
        self.one = list(one) if one is not None else [False] * len(self.small)

    @classmethod
    def plan_order(cls, n: int) -> Schedule:
        """Plan order, every step big (before any step was timed)."""
        return cls(range(n), [False] * n)

    @classmethod
    def timed(cls, g: StepGraph, costs: tuple[Sequence[float], Sequence[float]]) -> Schedule:
        """From each step's shortest times seen on every core and on one core (`Overlap.costs`)."""
        wide, narrow = costs
        best = [min(w, n) for w, n in zip(wide, narrow)]
        # beside another step, a step's time on one core only grows: shorter there still means shorter alone
        one = [n < ONE_CORE_MARGIN * w for w, n in zip(wide, narrow)]
        return cls(critical_order(g, best), [c < SMALL_S for c in best], one)


class _Run:
    """One run of a step graph: heaps of ready steps (small and big, by `Schedule` key), counts of
    unfinished predecessors, and whether a big step now has every core (`wide`)."""

    __slots__ = ("g", "calls", "ctx", "vals", "left", "small", "big", "cond", "running", "inflight", "done",
                 "error", "wide", "blas_all", "sched", "costs")

    def __init__(self, g: StepGraph, calls: Sequence[Call], ctx: Any, vals: list[Any], blas_all: int,
                 sched: Schedule, costs: tuple[list[float], list[float]] | None = None) -> None:
        self.g, self.calls, self.ctx, self.vals, self.sched = g, calls, ctx, vals, sched
        self.left = list(g.npreds)
        self.small: list[int] = []
        self.big: list[int] = []
        for j in range(g.n):
            if self.left[j] == 0:
                heapq.heappush(self.small if sched.small[j] else self.big, sched.key[j])
        self.cond = threading.Condition()
        self.running = 0  # big steps running
        self.inflight = 0  # steps running, big or small
        self.done = 0
        self.error: BaseException | None = None
        self.wide = False
        self.blas_all = blas_all  # OpenBLAS's thread count for a step that runs alone
        self.costs = costs  # when given: (on every core, on one) each step's shortest times, updated by this run

    def _take(self) -> tuple[int, bool, bool]:
        """(step, is big, gets every core): the first ready step by key, and only a small one while a big
        step has every core. Called with the lock held and a step available (`_can_take`)."""
        small, big, sched = self.small, self.big, self.sched
        if big and not self.wide and (not small or big[0] < small[0]):
            j = sched.step_of[heapq.heappop(big)]
            wide = not big and self.running == 0 and not sched.one[j]  # alone: every core, where that is faster
            self.running += 1
            self.inflight += 1
            self.wide = wide
            return j, True, wide
        self.inflight += 1
        return sched.step_of[heapq.heappop(small)], False, False

    def _can_take(self) -> bool:
        return bool(self.small) or (bool(self.big) and not self.wide)

    def loop(self) -> None:
        """Takes ready steps until every step ran or one raised."""
        cond, g, key, is_small = self.cond, self.g, self.sched.key, self.sched.small
        prev = threads.numba_threads()
        threads.set_numba_threads(1)
        prev_one = threads.set_one_core(True)
        try:
            while True:
                with cond:
                    while self.error is None and self.done < g.n and not self._can_take():
                        cond.wait()
                    if self.error is not None or self.done == g.n:
                        return
                    j, big, wide = self._take()
                try:
                    self._call(j, wide, prev)
                except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                    with cond:
                        self.error = self.error or e
                        self._finished(big, wide)
                        cond.notify_all()
                    return
                with cond:
                    self._finished(big, wide)
                    self.done += 1
                    left = self.left
                    woke = False
                    for k in g.succs[j]:
                        left[k] -= 1
                        if left[k] == 0:
                            heapq.heappush(self.small if is_small[k] else self.big, key[k])
                            woke = True
                    if woke or big or self.inflight == 0:
                        cond.notify_all()
        finally:
            threads.set_one_core(prev_one)
            threads.set_numba_threads(prev)

    def _finished(self, big: bool, wide: bool) -> None:
        self.inflight -= 1
        if big:
            self.running -= 1
        if wide:
            self.wide = False

    def _call(self, j: int, wide: bool, all_numba: int) -> None:
        if wide:
            threads.set_numba_threads(all_numba)
            threads.set_blas_threads(self.blas_all)
            threads.set_one_core(False)
        try:
            if self.costs is None:
                self.calls[j](self.ctx, self.vals)
            else:
                t0 = time.perf_counter()
                self.calls[j](self.ctx, self.vals)
                times = self.costs[0 if wide else 1]  # one thread runs step j: no race
                times[j] = min(times[j], time.perf_counter() - t0)
        finally:
            if wide:  # restored before the step counts as finished: the caller restores after the run
                threads.set_blas_threads(1)
                threads.set_numba_threads(1)
                threads.set_one_core(True)


class _BlasCount:
    """OpenBLAS on one thread while any run walks a graph (its count is process-wide): the first run to
    start saves the count, the last to finish restores it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0
        self.saved = 0

    def enter(self) -> int:
        """Puts OpenBLAS on one thread; returns the count it had before any run started (0: unknown)."""
        with self.lock:
            if self.runs == 0:
                self.saved = threads.set_blas_threads(1)
            self.runs += 1
            return self.saved

    def leave(self) -> None:
        with self.lock:
            self.runs -= 1
            if self.runs == 0 and self.saved:
                threads.set_blas_threads(self.saved)


_BLAS = _BlasCount()


def run(g: StepGraph, calls: Sequence[Call], ctx: Any, vals: list[Any], workers: int,
        sched: Schedule | None = None, costs: tuple[list[float], list[float]] | None = None) -> None:
    """Runs the steps of `g` (their `calls`) on `workers` threads (the caller and helpers); returns when
    all ran, or raises the first error once the steps already started have finished. `sched` (default:
    plan order) picks among ready steps; `costs`, when given, takes each step's time where it is shorter.

    The caller never waits for a helper to start: a helper busy elsewhere (another session's run, or
    the step of this run that made a nested run) takes its task later and finds nothing left to do.
    """
    r = _Run(g, calls, ctx, vals, _BLAS.enter() or workers, sched or Schedule.plan_order(g.n), costs)
    try:
        _HELPERS.ensure(workers - 1)
        for _ in range(workers - 1):
            _HELPERS.tasks.put(r.loop)
        try:
            r.loop()
        except BaseException as e:  # e.g. KeyboardInterrupt while waiting: stop the helpers first
            with r.cond:
                r.error = r.error or e
                r.cond.notify_all()
        with r.cond:  # no step may still write this run's values (and arena) once it returns
            while r.inflight:
                try:
                    r.cond.wait()
                except KeyboardInterrupt as e:  # raised once the steps in flight have finished (a second one: now)
                    if isinstance(r.error, KeyboardInterrupt):
                        raise
                    r.error = r.error or e
    finally:
        _BLAS.leave()
    if r.error is not None:
        raise r.error


def heavy_width(g: StepGraph) -> int:
    """The most compiled steps at one depth of the graph (depth: compiled steps on the longest path to a
    step): 1 for a chain of kernels, 2 or more where two could run at once."""
    depth = [0] * g.n
    count: dict[int, int] = {}
    for j, st in enumerate(g.steps):
        d = max((depth[i] for i in g.preds[j]), default=0)
        if st.backend == CPU and st.kind in _FRESH_KINDS:
            d += 1
            count[d] = count.get(d, 0) + 1
        depth[j] = d
    return max(count.values(), default=0)


def overlap_for(plan: Any, ctx: Any) -> Overlap | bool:
    """The `Overlap` of `plan`, or False where its steps run in order: JITFLOW_INTER_OP=0, a session whose
    ConfigProto sets inter_op_parallelism_threads=1, one core, a plan with `cond` (dead values), CUDA
    steps, few steps, or no two compiled steps that could run at once."""
    mode = flags.inter_op()
    config = getattr(ctx, "_config", None)
    asked = int(getattr(config, "inter_op_parallelism_threads", 0) or 0)
    workers = min(cores(), asked) if asked > 0 else cores()
    if mode == "0" or workers < 2 or not _may_overlap(plan):
        return False
    g = StepGraph(plan.steps)
    if heavy_width(g) < 2:
        return False
    return Overlap(g, workers, always=mode == "1")


def _may_overlap(plan: Any) -> bool:
    """No `cond` (dead values), no CUDA step, and at least MIN_STEPS steps."""
    steps = plan.steps
    return not plan.dead_aware and len(steps) >= MIN_STEPS and not any(st.backend == CUDA for st in steps)


class Overlap:
    """Per plan: whether runs walk the step graph (`run`) or replay the steps in order, chosen by timing.

    The first `TRIES` runs of each way are timed after one untimed run each; the graph is kept when its
    median is below MARGIN times the serial one. Every EXPLORE_EVERY runs the way not in use is timed
    again `TRIES` times, so a plan adapts when the machine's load changes. Timed runs also time every
    step, on every core and on one (`costs`); of the steps ready at once, the one with the longest path of
    step times after it starts first (critical-path list scheduling), so a long chain that plan order puts
    last does not end the run alone, and a step measured faster on one core keeps to one (`Schedule`).
    """

    TRIES = 3
    MARGIN = 0.95
    EXPLORE_EVERY = 200

    __slots__ = ("graph", "calls", "workers", "always", "runs", "samples", "use", "costs", "sched",
                 "medians")

    def __init__(self, graph: StepGraph, workers: int, always: bool = False) -> None:
        self.graph = graph
        self.calls: list[Call] = [st.__call__ for st in graph.steps]
        self.workers = workers
        self.always = always  # JITFLOW_INTER_OP=1: no timing of the serial way, always the graph
        self.runs = 0
        self.samples: tuple[list[float], list[float]] = ([], [])  # in order, as a graph
        self.use = always
        self.costs = ([math.inf] * graph.n, [math.inf] * graph.n)  # shortest times seen: on every core, on one
        self.sched = Schedule.plan_order(graph.n)
        self.medians: tuple[float, float] | None = None  # (in order, as a graph) seconds at the last decision

    def __call__(self, in_order: Sequence[Call], ctx: Any, vals: list[Any]) -> None:
        """One run: `in_order` (the plan's bound calls) one after the other, or the graph."""
        way = self.pick()
        if not self.timed():
            if way:
                run(self.graph, self.calls, ctx, vals, self.workers, self.sched)
            else:
                for call in in_order:
                    call(ctx, vals)
            return
        t0 = time.perf_counter()
        if way:
            run(self.graph, self.calls, ctx, vals, self.workers, self.sched, self.costs)
        else:
            costs = self.costs[0]  # in order, every step may use every core
            for j, call in enumerate(self.calls):
                t1 = time.perf_counter()
                call(ctx, vals)
                costs[j] = min(costs[j], time.perf_counter() - t1)
        self.record(way, time.perf_counter() - t0)
        self.sched = Schedule.timed(self.graph, self.costs)

    def pick(self) -> int:
        """0: in order, 1: as a graph, for this run."""
        k = self.runs % self.EXPLORE_EVERY
        self.runs += 1
        if self.always:
            return 1
        if k < 2 * (self.TRIES + 1):
            return k % 2
        return 1 if self.use else 0

    def record(self, way: int, seconds: float) -> None:
        """Counts a timed run's seconds; decides once both ways have `TRIES` of them."""
        k = (self.runs - 1) % self.EXPLORE_EVERY
        span = 2 * (self.TRIES + 1)
        if self.always or k >= span:
            return
        if k >= 2:  # the first run of each way pays page faults and first calls
            self.samples[way].append(seconds)
        if k == span - 1:
            serial, graph = (sorted(s)[len(s) // 2] for s in self.samples)
            self.use = graph < self.MARGIN * serial
            self.medians = (serial, graph)
            if flags.debug_level() >= 1:
                print(f"jitflow: {self.graph.n} steps run {'as a graph' if self.use else 'in order'} (median "
                      f"{graph * 1e3:.2f} ms as a graph, {serial * 1e3:.2f} ms in order)", file=sys.stderr)
            self.samples[0].clear()
            self.samples[1].clear()

    def timed(self) -> bool:
        """Whether the run `pick` chose is one to time (in JITFLOW_INTER_OP=1, the first runs, for step times)."""
        k = (self.runs - 1) % self.EXPLORE_EVERY
        return k < (self.TRIES + 1 if self.always else 2 * (self.TRIES + 1))


def describe(plan: Any) -> str:
    """One line for `explain`: how the plan's steps run (or may run) at once, '' when always in order."""
    ov = plan.overlap
    if ov is None:
        if not _may_overlap(plan):
            return ""
        width = heavy_width(StepGraph(plan.steps))
        return (f"up to {width} compiled steps can run at once (the first runs time both ways)"
                if width >= 2 else "")
    if not ov:
        return ""
    if ov.always:
        return f"steps run as a graph on {ov.workers} threads (JITFLOW_INTER_OP=1)"
    if ov.medians is None:
        return f"up to {heavy_width(ov.graph)} compiled steps can run at once (being timed both ways)"
    serial, graph = ov.medians
    way = f"as a graph on {ov.workers} threads" if ov.use else "in order"
    return f"steps run {way} (median {graph * 1e3:.2f} ms as a graph, {serial * 1e3:.2f} ms in order)"


def critical_order(g: StepGraph, costs: Sequence[float]) -> list[int]:
    """The steps by the time of the longest path they start (their own time included), longest first;
    plan order among equals. Steps not timed yet count as free."""
    level = [0.0] * g.n
    for j in range(g.n - 1, -1, -1):  # successors come later in plan order
        c = costs[j]
        level[j] = (c if c != math.inf else 0.0) + max((level[k] for k in g.succs[j]), default=0.0)
    return sorted(range(g.n), key=lambda j: (-level[j], j))
