"""Stage 4 of a run: replay a plan's steps over fresh slots and collect the fetched values."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.compiler.plan import Plan


def execute(plan: Plan, ctx: Any, feed_values: list[Any]) -> list[Any]:
    """Runs `plan` with `feed_values` (in the plan's feed order); returns the values of its fetches."""
    vals: list[Any] = [None] * plan.n_slots
    for s, v in zip(plan.feed_slots, feed_values):
        vals[s] = v
    with np.errstate(all="ignore"):  # TF computes inf/nan silently; check_numerics is the way to catch them
        for step in plan.steps:
            step(ctx, vals)
    return [vals[s] if s >= 0 else None for s in plan.fetch_slots]
