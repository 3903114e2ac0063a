"""`tf.gfile` / `tf.io.gfile`: TF's file API on the local filesystem, with TF's error classes.

A missing path is NotFoundError, an existing target AlreadyExistsError, a permission problem
PermissionDeniedError; both spellings (`Exists`/`exists`, `GFile`, `FastGFile`, ...) are provided.
"""
from __future__ import annotations

import contextlib
import errno
import glob as _glob
import os
import shutil
import types
from collections.abc import Iterator
from typing import Any

from jitflow import errors


def _error(e: OSError, path: str) -> errors.OpError:
    """TF's error class for an OSError on `path`."""
    msg = f"{path}; {e.strerror or e}"
    if e.errno == errno.ENOENT:
        return errors.NotFoundError(None, None, msg)
    if e.errno == errno.EEXIST:
        return errors.AlreadyExistsError(None, None, msg)
    if e.errno in (errno.EACCES, errno.EPERM):
        return errors.PermissionDeniedError(None, None, msg)
    if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY):
        return errors.FailedPreconditionError(None, None, msg)
    return errors.UnknownError(None, None, msg)


@contextlib.contextmanager
def _as_tf_errors(path: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise _error(e, path) from e


def _path(p: Any) -> str:
    if isinstance(p, bytes):
        return p.decode()
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"path must be a string, bytes or os.PathLike, got {type(p).__name__}")
    return os.fspath(p)


class GFile:
    """A file object (`tf.gfile.GFile(name, mode)`), opened on first use as TF's is."""

    def __init__(self, name: Any, mode: str = "r") -> None:
        if mode not in ("r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "w+", "wb+", "a+", "ab+"):
            raise errors.InvalidArgumentError(None, None, f"mode is not 'r' or 'w' or 'a' or 'r+' or 'w+' or "
                                                          f"'a+': {mode!r}")
        self.name = _path(name)
        self.mode = mode
        self._f: Any = None  # opened on first use: a missing file is NotFoundError then, as in TF

    def _file(self) -> Any:
        if self._f is None:
            text: dict[str, Any] = {} if "b" in self.mode else {"encoding": "utf-8", "newline": ""}
            with _as_tf_errors(self.name):
                self._f = open(self.name, self.mode, **text)  # noqa: SIM115 - closed by close()
        return self._f

    def read(self, n: int = -1) -> Any:
        """Up to `n` characters (bytes in binary mode), or the rest of the file."""
        with _as_tf_errors(self.name):
            return self._file().read(n)

    def readline(self) -> Any:
        with _as_tf_errors(self.name):
            return self._file().readline()

    def readlines(self) -> list[Any]:
        with _as_tf_errors(self.name):
            return self._file().readlines()

    def __iter__(self) -> GFile:
        return self

    def __next__(self) -> Any:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__

    def write(self, data: Any) -> None:
        """Writes str or bytes (str is UTF-8 encoded in binary mode, as TF does)."""
        f = self._file()
        if "b" in self.mode and isinstance(data, str):
            data = data.encode("utf-8")
        elif "b" not in self.mode and isinstance(data, bytes):
            data = data.decode("utf-8")
        with _as_tf_errors(self.name):
            f.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._file().seek(offset, whence))

    def tell(self) -> int:
        return int(self._file().tell())

    def size(self) -> int:
        return Stat(self.name).length

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> GFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


FastGFile = GFile
Open = GFile


def Exists(filename: Any) -> bool:  # noqa: N802 - TF's name
    """Whether a file or directory exists at `filename`."""
    return os.path.exists(_path(filename))


def IsDirectory(dirname: Any) -> bool:  # noqa: N802
    return os.path.isdir(_path(dirname))


def MakeDirs(dirname: Any) -> None:  # noqa: N802
    """Creates `dirname` and its parents; no error if it already exists as a directory."""
    p = _path(dirname)
    with _as_tf_errors(p):
        os.makedirs(p, exist_ok=True)


def MkDir(dirname: Any) -> None:  # noqa: N802
    """Creates one directory: AlreadyExistsError if it exists, NotFoundError without its parent."""
    p = _path(dirname)
    with _as_tf_errors(p):
        os.mkdir(p)


def ListDirectory(dirname: Any) -> list[str]:  # noqa: N802
    """The entries of `dirname` (names only, no '.' or '..'); NotFoundError if it is missing."""
    p = _path(dirname)
    if not os.path.isdir(p):
        raise errors.NotFoundError(None, None, f"Could not find directory {p}")
    with _as_tf_errors(p):
        return os.listdir(p)


def Glob(filename: Any) -> list[str]:  # noqa: N802
    """Paths matching the pattern (a string or a list of patterns)."""
    pats = [filename] if isinstance(filename, (str, bytes, os.PathLike)) else list(filename)
    return [m for pat in pats for m in sorted(_glob.glob(_path(pat)))]


def Remove(filename: Any) -> None:  # noqa: N802
    """Deletes a file; NotFoundError if it does not exist."""
    p = _path(filename)
    with _as_tf_errors(p):
        os.remove(p)


def DeleteRecursively(dirname: Any) -> None:  # noqa: N802
    """Deletes a directory tree (or a file); NotFoundError if nothing is there."""
    p = _path(dirname)
    if not os.path.lexists(p):
        raise errors.NotFoundError(None, None, f"{p}; No such file or directory")
    with _as_tf_errors(p):
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.remove(p)


def _transfer(how: Any, old: Any, new: Any, overwrite: bool) -> None:
    """`how(src, dst)` after TF's checks: NotFoundError without `old`, AlreadyExistsError over `new`."""
    src, dst = _path(old), _path(new)
    if not os.path.exists(src):
        raise errors.NotFoundError(None, None, f"{src}; No such file or directory")
    if os.path.exists(dst) and not overwrite:
        raise errors.AlreadyExistsError(None, None, f"file already exists: {dst}")
    with _as_tf_errors(src):
        how(src, dst)


def Rename(oldname: Any, newname: Any, overwrite: bool = False) -> None:  # noqa: N802
    """Renames a file; AlreadyExistsError if `newname` exists and `overwrite` is False."""
    _transfer(os.replace, oldname, newname, overwrite)


def Copy(oldpath: Any, newpath: Any, overwrite: bool = False) -> None:  # noqa: N802
    """Copies a file; AlreadyExistsError if `newpath` exists and `overwrite` is False."""
    _transfer(shutil.copyfile, oldpath, newpath, overwrite)


class FileStatistics:
    """`Stat`'s result: length in bytes, mtime in nanoseconds, is_directory."""

    def __init__(self, length: int, mtime_nsec: int, is_directory: bool) -> None:
        self.length = length
        self.mtime_nsec = mtime_nsec
        self.is_directory = is_directory


def Stat(filename: Any) -> FileStatistics:  # noqa: N802
    p = _path(filename)
    with _as_tf_errors(p):
        st = os.stat(p)
    return FileStatistics(st.st_size, st.st_mtime_ns, os.path.isdir(p))


def Walk(top: Any, in_order: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:  # noqa: N802
    """(dirname, subdirs, files) for every directory under `top` (nothing if `top` is missing)."""
    yield from os.walk(_path(top), topdown=in_order)


_V2_NAMES = {"exists": Exists, "isdir": IsDirectory, "makedirs": MakeDirs, "mkdir": MkDir,
             "listdir": ListDirectory, "glob": Glob, "remove": Remove, "rmtree": DeleteRecursively,
             "rename": Rename, "copy": Copy, "stat": Stat, "walk": Walk}

gfile_v1 = types.SimpleNamespace(
    GFile=GFile, FastGFile=FastGFile, Open=Open, Exists=Exists, IsDirectory=IsDirectory, MakeDirs=MakeDirs,
    MkDir=MkDir, ListDirectory=ListDirectory, Glob=Glob, Remove=Remove, DeleteRecursively=DeleteRecursively,
    Rename=Rename, Copy=Copy, Stat=Stat, Walk=Walk, **_V2_NAMES)
