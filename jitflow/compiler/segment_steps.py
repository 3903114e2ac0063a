"""UnsortedSegmentSum as a plan step over a buffer reused across runs (`kernels/segment.py`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.compiler.arena import Arena
from jitflow.compiler.step import ARENA_SLOT, CPU, Step, value_slots
from jitflow.framework.graph import Operation
from jitflow.kernels import segment

_DATA = (np.dtype(np.float32), np.dtype(np.float64))
_IDS = (np.dtype(np.int32), np.dtype(np.int64))


class SegmentSumStep:
    """The sums of a run's rows by segment id, written into this step's arena buffer, which holds the
    previous run's sums: only the rows that run wrote are cleared (an embedding gradient's 700 of 10,000).
    Anything else (other dtypes, an id out of range) runs the interpreted op, which raises TF's error; a
    fetched result is copied for the caller, as every arena value is."""

    kind = "segment_sum"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, in_slots: list[int], out_slot: int, fallback: Step) -> None:
        self.ops = (op,)
        self.reads = value_slots(in_slots)
        self.writes = value_slots([out_slot])
        self.in_slots = in_slots
        self.out_slot = out_slot
        self.fallback = fallback
        self.key = id(self)

    def __call__(self, ctx: Any, vals: list) -> None:
        data, ids, n = (vals[s] for s in self.in_slots)
        if type(data) is not np.ndarray or type(ids) is not np.ndarray or data.dtype not in _DATA \
                or ids.dtype not in _IDS or data.shape[:ids.ndim] != ids.shape or np.ndim(n) > 1 or np.size(n) != 1:
            return self.fallback(ctx, vals)
        rows = int(np.asarray(n).reshape(-1)[0])
        inner = data.shape[ids.ndim:]
        if rows < 0:
            return self.fallback(ctx, vals)
        width = int(np.prod(inner)) if inner else 1
        arena: Arena = vals[ARENA_SLOT]
        size, m = rows * width, ids.size
        old, old_state = arena.bufs.get((self.key, 0)), arena.bufs.get((self.key, 1))
        # a buffer (re)allocated now holds garbage, and a new list does not name the rows written last run
        fresh = old is None or old.size != size or old.dtype != data.dtype or old_state is None \
            or old_state.size != m + 1
        out = arena.buffer((self.key, 0), size, data.dtype)
        state = arena.buffer((self.key, 1), m + 1, np.dtype(np.int64))
        bad = segment.scatter_add(out.reshape(rows, width), np.ascontiguousarray(data).reshape(m, width),
                                  np.ascontiguousarray(ids).reshape(m), state, fresh)
        if bad >= 0:
            return self.fallback(ctx, vals)
        vals[self.out_slot] = out.reshape((rows, *inner))
        return None
