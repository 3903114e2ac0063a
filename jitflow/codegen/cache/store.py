"""The verified store of compiled kernels: in memory and on disk (keys come from :mod:`.key`).

The code generator hands over a complete Python module (``source``) that defines one
entry function with Numba decorators carrying explicit signatures (so it compiles when
the module runs) and ``cache=True``. It may import helpers from jitflow
(``from jitflow.codegen import vmath``). :func:`get_kernel` returns the compiled entry and
where it came from:

``"compiled"``  compiled now, in this process;
``"memory"``    already obtained by this process for the same key (clusters with the same
                structure share one kernel);
``"disk"``      loaded from the on-disk cache, written earlier by any process.

Disk layout (root = ``JITFLOW_CACHE_DIR`` or ``~/.cache/jitflow``, see :mod:`jitflow.flags`)
    ``<root>/<key[:2]>/<key>/kernel.py``   the source, never modified after creation;
    ``<root>/<key[:2]>/<key>/__pycache__/`` Numba's own cache (index ``.nbi`` and object
    code ``.nbc``) written by ``cache=True`` while compiling. Numba stamps it with a hash
    of ``kernel.py``'s content and looks it up by function name and line, so it stays
    valid when the entry is moved;
    ``<root>/<key[:2]>/<key>/meta.json``   key, backend, description, created, last_used,
    jitflow/Numba versions, the size and sha256 of every other file in the entry;
    ``<root>/tmp/``                         entries being built, and entries being deleted.

    The module is executed under the fixed name ``_jitflow_kernel_<key>`` because Numba's
    cached data refers to the defining module by name.

Integrity and concurrency
    Every file's sha256 is checked against ``meta.json`` before Numba unpickles anything;
    so are the entry's directories and files (owned by this user, not writable by others)
    and the absence of unlisted files in its ``__pycache__``.
    A corrupted, truncated or incomplete entry is reported once per process with
    :func:`warnings.warn`, deleted and recompiled: never a crash or a wrong result.
    Entries are built in ``<root>/tmp`` and published with one ``os.rename``; if another
    process published the same key first, its entry is kept and this process uses the
    kernel it compiled. Deletion renames the entry into ``tmp`` first, so readers see a
    whole entry or none. ``last_used`` is the entry directory's mtime, touched at most once
    per process per entry (``meta.json`` keeps the creation-time value).

Safety
    A root that is group- or world-writable, or owned by another user, is refused (one
    warning; the process then keeps kernels in memory only): Numba's cache files are
    pickles. ``JITFLOW_DISK_CACHE=0`` also keeps kernels in memory only; they are then
    compiled in a private temporary directory that is removed right away.

Debug output
    ``JITFLOW_DEBUG>=1`` prints one line per compile/load event to stderr; ``>=4`` also
    prints the generated source.

Nothing here imports Numba until a kernel is keyed or compiled, so the CLI's listing
commands start fast.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jitflow import flags
from jitflow.codegen.cache.key import FORMAT_VERSION, kernel_key

"""Bump when the entry layout or the way kernels are generated changes incompatibly."""

ORIGINS = ("compiled", "memory", "disk")

_KERNEL_FILE = "kernel.py"
META_FILE = "meta.json"
TMP_DIR = "tmp"
_MODULE_PREFIX = "_jitflow_kernel_"
STALE_TMP_SECONDS = 3600.0


class KernelCompileError(RuntimeError):
    """The generated source did not compile (the cause is chained); the caller may fall back."""


class CacheCorruptError(Exception):
    """An on-disk entry failed its integrity check (internal; reported as a warning)."""


@dataclass
class _Stats:
    compiled: int = 0
    disk_hits: int = 0
    memory_hits: int = 0
    corrupt: int = 0
    compile_seconds: float = 0.0
    load_seconds: float = 0.0


_stats = _Stats()
_memory: dict[str, Callable[..., Any]] = {}
_lock = threading.RLock()  # held while loading or compiling (Numba compiles one at a time anyway)
_stats_lock = threading.Lock()
_warned: set[str] = set()
_touched: set[str] = set()



# --------------------------------------------------------------------------- get_kernel


def get_kernel(
    source: str,
    entry: str,
    key_parts: Mapping[str, object],
    description: Mapping[str, object] | None = None,
    backend: str = "cpu",
) -> tuple[Callable[..., Any], str]:
    """Return ``(kernel, origin)`` for the entry function `entry` defined by `source`.

    `key_parts` go to :func:`kernel_key` together with `source`, `entry` and `backend`.
    `description` (JSON-able, e.g. ``{"ops": ["Add", "Relu"]}``) is stored in ``meta.json``
    for ``jitflow cache list/info``; it is not part of the key. `origin` is one of
    ``"compiled"``, ``"memory"``, ``"disk"``. Raises :class:`KernelCompileError` if the
    source fails to compile or does not define `entry`.
    """
    key = kernel_key({**key_parts, "source": source, "entry": entry, "backend": backend})
    fn = _memory.get(key)
    if fn is None:
        with _lock:
            fn = _memory.get(key)
            if fn is None:
                fn, origin = _obtain(key, source, entry, dict(description or {}), backend)
                _memory[key] = fn
                return fn, origin
    with _stats_lock:
        _stats.memory_hits += 1
    _debug(1, f"kernel {key[:12]} ({entry}) from memory")
    return fn, "memory"


def _obtain(key: str, source: str, entry: str, description: dict[str, Any],
            backend: str) -> tuple[Callable[..., Any], str]:
    root = usable_root()
    if root is not None:
        loaded = _load_from_disk(root, key, entry)
        if loaded is not None:
            return loaded
    return _compile(root, key, source, entry, description, backend)


def _load_from_disk(root: str, key: str, entry: str) -> tuple[Callable[..., Any], str] | None:
    path = entry_path(key, root)
    if not os.path.isdir(path):
        return None
    t0 = time.perf_counter()
    try:
        meta, source = read_verified(path, key)
        module = _exec_kernel(os.path.join(path, _KERNEL_FILE), source, key)
        fn = _entry_of(module, entry, key)
    except FileNotFoundError:
        if os.path.isdir(path):
            _discard_corrupt(root, key, path, "a file is missing")
        return None  # otherwise another process removed it while we read: just compile
    except CacheCorruptError as exc:
        _discard_corrupt(root, key, path, str(exc))
        return None
    except Exception as exc:  # Numba or the import failed on verified files: never trust the entry
        _discard_corrupt(root, key, path, f"failed to load: {type(exc).__name__}: {exc}")
        return None
    dt = time.perf_counter() - t0
    _touch(path)
    if _numba_cache_misses(module):
        # Numba rejected its own cache (and rewrote it): record the new files' hashes
        _stats.compiled += 1
        _stats.compile_seconds += dt
        _refresh_hashes(path, meta)
        _debug(1, f"kernel {key[:12]} ({entry}) recompiled by Numba in {dt:.3f}s at {path}")
        return fn, "compiled"
    _stats.disk_hits += 1
    _stats.load_seconds += dt
    _debug(1, f"kernel {key[:12]} ({entry}) loaded from disk in {dt:.3f}s from {path}")
    _debug_source(4, source)
    return fn, "disk"


def _compile(root: str | None, key: str, source: str, entry: str, description: dict[str, Any],
             backend: str) -> tuple[Callable[..., Any], str]:
    build = _new_build_dir(root)
    published = False
    try:
        kernel_file = os.path.join(build, _KERNEL_FILE)
        with open(kernel_file, "w", encoding="utf-8") as f:
            f.write(source)
        t0 = time.perf_counter()
        try:
            module = _exec_kernel(kernel_file, source, key)
            fn = _entry_of(module, entry, key)
        except KernelCompileError:
            raise
        except Exception as exc:
            raise KernelCompileError(
                f"kernel {key[:12]} ({entry}) failed to compile: {type(exc).__name__}: {exc}"
            ) from exc
        dt = time.perf_counter() - t0
        _stats.compiled += 1
        _stats.compile_seconds += dt
        _debug(1, f"kernel {key[:12]} ({entry}) compiled in {dt:.3f}s ({backend})")
        _debug_source(4, source)
        if root is not None:
            try:
                published = _publish(root, build, key, entry, description, backend, dt)
            except OSError as exc:  # a full or read-only disk costs the cache, not the kernel
                _warn_once(f"store:{root}", f"jitflow: cannot store compiled kernels in {root}: {exc}")
    finally:
        if not published:
            shutil.rmtree(build, ignore_errors=True)
    return fn, "compiled"


def _publish(root: str, build: str, key: str, entry: str, description: dict[str, Any],
             backend: str, compile_seconds: float) -> bool:
    """Move a finished build into place; True if it was moved (False: not stored)."""
    files = file_table(build)
    if not any(name.startswith("__pycache__/") for name in files):
        _warn_once(f"nocache:{key}", f"jitflow: kernel {key[:12]} ({entry}) wrote no Numba cache files "
                   "(its source lacks cache=True?); it will be recompiled by every process")
        return False
    import numba

    import jitflow

    now = time.time()
    meta = {
        "key": key,
        "format": FORMAT_VERSION,
        "entry": entry,
        "backend": backend,
        "description": description,
        "created": now,
        "last_used": now,
        "compile_seconds": round(compile_seconds, 6),
        "jitflow": getattr(jitflow, "__version__", "?"),
        "numba": numba.__version__,
        "files": files,
        "size": sum(f["size"] for f in files.values()),
    }
    _write_json_atomic(os.path.join(build, META_FILE), meta)
    final = entry_path(key, root)
    os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
    try:
        os.rename(build, final)
    except OSError:
        if os.path.isdir(final):  # another process published this key first: keep theirs
            _debug(1, f"kernel {key[:12]} already published by another process")
            return False
        raise
    _touched.add(key)
    return True


# --------------------------------------------------------------------------- loading helpers


def _exec_kernel(path: str, source: str, key: str) -> types.ModuleType:
    """Run the kernel module from `path` under its fixed name (Numba's cache refers to it)."""
    name = _MODULE_PREFIX + key
    module = types.ModuleType(name)
    module.__file__ = path
    code = compile(source, path, "exec")  # our own compile: no .pyc appears in the entry
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        with own_numba_locators():
            exec(code, module.__dict__)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module


def _entry_of(module: types.ModuleType, entry: str, key: str) -> Callable[..., Any]:
    fn = module.__dict__.get(entry)
    if not callable(fn):
        raise KernelCompileError(f"kernel {key[:12]}: the generated source defines no callable {entry!r}")
    return fn


@contextlib.contextmanager
def own_numba_locators() -> Iterator[None]:
    """Ignore the user's NUMBA_CACHE_DIR / NUMBA_CACHE_LOCATOR_CLASSES while jitflow's kernels attach
    their caches (next to kernel.py for generated ones, under the root for hand-written ones)."""
    from numba.core import config

    saved = {n: getattr(config, n) for n in ("CACHE_DIR", "CACHE_LOCATOR_CLASSES") if hasattr(config, n)}
    for n in saved:
        setattr(config, n, "")
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(config, n, v)


def _numba_cache_misses(module: types.ModuleType) -> int:
    """How many signatures the module's own Numba dispatchers compiled instead of loading."""
    misses = 0
    for obj in list(module.__dict__.values()):
        py_func = getattr(obj, "py_func", None)
        if py_func is None or getattr(py_func, "__module__", None) != module.__name__:
            continue
        stats = getattr(obj, "stats", None)
        if stats is not None:
            misses += sum(stats.cache_misses.values())
    return misses


def read_verified(path: str, key: str) -> tuple[dict[str, Any], str]:
    """Check an entry against its meta.json; return (meta, source) or raise CacheCorruptError."""
    for d in (os.path.dirname(path), path, os.path.join(path, "__pycache__")):
        problem = root_problem(d) if os.path.exists(d) else None
        if problem is not None:  # others could have swapped files (meta.json included) under us
            raise CacheCorruptError(f"directory {os.path.basename(d)[:12]}: {problem}")
    try:
        meta = json.loads(_read_entry_file(path, META_FILE).decode("utf-8"))
    except FileNotFoundError:
        raise CacheCorruptError("meta.json is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheCorruptError(f"meta.json is unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("files"), dict):
        raise CacheCorruptError("meta.json does not describe this entry")
    files: dict[str, Any] = meta["files"]
    if _KERNEL_FILE not in files:
        raise CacheCorruptError("meta.json lists no kernel.py")
    pycache = os.path.join(path, "__pycache__")
    unlisted = [n for n in (os.listdir(pycache) if os.path.isdir(pycache) else [])
                if f"__pycache__/{n}" not in files]
    if unlisted:  # Numba would read them without our check
        raise CacheCorruptError(f"unexpected files: {', '.join(sorted(unlisted))}")
    source_bytes = b""
    for name, info in files.items():
        data = _read_entry_file(path, name)
        if not isinstance(info, dict) or len(data) != info.get("size"):
            raise CacheCorruptError(f"{name} has the wrong size (truncated?)")
        if hashlib.sha256(data).hexdigest() != info.get("sha256"):
            raise CacheCorruptError(f"{name} does not match its sha256")
        if name == _KERNEL_FILE:
            source_bytes = data
    try:
        return meta, source_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise CacheCorruptError("kernel.py is not UTF-8") from None


def _read_entry_file(path: str, name: str) -> bytes:
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CacheCorruptError(f"meta.json names a file outside the entry: {name!r}")
    with open(os.path.join(path, *parts), "rb") as f:
        problem = _ownership_problem(os.fstat(f.fileno()))
        if problem is not None:
            raise CacheCorruptError(f"{name}: {problem}")
        return f.read()


def file_table(path: str) -> dict[str, dict[str, Any]]:
    """{relative name: {size, sha256}} for every file in an entry except meta.json."""
    table: dict[str, dict[str, Any]] = {}
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            if rel == META_FILE:
                continue
            with open(full, "rb") as f:
                data = f.read()
            table[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return dict(sorted(table.items()))


def _refresh_hashes(path: str, meta: dict[str, Any]) -> None:
    meta = dict(meta)
    meta["files"] = file_table(path)
    meta["size"] = sum(f["size"] for f in meta["files"].values())
    try:
        _write_json_atomic(os.path.join(path, META_FILE), meta)
    except OSError:
        pass  # a later load re-checks the hashes and rebuilds the entry


def _write_json_atomic(path: str, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".meta-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _touch(path: str) -> None:
    key = os.path.basename(path)
    if key in _touched:
        return
    _touched.add(key)
    with contextlib.suppress(OSError):
        os.utime(path)


def _discard_corrupt(root: str, key: str, path: str, reason: str) -> None:
    _stats.corrupt += 1
    _warn_once(f"corrupt:{key}", f"jitflow: compile cache entry {key[:12]} is corrupt ({reason}); "
               "deleting and recompiling it")
    remove_entry(root, path)


# --------------------------------------------------------------------------- the directory


def usable_root() -> str | None:
    """The cache root if the disk cache is enabled and safe to use, else None (memory only).

    Creates the root (mode 0700) if needed. Warns once if it is group/world-writable or
    owned by another user.
    """
    if not flags.disk_cache_enabled():
        return None
    root = flags.cache_dir()
    problem = root_problem(root, create=True)
    if problem is not None:
        _warn_once(f"root:{root}", f"jitflow: not using compile cache directory {root}: {problem}; "
                   "kernels stay in memory only")
        return None
    return root


def root_problem(root: str, create: bool = False) -> str | None:
    """Why `root` cannot be used as a cache directory, or None if it can."""
    try:
        if create:
            os.makedirs(root, mode=0o700, exist_ok=True)
        st = os.stat(root)
    except OSError as exc:
        return f"cannot create or read it ({exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    return _ownership_problem(st)


def _ownership_problem(st: os.stat_result) -> str | None:
    """Why a file or directory with this stat could have been written by someone else."""
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return "it is owned by another user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "it is writable by other users"
    return None


def entry_path(key: str, root: str | None = None) -> str:
    """The directory of the entry for `key` under `root` (default: the configured root)."""
    return os.path.join(root or flags.cache_dir(), key[:2], key)


def _new_build_dir(root: str | None) -> str:
    if root is None:
        return tempfile.mkdtemp(prefix="jitflow-kernel-")
    tmp = os.path.join(root, TMP_DIR)
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix="build-", dir=tmp)


def remove_entry(root: str, path: str) -> bool:
    """Delete an entry atomically (rename into tmp, then remove); False if it was already gone."""
    tmp = os.path.join(root, TMP_DIR)
    try:
        os.makedirs(tmp, mode=0o700, exist_ok=True)
        grave = tempfile.mkdtemp(prefix="trash-", dir=tmp)
        os.rename(path, os.path.join(grave, "entry"))
    except FileNotFoundError:
        return False
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return not os.path.exists(path)
    shutil.rmtree(grave, ignore_errors=True)
    return True



def forget_touched(key: str) -> None:
    """Forget that this process touched entry `key` (it was removed: a new one may be touched again)."""
    _touched.discard(key)


# --------------------------------------------------------------------------- stats, debug


def cache_stats() -> dict[str, Any]:
    """This process's counters: compiled, disk_hits, memory_hits, corrupt (entries discarded),
    compile_seconds, load_seconds, and kernels (how many are held in memory)."""
    return {
        "compiled": _stats.compiled,
        "disk_hits": _stats.disk_hits,
        "memory_hits": _stats.memory_hits,
        "corrupt": _stats.corrupt,
        "compile_seconds": round(_stats.compile_seconds, 6),
        "load_seconds": round(_stats.load_seconds, 6),
        "kernels": len(_memory),
    }


def reset_stats() -> None:
    """Zero this process's counters (kernels stay in memory)."""
    global _stats
    _stats = _Stats()


def clear_memory() -> None:
    """Forget the kernels held in memory, so the next request goes to disk (for tests/tools)."""
    with _lock:
        _memory.clear()
        _touched.clear()
        _warned.clear()


def _warn_once(tag: str, message: str) -> None:
    if tag in _warned:
        return
    _warned.add(tag)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _debug(level: int, message: str) -> None:
    if flags.debug_level() >= level:
        print(f"jitflow: {message}", file=sys.stderr, flush=True)


def _debug_source(level: int, source: str) -> None:
    if flags.debug_level() >= level:
        print(source.rstrip("\n"), file=sys.stderr, flush=True)
