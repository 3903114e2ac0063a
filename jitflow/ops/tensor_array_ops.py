"""The run-time values behind `tf.TensorArray` and its ops' kernels.

A TensorArray's flow tensor carries a `TAValue` (a list of element arrays, created fresh each run by
`TensorArrayV3` and written in place, like TF's resource). Its gradient travels as a `TAGrad`: the
gradient of each element, by index, summed where several reads or gathers touched one element.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.errors import InvalidArgumentError


class TAValue:
    """The elements of one TensorArray in one run."""

    __slots__ = ("items", "np_dtype", "dynamic", "clear_after_read", "element_shape", "name")

    def __init__(self, size: int, np_dtype: np.dtype, dynamic: bool, clear_after_read: bool,
                 element_shape: tuple | None, name: str) -> None:
        self.items: list[Any] = [None] * size
        self.np_dtype = np_dtype
        self.dynamic = dynamic
        self.clear_after_read = clear_after_read
        self.element_shape = element_shape  # None: unknown (fixed by the first write)
        self.name = name

    def zero_grad(self) -> TAGrad:
        return TAGrad()

    def _err(self, msg: str) -> InvalidArgumentError:
        return InvalidArgumentError(None, None, f"TensorArray {self.name}: {msg}")

    def write(self, index: int, value: Any, check: bool = True) -> None:
        v = np.asarray(value, dtype=self.np_dtype)
        n = len(self.items)
        if index < 0:
            raise self._err(f"Tried to write to index {index} but array size is: {n}")
        if index >= n:
            if not self.dynamic:
                raise self._err(f"Tried to write to index {index} but array is not resizeable and size is: {n}")
            self.items.extend([None] * (index + 1 - n))
        if self.items[index] is not None:
            raise self._err(f"Could not write to TensorArray index {index} because it has already been written "
                            "to.")
        if check and self.element_shape is not None and not _compatible(v.shape, self.element_shape):
            raise self._err(f"Could not write to TensorArray index {index} because the value shape is "
                            f"{list(v.shape)} which is incompatible with the TensorArray's inferred element "
                            f"shape: {list(self.element_shape)} (consider setting infer_shape=False).")
        self.element_shape = v.shape
        self.items[index] = v

    def read(self, index: int) -> np.ndarray:
        n = len(self.items)
        if index < 0 or index >= n:
            raise self._err(f"Tried to read from index {index} but array size is: {n}")
        v = self.items[index]
        if v is _CLEARED:
            raise self._err(f"Could not read index {index} twice because it was cleared after a previous read "
                            "(perhaps try setting clear_after_read = false?)")
        if v is None:
            raise self._err(f"Could not read from TensorArray index {index} because it has not yet been written "
                            "to.")
        if self.clear_after_read:
            self.items[index] = _CLEARED
        return v

    def gather(self, indices: Any) -> np.ndarray:
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not idx:
            shape = self.element_shape if self.element_shape is not None else ()
            return np.zeros((0, *shape), self.np_dtype)
        return np.stack([self.read(i) for i in idx])

    def size(self) -> int:
        return len(self.items)


class _Cleared:
    """Marks an element read once with clear_after_read."""


_CLEARED: Any = _Cleared()


def _compatible(shape: tuple, known: tuple) -> bool:
    return len(shape) == len(known) and all(k is None or k == s for s, k in zip(shape, known))


class TAGrad:
    """Gradients of a TensorArray's elements, by index."""

    __slots__ = ("parts",)

    def __init__(self, parts: dict[int, np.ndarray] | None = None) -> None:
        self.parts = parts if parts is not None else {}

    def __add__(self, other: Any) -> TAGrad:
        o = as_grad(other)
        res = dict(self.parts)
        for k, v in o.parts.items():
            res[k] = res[k] + v if k in res else v
        return TAGrad(res)

    __radd__ = __add__

    def zero_grad(self) -> TAGrad:
        return TAGrad()

    def get(self, index: int, like: np.ndarray) -> np.ndarray:
        g = self.parts.get(index)
        return np.zeros_like(like) if g is None else g


def as_grad(x: Any) -> TAGrad:
    """A TAGrad (the zero gradient for anything else, such as a ZerosLike of a flow)."""
    return x if isinstance(x, TAGrad) else TAGrad()
