"""Variable updates written over the variable's own array, as TF's ApplyAdam and friends update in place.

A compiled update (`ApplyAdam`, `AssignSub`, ...) computes the variable's new value elementwise from its
current value. Written into a new array, every element costs a read of the old value, a read of the
new array's line for ownership (the write-allocate), and a write; written over the old array, the
second goes away. For W7's 3136 x 1024 weights Adam's three arrays are 38 MB of that traffic per step
(a cold-cache Adam on them: 3.3 ms into new arrays, 2.4 ms in place).

It is safe only when nothing can see the old values any more. Two checks make it so:

* at plan time (`update_in_place`, the last lowering pass), every slot that may hold the variable's array
  or a view of it (its reads, Identity/Reshape pass-throughs: `inter_op.slot_aliases`) must be dead when
  the update runs: not read again before it is rewritten, and not fetched. The update step clears those
  slots (declared as writes, so graph runs order it after their readers);
* at run time (`ClusterStep.claim`), the variable's array and the flat buffer under it must have no
  holder but the session's variable table and the step's recycler: a fetched value the user keeps, a
  queue, a second run in another thread, or a view of any of them makes the step write a new array
  as before. Reference counts make this exact, as for the recycler (`compiler/arena.py`).

Two runs of one session in two threads may still race, as TF's updates without `use_locking` do: a
read that starts after the check sees the update as it is written.

Only elementwise clusters qualify (the kernel reads each element of the variable before it writes the
same element, and nothing else), and only when the kernel cannot fail halfway: a step with run-time
checks re-runs interpreted after a failed check and must find the old values.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from jitflow.compiler.inter_op import slot_aliases
from jitflow.compiler.step import CPU, Step, value_slots
from jitflow.ir.cluster import ELEMENTWISE


def update_in_place(low: Any) -> None:
    """Marks the compiled variable updates of `low.plan` that may write over the variable's array."""
    from jitflow.compiler.steps import ClusterStep

    plan = low.plan
    steps = plan.steps
    fetched = set(plan.fetch_slots)
    for j, st, alias in slot_aliases(steps):
        if not isinstance(st, ClusterStep) or st.backend != CPU or st.c.kind != ELEMENTWISE or st.has_checks:
            continue
        pairs = updated_outputs(st)
        if not pairs:
            continue
        held = {s for s, names in alias.items() for _, v in pairs if v in names}
        if any(not _dead_after(steps, j, s, fetched) for s in held):
            continue
        st.in_place = tuple(pairs)
        st.clears = tuple(sorted(held - set(st.reads)))
        st.writes = value_slots([*st.writes, *st.clears])
        plan.report.setdefault("in_place", []).extend(var for _, var in pairs)  # (for explain)


def updated_outputs(st: Any) -> list[tuple[int, str]]:
    """(output, variable) for each output of cluster step `st` that stores a variable the step reads
    directly (its current value, not through a slot) with the output's dtype."""
    return [(out, var) for out, var in enumerate(st.stores) if var is not None
            and any(name == var and dt == st.out_dtypes[out] for name, dt in zip(st.var_names, st.in_dtypes))]


def _dead_after(steps: list[Step], j: int, s: int, fetched: set[int]) -> bool:
    """True when slot `s` is not read after step `j` before a later step writes it anew, nor fetched."""
    for st in steps[j + 1:]:
        if s in st.reads:
            return False
        if s in st.writes:
            return True
    return s not in fetched


def _holders(variables: dict[str, Any], name: str) -> tuple[Any, int, int]:
    """(the variable's array, its reference count, its flat owner's), or (None, 0, 0) when it is not a
    C-contiguous view of a 1-D array that owns its data (the recycler's, as compiled updates store them)."""
    v = variables.get(name)
    if type(v) is not np.ndarray or not v.flags.c_contiguous:
        return None, 0, 0
    b = v.base
    if type(b) is not np.ndarray or b.base is not None or b.ndim != 1 or b.size != v.size \
            or not b.flags.writeable:
        return None, 0, 0
    return b, sys.getrefcount(v), sys.getrefcount(b)


def _calibrate() -> tuple[int, int]:
    """`_holders`' counts for an array that only the table holds (measured, not assumed)."""
    table = {"v": np.empty(2).reshape(1, 2)}
    _, nv, nb = _holders(table, "v")
    return nv, nb


_SOLE_VIEW, _SOLE_BASE = _calibrate()


def sole_buffer(variables: dict[str, Any], name: str, pool: list[Any]) -> np.ndarray | None:
    """The flat buffer under variable `name`'s array when nothing but `variables` (and the `pool` of the
    recycler that made it) holds the array or any view of it; else None."""
    b, nv, nb = _holders(variables, name)
    if b is None:
        return None
    pooled = sum(1 for p in pool if p is b)
    return b if nv <= _SOLE_VIEW and nb <= _SOLE_BASE + pooled else None
