"""TFRecord files: TF's record framing, written and read byte-compatibly.

Each record is `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`
(little-endian), the whole file optionally GZIP- or ZLIB-compressed. A truncated or corrupted file is
reported as DataLossError naming the file and the record's offset.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import crc32c as _crc32c

from jitflow import errors
from jitflow.train.checkpoint import crc

_CHUNK = 1 << 22
_HEAD = struct.Struct("<QI")
_U32 = struct.Struct("<I")


class TFRecordCompressionType:
    """`tf.python_io.TFRecordCompressionType`."""

    NONE = 0
    ZLIB = 1
    GZIP = 2


class TFRecordOptions:
    """`tf.io.TFRecordOptions`: the compression of a TFRecord file."""

    compression_type_map = {TFRecordCompressionType.ZLIB: "ZLIB", TFRecordCompressionType.GZIP: "GZIP",
                            TFRecordCompressionType.NONE: ""}

    def __init__(self, compression_type: Any = None, **kwargs: Any) -> None:
        self.compression_type = compression_type

    @classmethod
    def get_compression_type_string(cls, options: Any) -> str:
        """'', 'ZLIB' or 'GZIP' for options given as TFRecordOptions, a string, an enum value or None."""
        if options is None:
            return ""
        if isinstance(options, TFRecordOptions):
            options = options.compression_type
        if options is None:
            return ""
        if isinstance(options, int):
            return cls.compression_type_map[options]
        if isinstance(options, bytes):
            options = options.decode()
        name = str(options).upper()
        if name not in ("", "ZLIB", "GZIP", "NONE"):
            raise ValueError(f"Unsupported compression type {options!r}: use '', 'ZLIB' or 'GZIP'")
        return "" if name == "NONE" else name


def frame(data: bytes) -> bytes:
    """One record with its length, CRCs and data."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", crc.mask(crc.value(header))) + data + \
        struct.pack("<I", crc.mask(crc.value(data)))


class _ZlibWriter:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._z = zlib.compressobj()

    def write(self, data: bytes) -> None:
        self._f.write(self._z.compress(data))

    def flush(self) -> None:
        self._f.write(self._z.flush(zlib.Z_SYNC_FLUSH))
        self._f.flush()

    def close(self) -> None:
        self._f.write(self._z.flush())
        self._f.close()


class TFRecordWriter:
    """`tf.io.TFRecordWriter`: writes records to a (compressed) TFRecord file."""

    def __init__(self, path: Any, options: Any = None) -> None:
        self._path = os.fspath(path)
        kind = TFRecordOptions.get_compression_type_string(options)
        try:
            raw = open(self._path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise errors.NotFoundError(None, None, f"{self._path}; {e.strerror}") from None
        self._f: Any = gzip.GzipFile(fileobj=raw, mode="wb") if kind == "GZIP" else \
            _ZlibWriter(raw) if kind == "ZLIB" else raw
        self._raw = raw
        self._closed = False

    def write(self, record: Any) -> None:
        """Appends one record (bytes or str)."""
        if self._closed:
            raise errors.FailedPreconditionError(None, None, f"{self._path}: writer is closed")
        self._f.write(frame(record.encode() if isinstance(record, str) else bytes(record)))

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._f.close()
            if self._raw is not self._f:
                self._raw.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _ZlibReader:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._z = zlib.decompressobj()

    def read(self, n: int) -> bytes:
        while True:
            chunk = self._f.read(n)
            if not chunk:
                return self._z.flush()
            out = self._z.decompress(chunk)
            if out:
                return out

    def close(self) -> None:
        self._f.close()


def open_compressed(path: str, kind: str) -> Any:
    """A readable byte stream of the file's (decompressed) contents."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the reader
    except FileNotFoundError:
        raise errors.NotFoundError(None, None, f"{path}; No such file or directory") from None
    except OSError as e:
        raise errors.PermissionDeniedError(None, None, f"{path}; {e.strerror}") from None
    if kind == "GZIP":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if kind == "ZLIB":
        return _ZlibReader(f)
    return f


def _read(f: Any, path: str) -> bytes:
    try:
        return f.read(_CHUNK)
    except (OSError, EOFError, zlib.error) as e:
        raise errors.DataLossError(None, None, f"{path}: corrupted compressed data: {e}") from None


def read_records(path: str, compression: str = "", check_crc: bool = True) -> Iterator[bytes]:
    """The records of a TFRecord file, in order."""
    f = open_compressed(path, compression)
    try:
        buf, pos, base = b"", 0, 0  # base: the file offset of buf[0]
        while True:
            records, pos = _scan(buf, pos, base, path, check_crc)
            yield from records
            buf, base, pos = buf[pos:], base + pos, 0
            chunk = _read(f, path)
            if not chunk:
                if buf:
                    raise _truncated(path, base)
                return
            buf += chunk
    finally:
        f.close()


def _scan(buf: bytes, pos: int, base: int, path: str, check_crc: bool) -> tuple[list[bytes], int]:
    """The complete records in `buf` from `pos` on, and the offset where the first incomplete one starts.

    The CRC masking of `crc.mask` is written out inline: this loop runs once per record.
    """
    out = []
    n = len(buf)
    unpack_from = _HEAD.unpack_from
    crc32c = _crc32c.crc32c
    while pos + 12 <= n:
        length, lcrc = unpack_from(buf, pos)
        if check_crc:
            c = crc32c(buf[pos:pos + 8])
            if ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF != lcrc:
                raise _corrupt(path, base + pos, "length")
        end = pos + 16 + length
        if end > n:
            break
        data = buf[pos + 12:end - 4]
        if check_crc:
            c = crc32c(data)
            if ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF != _U32.unpack_from(buf, end - 4)[0]:
                raise _corrupt(path, base + pos, "data")
        out.append(data)
        pos = end
    return out, pos


def _corrupt(path: str, offset: int, what: str) -> errors.DataLossError:
    return errors.DataLossError(None, None, f"corrupted record at {offset} in {path} ({what} CRC mismatch)")


def _truncated(path: str, offset: int) -> errors.DataLossError:
    return errors.DataLossError(None, None, f"truncated record at {offset} in {path}")


def tf_record_iterator(path: Any, options: Any = None) -> Iterator[bytes]:
    """`tf.python_io.tf_record_iterator`: the records of a file, as bytes."""
    return read_records(os.fspath(path), TFRecordOptions.get_compression_type_string(options))
