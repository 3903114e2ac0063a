"""The variable store of one ps task, run as a Ray actor.

The actor runs one call at a time, so every push applies all of its variables' updates atomically
(TF's `use_locking=True`, which is also a valid schedule for `use_locking=False`). This module needs only
NumPy: Ray ships the class to its worker processes by value.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _frozen(value: Any) -> np.ndarray:
    arr = np.array(value, copy=True)
    arr.flags.writeable = False  # readers keep what they got; every update stores a new array
    return arr


class VariableStore:
    """Variables of one ps task by op name: read in batches, set, or updated by a difference."""

    def __init__(self, job_name: str, task_index: int) -> None:
        self._task = (job_name, task_index)
        self._values: dict[str, np.ndarray] = {}
        self._pushes = 0

    def ping(self) -> tuple[str, int]:
        """The task this store serves (a liveness check)."""
        return self._task

    def pull(self, names: list[str]) -> dict[str, np.ndarray]:
        """Current values of those of `names` that are initialized (absent names are not)."""
        values = self._values
        return {n: values[n] for n in names if n in values}

    def push(self, sets: dict[str, np.ndarray], deltas: dict[str, np.ndarray]) -> list[str]:
        """Stores `sets`, then adds `deltas` to the current values; returns names of deltas it dropped.

        A delta for a variable this store does not hold (it restarted since the worker read it) is
        dropped: there is nothing to add it to.
        """
        values = self._values
        for n, v in sets.items():
            values[n] = _frozen(v)
        dropped = []
        for n, d in deltas.items():
            cur = values.get(n)
            if cur is None or cur.shape != np.shape(d):
                dropped.append(n)
                continue
            values[n] = _frozen(np.add(cur, d, dtype=cur.dtype, casting="unsafe"))
        self._pushes += 1
        return dropped

    def exchange(self, sets: dict[str, np.ndarray], deltas: dict[str, np.ndarray],
                 names: list[str]) -> dict[str, np.ndarray]:
        """`push(sets, deltas)`, then `pull(names)`: a worker's update of one step and its read of the next."""
        self.push(sets, deltas)
        return self.pull(names)

    def stats(self) -> dict[str, int]:
        """How many variables and bytes this store holds, and how many pushes it has applied."""
        return {"variables": len(self._values), "bytes": sum(v.nbytes for v in self._values.values()),
                "pushes": self._pushes}
