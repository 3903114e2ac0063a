"""Row-index pipelines: `from_tensor_slices -> repeat/shuffle -> [elementwise map] -> batch` without
per-element Python.

When every stage below a `batch` only reorders the rows of `from_tensor_slices` arrays, the pipeline
is run on row indices in chunks: the shuffle buffer works on int64 indices in a Numba kernel that
releases the GIL, and each batch is one fancy-indexing gather per component. The order is exactly the
element-by-element order (the same buffer algorithm and the same random draws), so this is only a
faster way to compute the same thing; it also keeps the prefetch thread from holding the GIL that the
training step needs.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow.data.dataset_ops import Dataset, Env

CHUNK = 4096
_kernels: dict[str, Any] = {}


def _shuffle_kernels() -> tuple[Any, Any]:
    """(steady, drain) Numba kernels of the shuffle buffer, compiled on first use."""
    if not _kernels:
        from jitflow.codegen.cache.library import njit

        @njit(nogil=True)
        def steady(buf, inp, draws, out):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
            size = buf.shape[0]
            for k in range(inp.shape[0]):
                i = int(draws[k] * size)
                out[k] = buf[i]
                buf[i] = inp[k]

        @njit(nogil=True)
        def drain(buf, n, draws, out):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
            for k in range(n):
                left = n - k
                i = int(draws[k] * left)
                out[k] = buf[i]
                buf[i] = buf[left - 1]

        _kernels["steady"], _kernels["drain"] = steady, drain
    return _kernels["steady"], _kernels["drain"]


def index_source(ds: Dataset) -> Any:
    """The arrays and index-chunk stream of `ds` when it only reorders rows of sliced arrays, else None."""
    fn = getattr(ds, "_index_chunks", None)
    return ds if fn is not None and ds._index_ok() else None  # type: ignore[attr-defined]


def shuffled_chunks(chunks: Iterator[np.ndarray], size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The index stream through TF's shuffle buffer of `size` (see ShuffleDataset for the draws)."""
    steady, drain = _shuffle_kernels()
    buf = np.empty(size, np.int64)
    n = 0
    pending = np.empty(0, np.int64)
    for chunk in chunks:
        if n < size:  # filling the buffer
            take = min(size - n, len(chunk))
            buf[n:n + take] = chunk[:take]
            n += take
            chunk = chunk[take:]
        if len(chunk):
            pending = chunk
            out = np.empty(len(pending), np.int64)
            steady(buf, pending, rng.random(len(pending)), out)
            yield out
    if n:
        out = np.empty(n, np.int64)
        drain(buf, n, rng.random(n), out)
        yield out


def batches(src: Dataset, env: Env, batch: int, drop: bool) -> Iterator[list[np.ndarray]]:
    """Batches of rows gathered by index from the sliced arrays of `src`."""
    arrays = src._index_arrays(env)  # type: ignore[attr-defined]
    buf: list[np.ndarray] = []
    have = 0
    for chunk in src._index_chunks(env):  # type: ignore[attr-defined]
        buf.append(chunk)
        have += len(chunk)
        if have < batch:
            continue
        flat = np.concatenate(buf) if len(buf) > 1 else buf[0]
        full = (len(flat) // batch) * batch
        for s in range(0, full, batch):
            idx = flat[s:s + batch]
            yield [a[idx] for a in arrays]
        rest = flat[full:]
        buf, have = ([rest], len(rest)) if len(rest) else ([], 0)
    if have and not drop:
        idx = np.concatenate(buf)
        yield [a[idx] for a in arrays]
