"""TensorFlow's random number algorithms: Philox4x32-10 and the distributions built on it.

With the same seeds, jitflow's random ops produce the numbers TensorFlow's CPU kernels produce:
the counter-based Philox generator keyed by (seed, seed2), output groups of one generator call each
(or 256 reserved calls per group for truncated normals), Box-Muller for normals, and each run of an op
reserving `256 × size` counter values so that the next run continues where TF's would.
"""
from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_MASK = np.uint64(0xFFFFFFFF)
_U32 = 0xFFFFFFFF
_SHIFT = np.uint64(32)


class PhiloxState:
    """A Philox key and 128-bit counter, as TF's PhiloxRandom(seed_lo, seed_hi) starts them."""

    __slots__ = ("key", "counter", "_lock")

    def __init__(self, seed: int, seed2: int) -> None:
        if seed == 0 and seed2 == 0:  # TF: unseeded ops draw fresh random seeds
            seed, seed2 = (int.from_bytes(os.urandom(8), "little") for _ in range(2))
        self.key = (seed & _U32, (seed >> 32) & _U32)
        self.counter = ((seed2 & _U32) << 64) | (((seed2 >> 32) & _U32) << 96)
        self._lock = threading.Lock()

    def reserve(self, n: int) -> int:
        """The counter to use now; advances the state by `n` (TF's ReserveSamples128)."""
        with self._lock:
            c = self.counter
            self.counter = (c + n) & ((1 << 128) - 1)
        return c


def philox(key: tuple[int, int], counter: int, count: int, stride: int = 1) -> np.ndarray:
    """`count` Philox4x32-10 outputs (shape [count, 4], uint32) for counters counter + i*stride."""
    g = np.arange(count, dtype=np.uint64) * np.uint64(stride)
    c0 = np.uint64(counter & _U32) + g
    carry = c0 >> _SHIFT
    c0 &= _MASK
    c1 = np.uint64((counter >> 32) & _U32) + carry
    carry = c1 >> _SHIFT
    c1 &= _MASK
    c2 = np.uint64((counter >> 64) & _U32) + carry
    carry = c2 >> _SHIFT
    c2 &= _MASK
    c3 = (np.uint64((counter >> 96) & _U32) + carry) & _MASK
    k0, k1 = key
    for r in range(10):
        if r:
            k0 = (k0 + _W0) & _U32
            k1 = (k1 + _W1) & _U32
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ np.uint64(k0), p1 & _MASK,
                          (p0 >> _SHIFT) ^ c3 ^ np.uint64(k1), p0 & _MASK)
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def _uint32_to_float(x: np.ndarray) -> np.ndarray:
    """[0, 1) floats from the low 23 bits, as TF's Uint32ToFloat."""
    bits = (x & np.uint32(0x7FFFFF)) | np.uint32(127 << 23)
    return bits.view(np.float32) - np.float32(1.0)


def _uint64_to_double(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """[0, 1) doubles from 20 + 32 mantissa bits, as TF's Uint64ToDouble."""
    man = ((hi.astype(np.uint64) & np.uint64(0xFFFFF)) << _SHIFT) | lo.astype(np.uint64)
    return (man | np.uint64(1023 << 52)).view(np.float64) - 1.0


_KERNELS: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    """Box-Muller loops compiled with Numba: its float32 math.log/sin/cos are the C library's logf/sinf/
    cosf, which TF's kernels call, so the results match TF's bit for bit (NumPy's SIMD versions differ
    in the last bit for about 1% of inputs)."""
    if not _KERNELS:
        from numba import njit

        @njit(cache=True, nogil=True)
        def bm32(x0: np.ndarray, x1: np.ndarray, out0: np.ndarray, out1: np.ndarray) -> None:  # pragma: no cover
            two_pi = 2.0 * math.pi
            for i in range(x0.size):
                u1 = np.float32(np.uint32(x0[i] & np.uint32(0x7FFFFF) | np.uint32(0x3F800000)).view(np.float32)
                                - np.float32(1.0))
                if u1 < np.float32(1e-7):
                    u1 = np.float32(1e-7)
                u = np.float32(np.uint32(x1[i] & np.uint32(0x7FFFFF) | np.uint32(0x3F800000)).view(np.float32)
                               - np.float32(1.0))
                v1 = np.float32(two_pi * np.float64(u))
                u2 = np.float32(math.sqrt(np.float32(-2.0) * np.float32(math.log(u1))))
                out0[i] = np.float32(math.sin(v1)) * u2
                out1[i] = np.float32(math.cos(v1)) * u2

        @njit(cache=True, nogil=True)
        def bm64(u1: np.ndarray, u2: np.ndarray, out0: np.ndarray, out1: np.ndarray) -> None:  # pragma: no cover
            for i in range(u1.size):
                a = u1[i] if u1[i] >= 1e-7 else 1e-7
                v1 = 2.0 * math.pi * u2[i]
                r = math.sqrt(-2.0 * math.log(a))
                out0[i] = math.sin(v1) * r
                out1[i] = math.cos(v1) * r

        _KERNELS["bm32"], _KERNELS["bm64"] = bm32, bm64
    return _KERNELS


def _box_muller_f32(x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.ascontiguousarray(x0, dtype=np.uint32)
    b = np.ascontiguousarray(x1, dtype=np.uint32)
    out0 = np.empty(a.shape, np.float32)
    out1 = np.empty(a.shape, np.float32)
    _kernels()["bm32"](a.reshape(-1), b.reshape(-1), out0.reshape(-1), out1.reshape(-1))
    return out0, out1


def _box_muller_f64(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray, x3: np.ndarray) -> tuple[np.ndarray,
                                                                                          np.ndarray]:
    u1 = np.ascontiguousarray(_uint64_to_double(x0, x1))
    u2 = np.ascontiguousarray(_uint64_to_double(x2, x3))
    out0 = np.empty(u1.shape, np.float64)
    out1 = np.empty(u1.shape, np.float64)
    _kernels()["bm64"](u1.reshape(-1), u2.reshape(-1), out0.reshape(-1), out1.reshape(-1))
    return out0, out1


def normal(state: PhiloxState, size: int, dtype: np.dtype) -> np.ndarray:
    """Standard normals as TF's RandomStandardNormal computes them."""
    start = state.reserve(size * 256)
    if dtype == np.float64:
        s = philox(state.key, start, (size + 1) // 2)
        a, b = _box_muller_f64(s[:, 0], s[:, 1], s[:, 2], s[:, 3])
        return np.stack([a, b], axis=1).reshape(-1)[:size]
    s = philox(state.key, start, (size + 3) // 4)
    a0, a1 = _box_muller_f32(s[:, 0], s[:, 1])
    b0, b1 = _box_muller_f32(s[:, 2], s[:, 3])
    out = np.stack([a0, a1, b0, b1], axis=1).reshape(-1)[:size]
    return out if dtype == np.float32 else out.astype(dtype)


def uniform(state: PhiloxState, size: int, dtype: np.dtype) -> np.ndarray:
    """[0, 1) uniforms as TF's RandomUniform computes them."""
    start = state.reserve(size * 256)
    if dtype == np.float64:
        s = philox(state.key, start, (size + 1) // 2)
        return np.stack([_uint64_to_double(s[:, 0], s[:, 1]), _uint64_to_double(s[:, 2], s[:, 3])],
                        axis=1).reshape(-1)[:size]
    s = philox(state.key, start, (size + 3) // 4)
    out = _uint32_to_float(s.reshape(-1))[:size]
    return out if dtype == np.float32 else out.astype(dtype)


def uniform_int(state: PhiloxState, size: int, lo: int, hi: int, dtype: np.dtype) -> np.ndarray:
    """Integers in [lo, hi) as TF's RandomUniformInt computes them (sample mod range)."""
    start = state.reserve(size * 256)
    rng = hi - lo
    if np.dtype(dtype).itemsize == 8:
        s = philox(state.key, start, (size + 1) // 2).astype(np.uint64)
        # The first word is the low half (TF: sample[2i] | sample[2i+1] << 32).
        x = np.stack([s[:, 0] | (s[:, 1] << _SHIFT), s[:, 2] | (s[:, 3] << _SHIFT)], axis=1).reshape(-1)[:size]
        return (np.int64(lo) + (x % np.uint64(rng)).astype(np.int64)).astype(dtype)
    s = philox(state.key, start, (size + 3) // 4).reshape(-1)[:size]
    return (lo + (s % np.uint32(rng)).astype(np.int64)).astype(dtype)


def truncated_normal(state: PhiloxState, size: int, dtype: np.dtype) -> np.ndarray:
    """Normals within two standard deviations, as TF's TruncatedNormal computes them.

    Each group of outputs has 256 generator calls reserved and draws Box-Muller pairs from them, one
    32-bit word at a time, keeping values with |x| < 2 until the group is full.
    """
    start = state.reserve(size * 256)
    f64 = dtype == np.float64
    per_group = 2 if f64 else 4
    groups = (size + per_group - 1) // per_group
    out = np.empty((groups, per_group), dtype=np.float64 if f64 else np.float32)
    # Four calls give 8 (float) or 4 (double) candidates: enough for almost every group.
    calls = 4
    # TF reserves 256 samples per output, i.e. per_group * 256 / 4 generator calls per group.
    stride = per_group * 64
    words = np.concatenate([philox(state.key, start + c, groups, stride=stride) for c in range(calls)], axis=1)
    cand = _candidates(words, f64)
    ok = np.abs(cand) < 2.0
    rank = np.cumsum(ok, axis=1) - 1
    take = ok & (rank < per_group)
    rows, cols = np.nonzero(take)
    out[rows, rank[rows, cols]] = cand[rows, cols]
    for g in np.nonzero(ok.sum(axis=1) < per_group)[0]:  # rare: keep drawing from this group's calls
        have = int(ok[g].sum())
        out[g, :have] = cand[g][ok[g]]
        c = calls
        while have < per_group:
            if c >= stride:
                raise RuntimeError("truncated_normal: a group found no accepted samples in its reserved calls")
            more = _candidates(philox(state.key, start + int(g) * stride + c, 1), f64)[0]
            for v in more:
                if abs(v) < 2.0 and have < per_group:
                    out[g, have] = v
                    have += 1
            c += 1
    result = out.reshape(-1)[:size]
    return result if result.dtype == dtype else result.astype(dtype)


def _candidates(words: np.ndarray, f64: bool) -> np.ndarray:
    """Box-Muller values of each row of 32-bit words, in the order TF's adapter draws them."""
    if f64:
        w = words.reshape(words.shape[0], -1, 4)
        a, b = _box_muller_f64(w[..., 0], w[..., 1], w[..., 2], w[..., 3])
    else:
        w = words.reshape(words.shape[0], -1, 2)
        a, b = _box_muller_f32(w[..., 0], w[..., 1])
    return np.stack([a, b], axis=-1).reshape(words.shape[0], -1)
