"""UnsortedSegmentSum into a buffer kept across runs: only the rows the previous run wrote are cleared.

An embedding's gradient is the sum of a batch's rows into a ``[vocab, width]`` matrix that is almost all
zeros (W8: 700 rows into 10,000). Zeroing all of it every run (8 MB there, new memory each time for the
interpreter's ``np.zeros``) cost more than the sum. `scatter_add` instead clears the rows listed in
``touched`` (the previous run's), adds this run's rows in order (the additions of ``np.add.at``), and
lists them for the next run.
"""
from __future__ import annotations

import numpy as np

from jitflow.codegen.cache.library import njit


@njit(nogil=True)
def scatter_add(out, data, ids, touched, fresh):  # type: ignore[no-untyped-def]
    """out[ids[i]] += data[i] for every i with ids[i] >= 0, in order, after clearing `out` (all of it when
    `fresh`, else the touched[1 : 1 + touched[0]] rows). Returns the index of the first id >= len(out), or -1;
    `touched` then asks the next call for a full clear."""
    n, w = out.shape
    if fresh or touched[0] < 0:
        out[:] = 0
    else:
        for t in range(touched[0]):
            out[touched[1 + t]] = 0
    touched[0] = -1  # until this call completes, nothing is known about `out`
    cnt = 0
    for i in range(ids.shape[0]):
        r = ids[i]
        if r < 0:
            continue
        if r >= n:
            return i
        row = out[r]
        src = data[i]
        for j in range(w):
            row[j] += src[j]
        touched[1 + cnt] = r
        cnt += 1
    touched[0] = cnt
    return -1


def empty_state(rows: int) -> np.ndarray:
    """A `touched` list for up to `rows` ids that asks for a full clear."""
    state = np.empty(rows + 1, np.int64)
    state[0] = -1
    return state
