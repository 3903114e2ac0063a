"""Numba kernels of the compiled tf.train.Example reader (`ops/example_wire.py`).

Imported on first use, so that importing jitflow does not import Numba. Compiled lazily; Numba's
cache files go under jitflow's compile cache root (:mod:`jitflow.codegen.cache.library`).
"""
# mypy: ignore-errors
from __future__ import annotations

import numpy as np

from jitflow.codegen.cache.library import njit


@njit(nogil=True)
def varint(buf, p):  # pragma: no cover - compiled
    v = np.uint64(0)
    shift = np.uint64(0)
    while True:
        b = buf[p]
        p += 1
        v |= np.uint64(b & 0x7F) << shift
        shift += np.uint64(7)
        if b < 0x80:
            return v, p

@njit(nogil=True)
def values(buf, p, end, kind, size, out, row, col):  # pragma: no cover
    # the Feature message: one field, float_list (2) or int64_list (3)
    tag, p = varint(buf, p)
    if tag != np.uint64(kind * 8 + 2):
        return False
    ln, p = varint(buf, p)
    if p + np.int64(ln) != end:
        return False
    n = 0
    while p < end:
        tag, p = varint(buf, p)
        if tag == 0x0A:  # packed
            ln, p = varint(buf, p)
            stop = p + np.int64(ln)
            while p < stop:
                if n >= size:
                    return False
                if kind == 2:
                    out[row, col + n] = (np.uint64(buf[p]) | np.uint64(buf[p + 1]) << np.uint64(8)
                                         | np.uint64(buf[p + 2]) << np.uint64(16)
                                         | np.uint64(buf[p + 3]) << np.uint64(24))
                    p += 4
                else:
                    out[row, col + n], p = varint(buf, p)
                n += 1
        elif kind == 2 and tag == 0x0D:
            if n >= size:
                return False
            out[row, col + n] = (np.uint64(buf[p]) | np.uint64(buf[p + 1]) << np.uint64(8)
                                 | np.uint64(buf[p + 2]) << np.uint64(16) | np.uint64(buf[p + 3]) << np.uint64(24))
            p += 4
            n += 1
        elif kind == 3 and tag == 0x08:
            if n >= size:
                return False
            out[row, col + n], p = varint(buf, p)
            n += 1
        else:
            return False
    return n == size and p == end

@njit(nogil=True)
def find_key(buf, ks, ke, keys, key_offs):  # pragma: no cover
    for j in range(key_offs.shape[0] - 1):
        a, b = key_offs[j], key_offs[j + 1]
        if b - a != ke - ks:
            continue
        same = True
        for t in range(b - a):
            if keys[a + t] != buf[ks + t]:
                same = False
                break
        if same:
            return j
    return -1

@njit(nogil=True)
def entry(buf, p, end, keys, key_offs):  # pragma: no cover
    ks = ke = vs = ve = -1
    while p < end:
        tag, p = varint(buf, p)
        ln, p = varint(buf, p)
        if tag == 0x0A:
            ks, ke = p, p + np.int64(ln)
        elif tag == 0x12:
            vs, ve = p, p + np.int64(ln)
        else:
            return -2, vs, ve
        p += np.int64(ln)
    if ks < 0 or vs < 0 or p != end:
        return -2, vs, ve
    return find_key(buf, ks, ke, keys, key_offs), vs, ve

@njit(nogil=True)
def parse(buf, offs, keys, key_offs, kinds, sizes, cols, out):  # pragma: no cover
    nk = kinds.shape[0]
    for r in range(offs.shape[0] - 1):
        found = np.zeros(nk, np.int64)
        p, end = offs[r], offs[r + 1]
        while p < end:
            tag, p = varint(buf, p)
            if tag != 0x0A:
                return False
            ln, p = varint(buf, p)
            fend = p + np.int64(ln)
            while p < fend:
                tag, p = varint(buf, p)
                if tag != 0x0A:
                    return False
                ln, p = varint(buf, p)
                eend = p + np.int64(ln)
                j, vs, ve = entry(buf, p, eend, keys, key_offs)
                if j == -2:
                    return False
                if j >= 0:
                    if not values(buf, vs, ve, kinds[j], sizes[j], out, r, cols[j]):
                        return False
                    found[j] += 1
                p = eend
        for j in range(nk):
            if found[j] != 1:
                return False
    return True
