"""The tensor-bundle protos (BundleHeaderProto, BundleEntryProto, TensorShapeProto), encoded by hand.

Field numbers follow TensorFlow's `tensor_bundle.proto`, `tensor_shape.proto` and `versions.proto`;
fields are written in field-number order and proto3 defaults are omitted, as protobuf itself does,
so the bytes match what TensorFlow writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from jitflow.errors import DataLossError

from . import wire

LITTLE_ENDIAN = 0
BIG_ENDIAN = 1


@dataclass
class BundleHeader:
    """BundleHeaderProto: shard count, byte order of the data files, and the format version."""

    num_shards: int = 1
    endianness: int = LITTLE_ENDIAN
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: list[int] = field(default_factory=list)

    def encode(self) -> bytes:
        out = b""
        if self.num_shards:
            out += wire.varint_field(1, self.num_shards)
        if self.endianness:
            out += wire.varint_field(2, self.endianness)
        out += wire.bytes_field(3, _encode_version(self.producer, self.min_consumer, self.bad_consumers))
        return out

    @classmethod
    def decode(cls, buf: bytes) -> BundleHeader:
        h = cls(num_shards=0)
        for num, wt, val in wire.iter_fields(buf, "BundleHeaderProto"):
            if num == 1 and wt == wire.VARINT:
                h.num_shards = wire.to_signed64(int(val))
            elif num == 2 and wt == wire.VARINT:
                h.endianness = int(val)
            elif num == 3 and wt == wire.LENGTH_DELIMITED:
                assert isinstance(val, bytes)
                h.producer, h.min_consumer, h.bad_consumers = _decode_version(val)
        return h


def _encode_version(producer: int, min_consumer: int, bad_consumers: list[int]) -> bytes:
    out = b""
    if producer:
        out += wire.varint_field(1, producer)
    if min_consumer:
        out += wire.varint_field(2, min_consumer)
    if bad_consumers:  # proto3 packs repeated scalars
        out += wire.bytes_field(3, b"".join(wire.encode_varint(b) for b in bad_consumers))
    return out


def _decode_version(buf: bytes) -> tuple[int, int, list[int]]:
    producer = min_consumer = 0
    bad: list[int] = []
    for num, wt, val in wire.iter_fields(buf, "VersionDef"):
        if num == 1 and wt == wire.VARINT:
            producer = wire.to_signed64(int(val))
        elif num == 2 and wt == wire.VARINT:
            min_consumer = wire.to_signed64(int(val))
        elif num == 3 and wt == wire.VARINT:
            bad.append(wire.to_signed64(int(val)))
        elif num == 3 and wt == wire.LENGTH_DELIMITED:
            assert isinstance(val, bytes)
            pos = 0
            while pos < len(val):
                v, pos = wire.decode_varint(val, pos, "VersionDef.bad_consumers")
                bad.append(wire.to_signed64(v))
    return producer, min_consumer, bad


def encode_shape(dims: tuple[int, ...]) -> bytes:
    """TensorShapeProto with one `dim { size }` per dimension (a scalar is the empty message)."""
    out = b""
    for d in dims:
        out += wire.bytes_field(2, wire.varint_field(1, d) if d else b"")
    return out


def decode_shape(buf: bytes) -> tuple[int, ...] | None:
    """The dims of a TensorShapeProto, or None for an unknown rank."""
    dims: list[int] = []
    unknown_rank = False
    for num, wt, val in wire.iter_fields(buf, "TensorShapeProto"):
        if num == 2 and wt == wire.LENGTH_DELIMITED:
            assert isinstance(val, bytes)
            size = 0
            for dnum, dwt, dval in wire.iter_fields(val, "TensorShapeProto.Dim"):
                if dnum == 1 and dwt == wire.VARINT:
                    size = wire.to_signed64(int(dval))
            dims.append(size)
        elif num == 3 and wt == wire.VARINT:
            unknown_rank = bool(val)
    return None if unknown_rank else tuple(dims)


@dataclass
class BundleEntry:
    """BundleEntryProto: where one tensor lives in the data shards, its type, shape and checksum."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0  # masked CRC32C of the tensor bytes
    has_slices: bool = False

    def encode(self) -> bytes:
        out = b""
        if self.dtype:
            out += wire.varint_field(1, self.dtype)
        out += wire.bytes_field(2, encode_shape(self.shape))
        if self.shard_id:
            out += wire.varint_field(3, self.shard_id)
        if self.offset:
            out += wire.varint_field(4, self.offset)
        if self.size:
            out += wire.varint_field(5, self.size)
        if self.crc32c:
            out += wire.fixed32_field(6, self.crc32c)
        return out

    @classmethod
    def decode(cls, buf: bytes, key: str = "") -> BundleEntry:
        e = cls(dtype=0, shape=())
        for num, wt, val in wire.iter_fields(buf, f"BundleEntryProto for {key!r}"):
            if num == 1 and wt == wire.VARINT:
                e.dtype = int(val)
            elif num == 2 and wt == wire.LENGTH_DELIMITED:
                assert isinstance(val, bytes)
                shape = decode_shape(val)
                if shape is None or any(d < 0 for d in shape):
                    raise DataLossError(None, None, f"Checkpoint entry {key!r} has a partially known shape")
                e.shape = shape
            elif num == 3 and wt == wire.VARINT:
                e.shard_id = wire.to_signed64(int(val))
            elif num == 4 and wt == wire.VARINT:
                e.offset = wire.to_signed64(int(val))
            elif num == 5 and wt == wire.VARINT:
                e.size = wire.to_signed64(int(val))
            elif num == 6 and wt == wire.FIXED32:
                e.crc32c = int(val)
            elif num == 7:
                e.has_slices = True
        if e.offset < 0 or e.size < 0 or e.shard_id < 0:
            raise DataLossError(None, None, f"Checkpoint entry {key!r} has a negative offset, size or shard")
        return e
