"""The broadcast pattern of a cluster for concrete input shapes: what a kernel is specialized on.

The iteration space of a cluster is the broadcast of its input shapes (for a reduction cluster: the
shape of the reduced tensor). Dims of extent 1 are dropped and adjacent dims that every input treats
alike (all span both or are broadcast along both; both reduced or both kept) are merged into groups.
A kernel then loops over the groups and indexes each input through the groups it spans, so one kernel
serves every size with the same pattern: `x + b` with x [N, M] and b [M] is groups (N, M) with masks
x = (1, 1), b = (0, 1), whatever N and M are.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Groups of the iteration space and how each input maps onto them."""

    reduced: tuple[bool, ...]  # per group: reduced by the cluster's reduction
    masks: tuple[tuple[bool, ...], ...]  # per input, per group: the input spans the group

    @property
    def ngroups(self) -> int:
        return len(self.reduced)

    def key(self) -> list[list[int]]:
        """Plain data for the kernel cache key."""
        return [[int(r) for r in self.reduced]] + [[int(b) for b in m] for m in self.masks]


class LayoutError(ValueError):
    """The input shapes do not broadcast (the interpreter reports the exact error)."""


def broadcast_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """NumPy broadcasting of `shapes`; LayoutError if they are incompatible."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        off = rank - len(s)
        for d, n in enumerate(s):
            cur = out[off + d]
            if cur == 1:
                out[off + d] = n
            elif n != 1 and n != cur:
                raise LayoutError(f"shapes {shapes} do not broadcast")
    return tuple(out)


def compute_layout(shapes: list[tuple[int, ...]], space: tuple[int, ...],
                   reduce_axes: tuple[int, ...] | None = None) -> tuple[Layout, tuple[int, ...]]:
    """The layout of inputs with `shapes` over the iteration space `space`, and the group extents.

    `reduce_axes` (normalized, non-negative) marks reduced dims of `space`; every input shape must
    broadcast to `space` (LayoutError otherwise).
    """
    rank = len(space)
    red = set(reduce_axes) if reduce_axes is not None else set()
    padded = []
    for s in shapes:
        if len(s) > rank:
            raise LayoutError(f"shape {s} has a higher rank than {space}")
        p = (1,) * (rank - len(s)) + tuple(s)
        for n, e in zip(p, space):
            if n != 1 and n != e:
                raise LayoutError(f"shape {s} does not broadcast to {space}")
        padded.append(p)
    exts: list[int] = []
    reduced: list[bool] = []
    masks: list[list[bool]] = [[] for _ in shapes]
    for d, e in enumerate(space):
        if e == 1:
            continue  # extent-1 dims index nothing
        bits = [p[d] != 1 for p in padded]
        r = d in red
        if exts and reduced[-1] == r and all(m[-1] == b for m, b in zip(masks, bits)):
            exts[-1] *= e
            continue
        exts.append(e)
        reduced.append(r)
        for m, b in zip(masks, bits):
            m.append(b)
    if not exts:
        exts, reduced = [1], [False]
        masks = [[False] for _ in shapes]
    return Layout(tuple(reduced), tuple(tuple(m) for m in masks)), tuple(exts)
