"""CRC32C with LevelDB/TensorFlow masking (so that a CRC stored inside CRC'd data stays useful)."""
from __future__ import annotations

from typing import Any

import crc32c as _crc32c

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def value(data: Any, crc: int = 0) -> int:
    """CRC32C of a bytes-like object (any buffer, no copy), continuing from `crc`."""
    return int(_crc32c.crc32c(data, crc))


def mask(crc: int) -> int:
    """Rotates right by 15 bits and adds a constant, as TF's crc32c::Mask does."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask(masked: int) -> int:
    """Inverse of `mask`."""
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32
