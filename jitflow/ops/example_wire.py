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
    from jitflow.ops.example_wire_kernels import parse

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
