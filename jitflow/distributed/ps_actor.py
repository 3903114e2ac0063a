"""The variable store of one ps task, run as a Ray actor.

The actor runs one call at a time, so every push applies all of its variables' updates atomically
(TF's `use_locking=True`, which is also a valid schedule for `use_locking=False`). This module needs only
NumPy: Ray ships the class to its worker processes by value.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _frozen(value: Any) -> np.ndarray:
    """A read-only copy (a received array may be a view of Ray's shared memory, which it would pin)."""
    arr = np.array(value, copy=True)
    arr.flags.writeable = False  # readers keep what they got; every update stores a new array
    return arr


class VariableStore:
    """Variables of one ps task by op name: read in batches, set, or updated by a difference."""

    def __init__(self, job_name: str, task_index: int) -> None:
        self._task = (job_name, task_index)
        self._values: dict[str, np.ndarray] = {}
        self._pushes = 0
        self._rounds: dict[int, list[dict[str, np.ndarray]]] = {}  # synchronous rounds being collected
        self._completed = -1  # the last completed synchronous round (a global step value)

    def ping(self) -> tuple[str, int]:
        """The task this store serves (a liveness check)."""
        return self._task

    def pull(self, names: list[str]) -> dict[str, np.ndarray]:
        """Current values of those of `names` that are initialized (absent names are not)."""
        values = self._values
        return {n: values[n] for n in names if n in values}

    def push(self, sets: dict[str, np.ndarray], deltas: dict[str, np.ndarray], applies: Any = ()) -> list[str]:
        """Stores `sets`, adds `deltas` to the current values, then applies the update rules of `applies`
        ((rule, variable names, inputs) each); returns the names of the updates it dropped.

        An update of a variable this store does not hold (it restarted since the worker read it) is
        dropped: there is nothing to update.
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
            new = np.asarray(np.add(cur, d, dtype=cur.dtype, casting="unsafe"))  # a fresh array: no copy
            new.flags.writeable = False
            values[n] = new
        for rule, names, args in applies:
            found = [values.get(n) for n in names]
            current = [c for c in found if c is not None]
            if len(current) != len(found):
                dropped.extend(names)
                continue
            for n, arr in zip(names, rule(*current, *args)):
                arr = np.asarray(arr, dtype=current[0].dtype)
                if arr.flags.writeable:
                    arr.flags.writeable = False
                values[n] = arr
        self._pushes += 1
        return dropped

    def exchange(self, sets: dict[str, np.ndarray], deltas: dict[str, np.ndarray], applies: Any,
                 names: list[str]) -> dict[str, np.ndarray]:
        """`push(sets, deltas, applies)`, then `pull(names)`: a worker's update of one step and its read of
        the next."""
        self.push(sets, deltas, applies)
        return self.pull(names)

    def contribute(self, round_: int, deltas: dict[str, np.ndarray], replicas: int, step_name: str) -> bool:
        """One worker's update for synchronous round `round_`; False if that round is over (stale).

        The `replicas`-th update of a round applies their average and advances `step_name` (where this
        task holds it) by one.
        """
        if round_ <= self._completed:
            return False
        updates = self._rounds.setdefault(round_, [])
        updates.append(deltas)
        if len(updates) >= replicas:
            names = {n for u in updates for n in u}
            averaged = {n: np.add.reduce([u[n] for u in updates if n in u]) / len(updates) for n in names}
            self.push({}, averaged)
            step = self._values.get(step_name)
            if step is not None:
                self.push({}, {step_name: np.ones((), step.dtype)})
            self._completed = round_
            self._rounds = {r: u for r, u in self._rounds.items() if r > round_}
        return True

    def completed(self) -> int:
        """The last completed synchronous round."""
        return self._completed

    def stats(self) -> dict[str, int]:
        """How many variables and bytes this store holds, and how many pushes it has applied."""
        return {"variables": len(self._values), "bytes": sum(v.nbytes for v in self._values.values()),
                "pushes": self._pushes}
