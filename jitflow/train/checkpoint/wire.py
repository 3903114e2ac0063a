"""Protocol-buffer wire encoding: just enough (varints, fixed32/64, length-delimited) for checkpoints."""
from __future__ import annotations

import struct
from collections.abc import Iterator

from jitflow.errors import DataLossError

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

_U64 = (1 << 64) - 1


def encode_varint(value: int) -> bytes:
    """Encodes an integer as a base-128 varint; negatives use 64-bit two's complement, as protobuf does."""
    if value < 0:
        value &= _U64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int, what: str = "varint") -> tuple[int, int]:
    """Decodes a varint at `pos`; returns (value, new_pos). Truncated or over-long input → DataLossError."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise DataLossError(None, None, f"Truncated {what} in checkpoint data")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DataLossError(None, None, f"Malformed {what} in checkpoint data (more than 10 bytes)")


def to_signed64(value: int) -> int:
    """Reinterprets an unsigned 64-bit varint value as a signed int64."""
    value &= _U64
    return value - (1 << 64) if value >= 1 << 63 else value


def tag(field: int, wire_type: int) -> bytes:
    """The key that precedes a field on the wire."""
    return encode_varint((field << 3) | wire_type)


def varint_field(field: int, value: int) -> bytes:
    """A varint field; callers skip proto3 defaults themselves."""
    return tag(field, VARINT) + encode_varint(value)


def bytes_field(field: int, payload: bytes) -> bytes:
    """A length-delimited field (sub-message, string or bytes)."""
    return tag(field, LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def fixed32_field(field: int, value: int) -> bytes:
    """A fixed32 field (little-endian)."""
    return tag(field, FIXED32) + struct.pack("<I", value & 0xFFFFFFFF)


def iter_fields(buf: bytes | memoryview, what: str = "message") -> Iterator[tuple[int, int, int | bytes]]:
    """Yields (field_number, wire_type, value): ints for numeric wire types, bytes for length-delimited."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = decode_varint(buf, pos, what)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise DataLossError(None, None, f"Malformed {what}: field number 0")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = decode_varint(buf, pos, what)
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise DataLossError(None, None, f"Truncated {what}")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise DataLossError(None, None, f"Truncated {what}")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        elif wire_type == LENGTH_DELIMITED:
            n, pos = decode_varint(buf, pos, what)
            if pos + n > end:
                raise DataLossError(None, None, f"Truncated {what}: field {field} needs {n} bytes")
            value = bytes(buf[pos:pos + n])
            pos += n
        else:
            raise DataLossError(None, None, f"Malformed {what}: unsupported wire type {wire_type}")
        yield field, wire_type, value
