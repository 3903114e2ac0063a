"""LevelDB-format immutable tables (SSTables), as TensorFlow writes them for checkpoint indexes.

Layout: data blocks, a metaindex block, an index block, then a 48-byte footer. A block is a run of
entries `varint shared | varint non_shared | varint value_len | key suffix | value` whose keys share
prefixes with the previous key, reset at a restart point every `restart_interval` entries; it ends with
the restart offsets (fixed32 each) and their count. Every block is followed by a 5-byte trailer:
compression type (0 = none) and the masked CRC32C of the block plus that type byte. The footer holds
the metaindex and index BlockHandles (varint64 offset, size) padded to 40 bytes, then the magic number.
"""
from __future__ import annotations

import struct

from jitflow.errors import DataLossError

from . import crc
from .wire import decode_varint, encode_varint

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
_HANDLES_SIZE = 40  # two BlockHandles of at most 10 + 10 bytes each
NO_COMPRESSION = 0
DEFAULT_BLOCK_SIZE = 262144  # TensorFlow's table::Options default
DEFAULT_RESTART_INTERVAL = 16


def _corrupt(path: str, what: str) -> Exception:
    return DataLossError(None, None, f"Corrupted or truncated checkpoint index {path!r}: {what}")


class _BlockBuilder:
    """Accumulates sorted entries into one block with prefix compression and restart points."""

    def __init__(self, restart_interval: int) -> None:
        self.restart_interval = restart_interval
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.restart_interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buf += key[shared:]
        self.buf += value
        self.last_key = key
        self.counter += 1

    def estimated_size(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def empty(self) -> bool:
        return not self.buf

    def finish(self) -> bytes:
        return bytes(self.buf) + b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack(
            "<I", len(self.restarts))


def shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key k with start <= k < limit (LevelDB's bytewise FindShortestSeparator)."""
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n:
        b = start[i]
        if b < 0xFF and b + 1 < limit[i]:
            return start[:i] + bytes([b + 1])
    return start


def short_successor(key: bytes) -> bytes:
    """A short key k >= key (LevelDB's bytewise FindShortSuccessor)."""
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def _handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def build_table(items: list[tuple[bytes, bytes]], block_size: int = DEFAULT_BLOCK_SIZE,
                restart_interval: int = DEFAULT_RESTART_INTERVAL) -> bytes:
    """Serializes (key, value) pairs, whose keys must be strictly increasing, into table bytes."""
    out = bytearray()
    index = _BlockBuilder(1)  # LevelDB writes index blocks with a restart at every entry
    block = _BlockBuilder(restart_interval)
    pending: tuple[bytes, bytes] | None = None  # (last key of the flushed block, its handle)

    def flush() -> None:
        nonlocal block, pending
        if block.empty():
            return
        handle = _write_block(out, block.finish())
        pending = (block.last_key, handle)
        block = _BlockBuilder(restart_interval)

    prev: bytes | None = None
    for key, value in items:
        if prev is not None and key <= prev:
            raise ValueError(f"Table keys must be strictly increasing: {key!r} after {prev!r}")
        if pending is not None:
            index.add(shortest_separator(pending[0], key), pending[1])
            pending = None
        block.add(key, value)
        prev = key
        if block.estimated_size() >= block_size:
            flush()
    flush()
    metaindex_handle = _write_block(out, _BlockBuilder(restart_interval).finish())
    if pending is not None:
        index.add(short_successor(pending[0]), pending[1])
    index_handle = _write_block(out, index.finish())
    handles = metaindex_handle + index_handle
    out += handles + b"\0" * (_HANDLES_SIZE - len(handles)) + struct.pack("<Q", MAGIC)
    return bytes(out)


def _write_block(out: bytearray, contents: bytes) -> bytes:
    handle = _handle(len(out), len(contents))
    out += contents
    type_byte = bytes([NO_COMPRESSION])
    out += type_byte + struct.pack("<I", crc.mask(crc.value(type_byte, crc.value(contents))))
    return handle


def _read_handle(buf: bytes, pos: int, path: str) -> tuple[int, int, int]:
    offset, pos = decode_varint(buf, pos, "block handle")
    size, pos = decode_varint(buf, pos, "block handle")
    return offset, size, pos


def _read_block(data: bytes, offset: int, size: int, path: str) -> bytes:
    end = offset + size
    if end + TRAILER_SIZE > len(data):
        raise _corrupt(path, f"block at {offset} (+{size}) runs past the end of the file")
    contents = data[offset:end]
    type_byte = data[end]
    stored = struct.unpack_from("<I", data, end + 1)[0]
    actual = crc.mask(crc.value(bytes([type_byte]), crc.value(contents)))
    if stored != actual:
        raise _corrupt(path, f"block checksum mismatch at offset {offset}")
    if type_byte != NO_COMPRESSION:
        raise _corrupt(path, f"unsupported block compression type {type_byte}")
    return contents


def parse_block(contents: bytes, path: str = "") -> list[tuple[bytes, bytes]]:
    """Decodes every (key, value) entry of one block."""
    if len(contents) < 4:
        raise _corrupt(path, "block too short")
    num_restarts = struct.unpack_from("<I", contents, len(contents) - 4)[0]
    restarts_start = len(contents) - 4 - 4 * num_restarts
    if num_restarts == 0 and len(contents) > 4 or restarts_start < 0:
        raise _corrupt(path, "bad restart array")
    entries: list[tuple[bytes, bytes]] = []
    pos = 0
    key = b""
    view = memoryview(contents)[:restarts_start]
    while pos < restarts_start:
        shared, pos = decode_varint(view, pos, "block entry")
        non_shared, pos = decode_varint(view, pos, "block entry")
        value_len, pos = decode_varint(view, pos, "block entry")
        if shared > len(key) or pos + non_shared + value_len > restarts_start:
            raise _corrupt(path, "bad block entry")
        key = key[:shared] + bytes(view[pos:pos + non_shared])
        pos += non_shared
        entries.append((key, bytes(view[pos:pos + value_len])))
        pos += value_len
    return entries


def parse_table(data: bytes, path: str = "") -> list[tuple[bytes, bytes]]:
    """Decodes and checks a whole table; returns its entries in key order. Any damage → DataLossError."""
    if len(data) < FOOTER_SIZE:
        raise _corrupt(path, f"file is {len(data)} bytes, shorter than the {FOOTER_SIZE}-byte footer")
    footer_at = len(data) - FOOTER_SIZE
    if struct.unpack_from("<Q", data, len(data) - 8)[0] != MAGIC:
        raise _corrupt(path, "bad magic number (not a table file)")
    try:
        _, _, pos = _read_handle(data, footer_at, path)
        index_off, index_size, _ = _read_handle(data, pos, path)
    except DataLossError as e:
        raise _corrupt(path, "bad footer") from e
    if index_off + index_size + TRAILER_SIZE > footer_at:
        raise _corrupt(path, "index block out of range")
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in parse_block(_read_block(data, index_off, index_size, path), path):
        off, size, end = _read_handle(handle, 0, path)
        if end != len(handle) or off + size + TRAILER_SIZE > footer_at:
            raise _corrupt(path, "bad data block handle")
        entries.extend(parse_block(_read_block(data, off, size, path), path))
    for a, b in zip(entries, entries[1:]):
        if b[0] <= a[0]:
            raise _corrupt(path, "keys out of order")
    return entries
