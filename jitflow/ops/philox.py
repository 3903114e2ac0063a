"""TensorFlow's random number algorithms: Philox4x32-10 and the distributions built on it.

With the same seeds, jitflow's random ops produce the numbers TensorFlow's CPU kernels produce:
the counter-based Philox generator keyed by (seed, seed2), output groups of one generator call each
(or 256 reserved calls per group for truncated normals), Box-Muller for normals, and each run of an op
reserving `256 × size` counter values so that the next run continues where TF's would.
"""
from __future__ import annotations

import ast
import os
import threading
from pathlib import Path
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

    def give_back(self, start: int, n: int) -> None:
        """Undoes `reserve(n)` that returned `start`, unless another reservation came after it."""
        with self._lock:
            if self.counter == (start + n) & ((1 << 128) - 1):
                self.counter = start


def _split(counter: int) -> tuple[int, int, int, int]:
    return counter & _U32, (counter >> 32) & _U32, (counter >> 64) & _U32, (counter >> 96) & _U32


def _key_counter(key: tuple[int, int], counter: int) -> tuple[int, ...]:
    """The kernels' first six arguments: the key's two words, then the 128-bit counter's four (32-bit words
    as Python ints: the kernels' signatures take them as uint64, and making NumPy scalars cost 2 us a call)."""
    return (key[0], key[1], *_split(counter))


def philox(key: tuple[int, int], counter: int, count: int, stride: int = 1) -> np.ndarray:
    """`count` Philox4x32-10 outputs (shape [count, 4], uint32) for counters counter + i*stride."""
    out = np.empty(count * 4, dtype=np.uint32)
    _kernel("words")(*_key_counter(key, counter), count, np.uint64(stride), out)
    return out.reshape(count, 4)


def _uint64_to_double(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """[0, 1) doubles from 20 + 32 mantissa bits, as TF's Uint64ToDouble."""
    man = ((hi.astype(np.uint64) & np.uint64(0xFFFFF)) << _SHIFT) | lo.astype(np.uint64)
    return (man | np.uint64(1023 << 52)).view(np.float64) - 1.0


_KERNELS: dict[str, Any] = {}


def _kernel(name: str) -> Any:
    """One Numba kernel of `philox_kernels.py`, compiled or loaded through jitflow's compile cache on first
    use (importing jitflow stays free of Numba's start-up cost). Each entry is its own cache entry: the
    source goes in with the other entries cut out, so a cold process compiles only what it draws (the
    five together took ~2.7 s)."""
    if name not in _KERNELS:
        from jitflow.codegen.cache import get_kernel

        entry, _ = get_kernel(_entry_source(name), "kernels", {"kind": "philox", "entry": name},
                              {"ops": ["Philox4x32-10"]})
        _KERNELS.update(entry())
    return _KERNELS[name]


def _entry_source(name: str) -> str:
    """philox_kernels.py without the decorated entry functions (ENTRIES) other than `name`."""
    path = Path(__file__).parent / "philox_kernels.py"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    body = ast.parse(text).body
    entries = next(ast.literal_eval(n.value) for n in body
                   if isinstance(n, ast.Assign) and [getattr(t, "id", "") for t in n.targets] == ["ENTRIES"])
    cut: list[tuple[int, int]] = []
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name in entries and node.name != name:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            cut.append((start - 1, node.end_lineno or node.lineno))
    for a, b in reversed(cut):
        del lines[a:b]
    return "".join(lines)


def normal(state: PhiloxState, size: int, dtype: np.dtype) -> np.ndarray:
    """Standard normals as TF's RandomStandardNormal computes them."""
    start = state.reserve(size * 256)
    f64 = dtype == np.float64
    out = np.empty(size, dtype=np.float64 if f64 else np.float32)
    _kernel("normal64" if f64 else "normal32")(*_key_counter(state.key, start), out)
    return out if out.dtype == dtype else out.astype(dtype)


def uniform(state: PhiloxState, size: int, dtype: np.dtype) -> np.ndarray:
    """[0, 1) uniforms as TF's RandomUniform computes them."""
    start = state.reserve(size * 256)
    if dtype == np.float64:
        s = philox(state.key, start, (size + 1) // 2)
        return np.stack([_uint64_to_double(s[:, 0], s[:, 1]), _uint64_to_double(s[:, 2], s[:, 3])],
                        axis=1).reshape(-1)[:size]
    out = np.empty(size, np.float32)
    _kernel("uniform32")(*_key_counter(state.key, start), out)
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

    Each group of outputs has 256 samples per output reserved and draws Box-Muller pairs from them, one
    32-bit word at a time, keeping values with |x| < 2 until the group is full.
    """
    start = state.reserve(size * 256)
    f64 = dtype == np.float64
    out = np.empty(size, dtype=np.float64 if f64 else np.float32)
    _kernel("truncated64" if f64 else "truncated32")(*_key_counter(state.key, start), out)
    return out if out.dtype == dtype else out.astype(dtype)
