"""Stage 4 of a run: replay a plan's steps over fresh slots and collect the fetched values."""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from jitflow.compiler import inter_op, native_plan
from jitflow.compiler.arena import Arena
from jitflow.compiler.plan import ARENA_SLOT, Plan
from jitflow.compiler.step import bound_calls, describe_step


def execute(plan: Plan, ctx: Any, feed_values: list[Any]) -> list[Any]:
    """Runs `plan` with `feed_values` (in the plan's feed order); returns the values of its fetches.

    Fetched values are never arena buffers (nor views of one): those are copied, so the caller owns
    every array it gets back.
    """
    if plan.native is not False:  # (False: the plan cannot run as one compiled call)
        res = native_plan.run(plan, ctx, feed_values)
        if res is not None:
            return res
    vals, arena = _fresh_slots(plan, feed_values)
    # TF computes inf/nan silently (check_numerics is the way to catch them): NumPy must not warn
    token = _quiet()
    try:
        bound = plan.bound
        if bound is None or bound[0] is not plan.steps:
            bound = plan.bound = bound_calls(plan.steps)
            plan.helped = [st for st in plan.steps if hasattr(st, "wants_helpers")]
        if plan.helped and any(st.wants_helpers for st in plan.helped):
            _run_helped(plan, bound[1], ctx, vals)
        elif plan.debug >= 2:
            _run_timed(plan, ctx, vals)
        else:
            overlap = plan.overlap
            if overlap is None or (overlap and overlap.graph.steps is not plan.steps):
                overlap = plan.overlap = inter_op.overlap_for(plan, ctx)
            if overlap:
                overlap(bound[1], ctx, vals)
            else:
                for call in bound[1]:
                    call(ctx, vals)
        return _fetched(plan, vals, arena)
    finally:
        _restore(token)
        plan.arenas.append(arena)


def run_in_order(plan: Plan, ctx: Any, feed_values: list[Any]) -> tuple[list[Any], list[Any]]:
    """Runs `plan`'s steps one by one in plan order; returns its fetched values and every slot's value after
    the run (what `native_plan` translates a plan from)."""
    vals, arena = _fresh_slots(plan, feed_values)
    token = _quiet()
    try:
        for st in plan.steps:
            st(ctx, vals)
        return _fetched(plan, vals, arena), vals
    finally:
        _restore(token)
        plan.arenas.append(arena)


def _fresh_slots(plan: Plan, feed_values: list[Any]) -> tuple[list[Any], Arena]:
    """A run's slots: the plan's template, an arena of buffers no other run uses, the feeds."""
    template = plan.template
    vals: list[Any] = template.copy() if template is not None else [None] * plan.n_slots
    try:
        arena = plan.arenas.pop()
    except IndexError:
        arena = Arena()
    vals[ARENA_SLOT] = arena
    for s, v in zip(plan.feed_slots, feed_values):
        vals[s] = v
    return vals, arena


def _fetched(plan: Plan, vals: list[Any], arena: Arena) -> list[Any]:
    """The fetched values, arena buffers copied (the next run writes them again)."""
    res = [vals[s] if s >= 0 else None for s in plan.fetch_slots]
    if arena.ids:
        res = [v.copy() if type(v) is np.ndarray and arena.owns(v) else v for v in res]
    return res


def _quiet() -> Any:
    """NumPy computes inf/nan silently in this thread until `_restore`."""
    return _fp_set(_IGNORE) if _fp_set is not None else _ignore_fp_errors()


def _restore(token: Any) -> None:
    if _fp_set is not None:
        _fp_reset(token)
    else:
        _restore_fp_errors(token)


try:  # NumPy keeps its error state in a context variable; setting it directly is 10x cheaper than errstate
    from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj  # type: ignore[attr-defined]

    _IGNORE: Any = _make_extobj(all="ignore")
    _fp_set: Any = _extobj_contextvar.set
    _fp_reset: Any = _extobj_contextvar.reset
except (ImportError, TypeError):  # pragma: no cover - other NumPy versions
    _IGNORE = None
    _fp_set = None
    _fp_reset = None


def _ignore_fp_errors() -> Any:
    """The portable (slower) way, for NumPy versions without the context variable."""
    cm = np.errstate(all="ignore")
    cm.__enter__()
    return cm


def _restore_fp_errors(token: Any) -> None:
    token.__exit__(None, None, None)


def _run_helped(plan: Plan, calls: list[Any], ctx: Any, vals: list[Any]) -> None:
    """The steps with the packed GEMMs' helpers spinning (`packed_helpers.serving`): a step of `plan` shares
    its work with them (`wants_helpers`: its last run's work was of a kind they can share)."""
    from jitflow.kernels import packed_helpers

    with packed_helpers.serving():
        if plan.debug >= 2:
            _run_timed(plan, ctx, vals)
        else:
            for call in calls:
                call(ctx, vals)


def quiet_fp() -> None:
    """NumPy computes inf/nan silently in the calling thread from now on (helper threads that run steps)."""
    if _fp_set is not None:
        _fp_set(_IGNORE)
    else:
        np.seterr(all="ignore")


def _run_timed(plan: Plan, ctx: Any, vals: list[Any]) -> None:
    """JITFLOW_DEBUG>=2: every step with its wall time."""
    for step in plan.steps:
        t0 = time.perf_counter()
        step(ctx, vals)
        dt = time.perf_counter() - t0
        print(f"jitflow: step {describe_step(step)} {dt * 1e6:.1f} us", file=sys.stderr)
