"""Crash-safe file replacement: write a temporary file, flush and fsync it, rename it over the target."""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import BinaryIO


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

