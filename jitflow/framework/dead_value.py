"""The value of a tensor on the branch of a `cond` that was not taken (TF's "dead" tensors).

It lives below both the ops (Switch/Merge produce and consume it) and the executor (which skips ops
with a dead input), so neither imports the other for it.
"""
from __future__ import annotations


class _Dead:
    """The one dead-branch marker; compared by identity."""

    def __repr__(self) -> str:
        return "<dead>"


DEAD = _Dead()
