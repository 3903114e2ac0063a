"""Per-run scratch buffers, reused across runs of one plan.

A plan keeps a pool of arenas; each run takes one for its duration (so concurrent runs never share a
buffer) and gives it back. Compiled steps write intermediate results into arena buffers; a fetched
value that lives in (or is a view of) an arena buffer is copied before it is handed to the user.
"""
from __future__ import annotations

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
