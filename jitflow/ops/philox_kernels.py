"""Numba kernels of the Philox generator and TF's distributions (used by `ops/philox.py`).

This file is kernel source, never imported as a module: `ops/philox.py` hands its text to jitflow's
compile cache (:func:`jitflow.codegen.cache.get_kernel`) with one explicitly typed entry left in (see
`ENTRIES`), which it compiles once and keeps under ``JITFLOW_CACHE_DIR`` with every other kernel, and
calls :func:`kernels`.

Numba's float32 math.log/sin/cos are the C library's logf/sinf/cosf, which TF's kernels call, so the
Box-Muller results match TF's bit for bit (NumPy's SIMD versions differ in the last bit for about 1% of
inputs). All integer arithmetic is on uint64 values holding 32-bit words; literals are wrapped in
np.uint64 because Numba turns uint64-int64 arithmetic into floats.
"""
# mypy: ignore-errors
from __future__ import annotations

import math

import numpy as np
from numba import njit

m32 = np.uint64(0xFFFFFFFF)
s32 = np.uint64(32)
ma = np.uint64(0xD2511F53)
mb = np.uint64(0xCD9E8D57)
wa = np.uint64(0x9E3779B9)
wb = np.uint64(0xBB67AE85)


@njit(inline="always", cache=True)
def add128(c0, c1, c2, c3, n):
    lo = c0 + (n & m32)
    mid = c1 + (n >> s32) + (lo >> s32)
    hi = c2 + (mid >> s32)
    return lo & m32, mid & m32, hi & m32, (c3 + (hi >> s32)) & m32


@njit(inline="always", cache=True)
def rounds(c0, c1, c2, c3, k0, k1):
    for r in range(10):
        if r > 0:
            k0 = (k0 + wa) & m32
            k1 = (k1 + wb) & m32
        p0 = ma * c0
        p1 = mb * c2
        c0, c1, c2, c3 = (p1 >> s32) ^ c1 ^ k0, p1 & m32, (p0 >> s32) ^ c3 ^ k1, p0 & m32
    return c0, c1, c2, c3


@njit("void(u8, u8, u8, u8, u8, u8, i8, u8, u4[::1])", cache=True, nogil=True)
def words(k0, k1, c0, c1, c2, c3, count, stride, out):
    for g in range(count):
        a0, a1, a2, a3 = add128(c0, c1, c2, c3, np.uint64(g) * stride)
        r0, r1, r2, r3 = rounds(a0, a1, a2, a3, k0, k1)
        out[4 * g] = r0
        out[4 * g + 1] = r1
        out[4 * g + 2] = r2
        out[4 * g + 3] = r3


@njit(inline="always", cache=True)
def to_f32(x):
    bits = np.uint32((x & np.uint64(0x7FFFFF)) | np.uint64(0x3F800000))
    return np.float32(np.array([bits]).view(np.float32)[0] - np.float32(1.0))


@njit(inline="always", cache=True)
def to_f64(hi, lo):
    man = ((hi & np.uint64(0xFFFFF)) << s32) | lo
    return np.array([man | np.uint64(0x3FF0000000000000)]).view(np.float64)[0] - 1.0


@njit(inline="always", cache=True)
def bm32(x0, x1):
    u1 = to_f32(x0)
    if u1 < np.float32(1e-7):
        u1 = np.float32(1e-7)
    v1 = np.float32(2.0 * math.pi * np.float64(to_f32(x1)))
    u2 = np.float32(math.sqrt(np.float32(np.float32(-2.0) * np.float32(math.log(u1)))))
    return np.float32(math.sin(v1)) * u2, np.float32(math.cos(v1)) * u2


@njit(inline="always", cache=True)
def bm64(x0, x1, x2, x3):
    u1 = to_f64(x0, x1)
    if u1 < 1e-7:
        u1 = 1e-7
    v1 = 2.0 * math.pi * to_f64(x2, x3)
    r = math.sqrt(-2.0 * math.log(u1))
    return math.sin(v1) * r, math.cos(v1) * r


@njit("void(u8, u8, u8, u8, u8, u8, f4[::1])", cache=True, nogil=True)
def uniform32(k0, k1, c0, c1, c2, c3, out):
    # TF's Uint32ToFloat of each word, written as bits into the output, then shifted down from [1, 2)
    n = out.size
    bits = out.view(np.uint32)
    one = np.uint64(0x3F800000)
    low = np.uint64(0x7FFFFF)
    for g in range((n + 3) // 4):
        a0, a1, a2, a3 = add128(c0, c1, c2, c3, np.uint64(g))
        r0, r1, r2, r3 = rounds(a0, a1, a2, a3, k0, k1)
        i = 4 * g
        bits[i] = np.uint32((r0 & low) | one)
        if i + 1 < n:
            bits[i + 1] = np.uint32((r1 & low) | one)
        if i + 2 < n:
            bits[i + 2] = np.uint32((r2 & low) | one)
        if i + 3 < n:
            bits[i + 3] = np.uint32((r3 & low) | one)
    for i in range(n):
        out[i] -= np.float32(1.0)


@njit("void(u8, u8, u8, u8, u8, u8, f4[::1])", cache=True, nogil=True)
def normal32(k0, k1, c0, c1, c2, c3, out):
    n = out.size
    for g in range((n + 3) // 4):
        a0, a1, a2, a3 = add128(c0, c1, c2, c3, np.uint64(g))
        r0, r1, r2, r3 = rounds(a0, a1, a2, a3, k0, k1)
        f0, f1 = bm32(r0, r1)
        f2, f3 = bm32(r2, r3)
        i = 4 * g
        out[i] = f0
        if i + 1 < n:
            out[i + 1] = f1
        if i + 2 < n:
            out[i + 2] = f2
        if i + 3 < n:
            out[i + 3] = f3


@njit("void(u8, u8, u8, u8, u8, u8, f8[::1])", cache=True, nogil=True)
def normal64(k0, k1, c0, c1, c2, c3, out):
    n = out.size
    for g in range((n + 1) // 2):
        a0, a1, a2, a3 = add128(c0, c1, c2, c3, np.uint64(g))
        r0, r1, r2, r3 = rounds(a0, a1, a2, a3, k0, k1)
        d0, d1 = bm64(r0, r1, r2, r3)
        out[2 * g] = d0
        if 2 * g + 1 < n:
            out[2 * g + 1] = d1


@njit(inline="always", cache=True)
def truncated(k0, k1, c0, c1, c2, c3, out, f64):
    # Each group owns per_group * 256 / 4 reserved calls and draws words from them one at a time.
    n = out.size
    per_group = 2 if f64 else 4
    stride = np.uint64(per_group * 64)
    for g in range((n + per_group - 1) // per_group):
        b0, b1, b2, b3 = add128(c0, c1, c2, c3, np.uint64(g) * stride)
        have = 0
        call = np.uint64(0)
        while have < per_group and call < stride:
            a0, a1, a2, a3 = add128(b0, b1, b2, b3, call)
            r0, r1, r2, r3 = rounds(a0, a1, a2, a3, k0, k1)
            call += np.uint64(1)
            if f64:
                d0, d1 = bm64(r0, r1, r2, r3)
                cands = (d0, d1, 9.0, 9.0)
            else:
                e0, e1 = bm32(r0, r1)
                e2, e3 = bm32(r2, r3)
                cands = (np.float64(e0), np.float64(e1), np.float64(e2), np.float64(e3))
            for v in cands:
                if abs(v) < 2.0 and have < per_group:
                    if g * per_group + have < n:
                        out[g * per_group + have] = v
                    have += 1


@njit("void(u8, u8, u8, u8, u8, u8, f4[::1])", cache=True, nogil=True)
def truncated32(k0, k1, c0, c1, c2, c3, out):
    truncated(k0, k1, c0, c1, c2, c3, out, False)


@njit("void(u8, u8, u8, u8, u8, u8, f8[::1])", cache=True, nogil=True)
def truncated64(k0, k1, c0, c1, c2, c3, out):
    truncated(k0, k1, c0, c1, c2, c3, out, True)


def kernels():
    """The entry points this source defines, by name (the compile cache's entry function for it)."""
    return {name: globals()[name] for name in ENTRIES if name in globals()}


# Functions compiled when the source runs (explicit signatures); `ops/philox.py` hands the compile cache this
# source with only the entry it needs left in, so a program that draws float32 normals compiles only those.
ENTRIES = ("words", "uniform32", "normal32", "normal64", "truncated32", "truncated64")
