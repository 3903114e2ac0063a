"""A compiled reader of tf.train.Example wire bytes for batches of fixed-length float/int64 features.

`parse_example` with only `FixedLenFeature`s of float32/int64 (the common case: images and labels)
reads the records' protobuf bytes directly in one Numba kernel per batch instead of decoding
messages in Python. Anything the kernel does not expect (a missing or repeated key, another wire
type, a wrong count) makes it give up, and the general path then parses the batch and reports the
error, so results and errors are the same either way.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_kernel: list[Any] = []


def _compile() -> Any:
    from numba import njit

    @njit(cache=True, nogil=True)
    def varint(buf, p):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
        v = np.uint64(0)
        shift = np.uint64(0)
        while True:
            b = buf[p]
            p += 1
            v |= np.uint64(b & 0x7F) << shift
            shift += np.uint64(7)
            if b < 0x80:
                return v, p

    @njit(cache=True, nogil=True)
    def values(buf, p, end, kind, size, out, row, col):  # type: ignore[no-untyped-def]  # pragma: no cover
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

    @njit(cache=True, nogil=True)
    def find_key(buf, ks, ke, keys, key_offs):  # type: ignore[no-untyped-def]  # pragma: no cover
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

    @njit(cache=True, nogil=True)
    def entry(buf, p, end, keys, key_offs):  # type: ignore[no-untyped-def]  # pragma: no cover
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

    @njit(cache=True, nogil=True)
    def parse(buf, offs, keys, key_offs, kinds, sizes, cols, out):  # type: ignore[no-untyped-def]  # pragma: no cover
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

    return parse


def parse_fixed(records: list[bytes], keys: list[str], kinds: list[int], shapes: list[tuple]) -> list | None:
    """Per feature, the [batch, *shape] array (kinds: 2 float32, 3 int64), or None to take the general path."""
    if not _kernel:
        _kernel.append(_compile())
    sizes = np.array([int(np.prod(s)) if s else 1 for s in shapes], np.int64)
    cols = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    lens = np.fromiter(map(len, records), np.int64, len(records))
    offs = np.zeros(len(records) + 1, np.int64)
    np.cumsum(lens, out=offs[1:])
    buf = np.frombuffer(b"".join(records), np.uint8)
    kb = [k.encode() for k in keys]
    key_offs = np.zeros(len(kb) + 1, np.int64)
    np.cumsum([len(k) for k in kb], out=key_offs[1:])
    out = np.zeros((len(records), int(sizes.sum())), np.uint64)
    if len(buf) == 0 or not _kernel[0](buf, offs, np.frombuffer(b"".join(kb), np.uint8), key_offs,
                                       np.array(kinds, np.int64), sizes, cols, out):
        return None
    res = []
    for kind, col, size, shape in zip(kinds, cols, sizes, shapes):
        block = np.ascontiguousarray(out[:, col:col + size])
        vals = block.astype(np.uint32).view(np.float32) if kind == 2 else block.view(np.int64)
        res.append(vals.reshape((len(records),) + tuple(shape)))
    return res
