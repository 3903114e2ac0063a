"""Per-run scratch buffers, reused across runs of one plan.

A plan keeps a pool of arenas; each run takes one for its duration (so concurrent runs never share a
buffer) and gives it back. Compiled steps write intermediate results into arena buffers; a fetched
value that lives in (or is a view of) an arena buffer is copied before it is handed to the user.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Hashable
from typing import Any

import numpy as np


class Arena:
    """Flat buffers keyed by (step, output), reallocated only when the size changes."""

    __slots__ = ("bufs", "ids")

    def __init__(self) -> None:
        self.bufs: dict[Hashable, np.ndarray] = {}
        self.ids: set[int] = set()

    def buffer(self, key: Hashable, n: int, dtype: np.dtype[Any]) -> np.ndarray:
        """A 1-D buffer of `n` elements of `dtype` for `key` (the same one on every run)."""
        b = self.bufs.get(key)
        if b is None or b.size != n or b.dtype != dtype:
            if b is not None:
                self.ids.discard(id(b))
            b = np.empty(n, dtype)
            self.bufs[key] = b
            self.ids.add(id(b))
        return b

    def owns(self, arr: np.ndarray) -> bool:
        """True when `arr` is an arena buffer or a view of one."""
        base = arr
        while True:
            if id(base) in self.ids:
                return True
            nxt = base.base
            if not isinstance(nxt, np.ndarray):
                return False
            base = nxt


class Recycler:
    """Arrays handed to the user (or stored as variable values), taken back once nobody holds them.

    A fresh result must be a new array the caller owns, but allocating (and page-faulting) large
    arrays on every run is what makes big elementwise kernels memory-bound. The recycler remembers
    the last few arrays it gave out; when one is referenced only by the recycler itself (the user
    dropped it, views included), the next run reuses it. Reference counts make this exact.
    """

    __slots__ = ("pool", "lock")
    KEEP = 2

    def __init__(self) -> None:
        self.pool: list[np.ndarray] = []
        self.lock = threading.Lock()

    def get(self, n: int, dtype: np.dtype[Any]) -> np.ndarray:
        """A flat array of `n` elements of `dtype` that nobody else references."""
        with self.lock:
            for k in range(len(self.pool)):
                if sys.getrefcount(self.pool[k]) <= _FREE_REFS:
                    c = self.pool.pop(k)
                    if c.size == n and c.dtype == dtype:
                        c.flags.writeable = True
                        return c
                    break
        return np.empty(n, dtype)

    def put(self, arr: np.ndarray) -> None:
        """Remembers `arr` (a flat array about to be handed out)."""
        with self.lock:
            self.pool.append(arr)
            if len(self.pool) > self.KEEP:
                del self.pool[0]


def _free_refs() -> int:
    """sys.getrefcount of a pooled array that only the pool references (measured, not assumed)."""
    pool = [np.empty(1)]
    return sys.getrefcount(pool[0])


_FREE_REFS = _free_refs()
