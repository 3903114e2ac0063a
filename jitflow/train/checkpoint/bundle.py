"""TensorFlow's tensor bundle (checkpoint V2): `P.index` (a table of BundleEntryProtos) + `P.data-*` shards.

Numeric tensors are stored as their raw little-endian bytes, back to back in key order. Strings use
TF's layout: varint64 lengths, the masked CRC32C of the lengths (as uint32s), then the bytes.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import DataLossError, NotFoundError, UnimplementedError

from . import atomic, crc, table
from .protos import BIG_ENDIAN, BundleEntry, BundleHeader
from .wire import decode_varint, encode_varint

HEADER_KEY = b""
CONSUMER_VERSION = 1


def index_path(prefix: str) -> str:
    """`P.index`."""
    return prefix + ".index"


def data_path(prefix: str, shard: int = 0, num_shards: int = 1) -> str:
    """`P.data-00000-of-00001`."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def _as_storable(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "OSU":
        return arr
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    dtypes.as_dtype(arr.dtype)  # raises TypeError for types a checkpoint cannot hold
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # ascontiguousarray would make 0-d 1-d


def _string_payload(arr: np.ndarray) -> tuple[list[bytes], int]:
    items = []
    for x in arr.reshape(-1).tolist():
        if not isinstance(x, (bytes, str)):
            raise TypeError(f"A string tensor can hold only bytes or str, got {type(x).__name__}")
        items.append(x if isinstance(x, bytes) else x.encode("utf-8"))
    lengths = b"".join(encode_varint(len(x)) for x in items)
    c = crc.value(b"".join(struct.pack("<I", len(x)) for x in items))
    length_crc = struct.pack("<I", crc.mask(c))
    c = crc.value(length_crc, c)
    for x in items:
        c = crc.value(x, c)
    return [lengths, length_crc, *items], c


def write_bundle(prefix: str, tensors: Mapping[str, Any] | Iterable[tuple[str, Any]],
                 sync: bool = True) -> None:
    """Writes a single-shard bundle for `prefix`, crash-safely.

    Both files are written under temporary names and fsynced (when `sync`), then the data file and
    finally the index are renamed into place, so an interrupted write never leaves a new index
    pointing at missing data.
    """
    pairs = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
    arrays: dict[bytes, tuple[str, np.ndarray]] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Checkpoint keys must be non-empty strings, got {name!r}")
        key = name.encode("utf-8")
        if key in arrays:
            raise ValueError(f"Duplicate checkpoint key {name!r}")
        arrays[key] = (name, _as_storable(name, value))
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    items: list[tuple[bytes, bytes]] = [(HEADER_KEY, BundleHeader().encode())]
    dpath, ipath = data_path(prefix), index_path(prefix)
    with atomic.open_temp(dpath, sync) as (f, data_tmp):
        offset = 0
        for key in sorted(arrays):
            name, arr = arrays[key]
            if arr.dtype.kind in "OSU":
                chunks, c = _string_payload(arr)
                size = sum(len(x) for x in chunks)
                for chunk in chunks:
                    atomic.write_all(f, memoryview(chunk))
                enum = dtypes.string.as_datatype_enum
            else:
                view = _byte_view(arr)  # no copy: the array's own buffer
                size = view.nbytes
                c = atomic.write_streaming(f, view, offset, sync, crc.value)
                enum = dtypes.as_dtype(arr.dtype).as_datatype_enum
            entry = BundleEntry(dtype=enum, shape=tuple(int(d) for d in arr.shape), offset=offset, size=size,
                                crc32c=crc.mask(c))
            items.append((key, entry.encode()))
            offset += size
    try:
        index_bytes = table.build_table(items)
        with atomic.open_temp(ipath, sync) as (f, index_tmp):
            atomic.write_all(f, memoryview(index_bytes))
        old_data = atomic.replace_keeping_old(data_tmp, dpath)
    except BaseException:
        if os.path.exists(data_tmp):
            os.remove(data_tmp)
        raise
    try:
        os.replace(index_tmp, ipath)  # the commit point: a complete index appears last
    except BaseException:
        os.remove(index_tmp)
        raise
    if sync:
        atomic.fsync_dir(directory)
    if old_data is not None:
        atomic.discard(old_data)


def _dtype_of(entry: BundleEntry, key: str) -> dtypes.DType:
    try:
        return dtypes.as_dtype(entry.dtype)
    except TypeError:
        raise UnimplementedError(None, None, f"Checkpoint tensor {key!r} has unsupported dtype enum "
                                 f"{entry.dtype}") from None


class BundleReader:
    """Reads one checkpoint: the index is parsed and checked up front, tensors are read on demand."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        ipath = index_path(prefix)
        try:
            with open(ipath, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFoundError(None, None, f"Unsuccessful TensorSliceReader constructor: Failed to find any "
                                f"matching files for {prefix}") from None
        except IsADirectoryError:
            raise NotFoundError(None, None, f"{ipath} is a directory, not a checkpoint index") from None
        entries = table.parse_table(raw, ipath)
        if not entries or entries[0][0] != HEADER_KEY:
            raise DataLossError(None, None, f"Checkpoint index {ipath!r} has no bundle header")
        self.header = BundleHeader.decode(entries[0][1])
        self._check_header(ipath)
        self.entries: dict[str, BundleEntry] = {}
        for key, value in entries[1:]:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise DataLossError(None, None, f"Checkpoint index {ipath!r} has a non-UTF-8 key") from None
            entry = BundleEntry.decode(value, name)
            if entry.shard_id >= self.header.num_shards:
                raise DataLossError(None, None, f"Checkpoint entry {name!r} names shard {entry.shard_id} of "
                                    f"{self.header.num_shards}")
            self.entries[name] = entry

    def _check_header(self, ipath: str) -> None:
        h = self.header
        if h.endianness == BIG_ENDIAN:
            raise UnimplementedError(None, None, f"Checkpoint {self.prefix!r} is big-endian; not supported")
        if h.num_shards < 1:
            raise DataLossError(None, None, f"Checkpoint index {ipath!r} declares {h.num_shards} shards")
        if h.min_consumer > CONSUMER_VERSION or CONSUMER_VERSION in h.bad_consumers:
            raise UnimplementedError(None, None, f"Checkpoint {self.prefix!r} needs a newer reader "
                                     f"(min_consumer {h.min_consumer})")

    def entry(self, name: str) -> BundleEntry:
        """The index entry of `name`; NotFoundError if absent."""
        try:
            return self.entries[name]
        except KeyError:
            raise NotFoundError(None, None, f"Key {name} not found in checkpoint") from None

    def dtype(self, name: str) -> dtypes.DType:
        return _dtype_of(self.entry(name), name)

    def _data_path(self, entry: BundleEntry) -> str:
        return data_path(self.prefix, entry.shard_id, self.header.num_shards)

    def read(self, name: str) -> np.ndarray:
        """The tensor stored under `name`, checked against its size and CRC."""
        return self.read_many([name])[name]

    def read_many(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Reads several tensors, opening each data shard once and reading in file order."""
        wanted = sorted(((self.entry(n), n) for n in set(names)), key=lambda p: (p[0].shard_id, p[0].offset))
        out: dict[str, np.ndarray] = {}
        handles: dict[int, Any] = {}
        try:
            for entry, name in wanted:
                if entry.shard_id not in handles:
                    path = self._data_path(entry)
                    try:
                        handles[entry.shard_id] = open(path, "rb", buffering=0)
                    except FileNotFoundError:
                        raise DataLossError(None, None, f"Checkpoint data file {path!r} is missing") from None
                out[name] = self._read_entry(handles[entry.shard_id], entry, name)
        finally:
            for h in handles.values():
                h.close()
        return out

    def _read_entry(self, f: Any, entry: BundleEntry, name: str) -> np.ndarray:
        dtype = _dtype_of(entry, name)
        if entry.has_slices:
            raise UnimplementedError(None, None, f"Checkpoint tensor {name!r} is partitioned (slices); "
                                     "not supported")
        if entry.offset + entry.size > os.fstat(f.fileno()).st_size:  # check before allocating
            raise DataLossError(None, None, f"Checkpoint data file {self._data_path(entry)!r} is truncated: "
                                f"tensor {name!r} needs bytes {entry.offset}..{entry.offset + entry.size}")
        if dtype is dtypes.string:
            raw = np.empty(entry.size, np.uint8)
            _read_exact(f, entry.offset, raw.data, self._data_path(entry), name)
            return _decode_strings(bytes(raw), entry, name)
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.np.itemsize != entry.size:
            raise DataLossError(None, None, f"Checkpoint tensor {name!r}: shape {list(entry.shape)} of "
                                f"{dtype.name} needs {count * dtype.np.itemsize} bytes, "
                                f"index says {entry.size}")
        arr = np.empty(entry.shape, dtype.np)
        view = _byte_view(arr)
        if crc.mask(_read_exact(f, entry.offset, view, self._data_path(entry), name)) != entry.crc32c:
            raise DataLossError(None, None, f"Checksum does not match for tensor {name!r} in "
                                f"{self._data_path(entry)!r}: the checkpoint is corrupted")
        return arr


def _byte_view(arr: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, without copying."""
    return arr.reshape(-1).view(np.uint8).data


_PIECE = 2 << 20  # read and checksum in cache-sized pieces


def _read_exact(f: Any, offset: int, view: memoryview, path: str, name: str) -> int:
    """Fills `view` from `offset`; returns the CRC32C of the bytes. Short file → DataLossError."""
    f.seek(offset)
    done = 0
    c = 0
    while done < view.nbytes:
        piece = view[done:done + _PIECE]
        n = f.readinto(piece)
        if not n:
            raise DataLossError(None, None, f"Checkpoint data file {path!r} is truncated: tensor {name!r} "
                                f"needs bytes {offset}..{offset + view.nbytes}")
        c = crc.value(piece[:n], c)
        done += n
    return c


def _decode_strings(raw: bytes, entry: BundleEntry, name: str) -> np.ndarray:
    count = int(np.prod(entry.shape, dtype=np.int64))
    pos = 0
    lengths = []
    for _ in range(count):
        n, pos = decode_varint(raw, pos, f"string length in {name!r}")
        lengths.append(n)
    c = crc.value(b"".join(struct.pack("<I", n) for n in lengths))
    if pos + 4 > len(raw) or struct.unpack_from("<I", raw, pos)[0] != crc.mask(c):
        raise DataLossError(None, None, f"Checksum of string lengths does not match for tensor {name!r}")
    c = crc.value(raw[pos:pos + 4], c)
    pos += 4
    if pos + sum(lengths) != len(raw):
        raise DataLossError(None, None, f"String tensor {name!r} has the wrong size")
    items = []
    for n in lengths:
        items.append(raw[pos:pos + n])
        pos += n
    if crc.mask(crc.value(raw[len(raw) - sum(lengths):], c)) != entry.crc32c:
        raise DataLossError(None, None, f"Checksum does not match for tensor {name!r}")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(entry.shape)
