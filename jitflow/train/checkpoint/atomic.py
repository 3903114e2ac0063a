"""Crash-safe file replacement: write a temporary file, flush and fsync it, rename it over the target."""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

_WRITEBACK_CHUNK = 32 << 20
_CRC_PIECE = 2 << 20  # fits in L2/L3: checksum and copy each piece while it is cached
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Asks the kernel to start writing a just-written range to disk now (Linux), so that the final
    fsync overlaps with the rest of the writes instead of waiting for all of them. Best effort."""
    if _sync_file_range is not None and nbytes > 0:
        _sync_file_range(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # type: ignore[operator]


def write_streaming(f: BinaryIO, view: memoryview, offset: int, sync: bool, crc_fn: Any = None,
                    crc_start: int = 0) -> int:
    """Writes `view` at the file's current position `offset` in cache-sized pieces, starting writeback
    as it goes; returns `crc_fn` folded over the bytes (each piece checksummed while still in cache)."""
    c = crc_start
    for start in range(0, view.nbytes, _CRC_PIECE):
        piece = view[start:start + _CRC_PIECE]
        if crc_fn is not None:
            c = crc_fn(piece, c)
        write_all(f, piece)
        end = start + piece.nbytes
        if sync and (end % _WRITEBACK_CHUNK == 0 or end == view.nbytes):
            begin = (end - 1) // _WRITEBACK_CHUNK * _WRITEBACK_CHUNK
            start_writeback(f.fileno(), offset + begin, end - begin)
    return c


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def discard(path: str) -> None:
    """Removes `path` from its directory now and frees its blocks in the background.

    Freeing a large file's blocks can take tens of milliseconds; the name disappears at once (a rename
    to a temporary name), so callers see the same result as `os.remove`.
    """
    trash = _trash_name(path)
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    except OSError:
        _unlink_quietly(path)
        return
    threading.Thread(target=_unlink_quietly, args=(trash,), name="jitflow-discard").start()


def replace_keeping_old(tmp: str, path: str) -> str | None:
    """`os.replace(tmp, path)`, but the old file keeps a temporary name (returned) so that freeing it
    can happen later, off the critical path (see `discard`)."""
    old = None
    if os.path.exists(path):
        old = _trash_name(path)
        try:
            os.link(path, old)
        except OSError:
            old = None
    os.replace(tmp, path)
    return old


def _trash_name(path: str) -> str:
    # A hidden name that shares no prefix with checkpoint files, so listings never mistake it for one.
    return os.path.join(os.path.dirname(path), f".tmp-trash-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def temp_name(path: str) -> str:
    """A unique sibling of `path` (same directory, so the final rename is atomic)."""
    return f"{path}.tmp{os.getpid()}_{uuid.uuid4().hex[:8]}"


def fsync_dir(directory: str) -> None:
    """Makes a rename in `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_temp(path: str, sync: bool = True) -> Iterator[tuple[BinaryIO, str]]:
    """Opens a fresh temporary sibling of `path` for writing; removes it if the block fails.

    Yields (file, temp_path). On success the file is flushed (and fsynced if `sync`) and closed,
    but not yet renamed: the caller decides when to commit it with `os.replace`.
    """
    tmp = temp_name(path)
    f = open(tmp, "xb", buffering=0)
    try:
        yield f, tmp  # type: ignore[misc]
        f.flush()
        if sync:
            os.fsync(f.fileno())
        f.close()
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_atomic(path: str, data: bytes, sync: bool = True) -> None:
    """Replaces `path` by `data` so that readers see either the old or the new file, never a mix."""
    with open_temp(path, sync) as (f, tmp):
        write_all(f, memoryview(data))
    os.replace(tmp, path)
    if sync:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_all(f: BinaryIO, view: memoryview) -> None:
    """Writes the whole buffer (raw files may write less than asked)."""
    while view:
        n = f.write(view)
        if n is None:
            raise OSError(f"Non-blocking write to {f.name!r} made no progress")
        view = view[n:]

