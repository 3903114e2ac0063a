"""What ``jitflow cache`` does to the on-disk store: list, inspect, verify, clear and prune entries."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

from jitflow import flags
from jitflow.codegen.cache import library, store
from jitflow.codegen.cache.key import FORMAT_VERSION


def _iter_entry_dirs(root: str) -> Iterator[tuple[str, str]]:
    """(key, path) of every directory that looks like an entry, complete or not."""
    try:
        shards = sorted(os.listdir(root))
    except OSError:
        return
    for shard in shards:
        if len(shard) != 2 or not _is_hex(shard):
            continue
        shard_path = os.path.join(root, shard)
        try:
            names = sorted(os.listdir(shard_path))
        except OSError:
            continue
        for name in names:
            if len(name) == 64 and _is_hex(name) and name.startswith(shard):
                yield name, os.path.join(shard_path, name)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _entry_summary(key: str, path: str) -> dict[str, Any]:
    """Cheap description of an entry from meta.json and stat (no hashing)."""
    info: dict[str, Any] = {"key": key, "path": path}
    try:
        with open(os.path.join(path, store.META_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        meta = {}
        info["problem"] = "meta.json is missing or unreadable"
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = 0.0
    created = _number(meta.get("created"), mtime)
    last = _number(meta.get("last_used"), 0.0)
    info.update({
        "backend": meta.get("backend", "?"),
        "entry": meta.get("entry", "?"),
        "description": meta.get("description", {}),
        "created": created,
        "last_used": max(last, mtime),
        "size": _tree_size(path),
        "compile_seconds": meta.get("compile_seconds"),
        "jitflow": meta.get("jitflow"),
        "numba": meta.get("numba"),
    })
    return info


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def cache_root() -> str:
    """The configured cache directory (whether or not it exists or is usable)."""
    return flags.cache_dir()


def list_entries() -> list[dict[str, Any]]:
    """Every entry (most recently used first): key, path, backend, entry, description,
    created, last_used (epoch seconds), size (bytes), compile_seconds, versions."""
    entries = [_entry_summary(k, p) for k, p in _iter_entry_dirs(cache_root())]
    entries.sort(key=lambda e: e["last_used"], reverse=True)
    return entries


def find_key(prefix: str) -> str:
    """The full key of the one entry whose key starts with `prefix` (KeyError otherwise)."""
    prefix = prefix.strip().lower()
    if not prefix or not _is_hex(prefix):
        raise KeyError(f"not a cache key: {prefix!r}")
    matches = [k for k, _ in _iter_entry_dirs(cache_root()) if k.startswith(prefix)]
    if not matches:
        raise KeyError(f"no cache entry matches {prefix!r}")
    if len(matches) > 1:
        raise KeyError(f"{len(matches)} cache entries match {prefix!r}; give more characters")
    return matches[0]


def entry_info(key: str) -> dict[str, Any]:
    """Everything about one entry (a unique key prefix is enough): its summary, its
    meta.json, its files, and ``problem`` (None if it passes the integrity check)."""
    full = find_key(key)
    path = store.entry_path(full)
    info = _entry_summary(full, path)
    try:
        meta, _ = store.read_verified(path, full)
        info["problem"] = None
    except (store.CacheCorruptError, OSError) as exc:
        meta = {}
        info["problem"] = str(exc) if isinstance(exc, store.CacheCorruptError) else f"unreadable: {exc}"
    info["meta"] = meta
    info["files"] = meta.get("files", {}) if meta else {}
    return info


def verify(fix: bool = False) -> list[dict[str, Any]]:
    """Check every entry's files against meta.json; return ``[{key, path, problem, removed}]``
    for the bad ones (empty list: all good). With `fix`, bad entries are deleted."""
    root = cache_root()
    bad: list[dict[str, Any]] = []
    for key, path in _iter_entry_dirs(root):
        try:
            meta, _ = store.read_verified(path, key)
            extra = sorted(set(store.file_table(path)) - set(meta["files"]))
            problem = f"unexpected files: {', '.join(extra)}" if extra else None
        except store.CacheCorruptError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"unreadable: {exc.strerror or exc}"
        if problem is None:
            continue
        removed = store.remove_entry(root, path) if fix else False
        bad.append({"key": key, "path": path, "problem": problem, "removed": removed})
    return bad


def clear() -> dict[str, int]:
    """Delete every entry, leftover build directory and the hand-written kernels' cache files;
    return {"removed" (entries), "freed" (bytes), "library_files"}."""
    root = cache_root()
    lib = library.clear_library()
    removed, freed = 0, lib["size"]
    for key, path in list(_iter_entry_dirs(root)):
        size = _tree_size(path)
        if store.remove_entry(root, path):
            removed += 1
            freed += size
            store.forget_touched(key)
    _clean_tmp(root, older_than=0.0)
    _remove_empty_shards(root)
    return {"removed": removed, "freed": freed, "library_files": lib["files"]}


def prune(max_size: int | None = None, older_than_s: float | None = None) -> dict[str, Any]:
    """Delete entries unused for more than `older_than_s` seconds, then least recently used
    ones until the total size is at most `max_size` bytes. Returns {"removed": [keys],
    "freed", "remaining", "remaining_size"}. Also cleans stale build directories."""
    if max_size is not None and max_size < 0:
        raise ValueError("max_size must be >= 0")
    if older_than_s is not None and older_than_s < 0:
        raise ValueError("older_than_s must be >= 0")
    root = cache_root()
    entries = list_entries()  # newest first
    now = time.time()
    doomed: list[dict[str, Any]] = []
    keep: list[dict[str, Any]] = []
    for e in entries:
        old = older_than_s is not None and now - e["last_used"] > older_than_s
        (doomed if old else keep).append(e)
    if max_size is not None:
        total = sum(e["size"] for e in keep)
        while keep and total > max_size:
            victim = keep.pop()  # least recently used
            total -= victim["size"]
            doomed.append(victim)
    removed: list[str] = []
    freed = 0
    for e in doomed:
        if store.remove_entry(root, e["path"]):
            removed.append(e["key"])
            freed += e["size"]
            store.forget_touched(e["key"])
    _clean_tmp(root, older_than=store.STALE_TMP_SECONDS)
    _remove_empty_shards(root)
    return {"removed": removed, "freed": freed, "remaining": len(keep),
            "remaining_size": sum(e["size"] for e in keep)}


def _clean_tmp(root: str, older_than: float) -> None:
    """Remove build/trash directories left by processes that died (older than `older_than` s)."""
    tmp = os.path.join(root, store.TMP_DIR)
    now = time.time()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for n in names:
        p = os.path.join(tmp, n)
        with contextlib.suppress(OSError):
            if now - os.stat(p).st_mtime >= older_than:
                shutil.rmtree(p, ignore_errors=True)


def _remove_empty_shards(root: str) -> None:
    try:
        shards = os.listdir(root)
    except OSError:
        return
    for shard in shards:
        if len(shard) == 2 and _is_hex(shard):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, shard))  # fails (ignored) unless empty


def disk_summary() -> dict[str, Any]:
    """Totals for the cache directory: dir, usable/problem, entries, size, by backend,
    oldest/newest last use, format version."""
    root = cache_root()
    entries = list_entries()
    by_backend: dict[str, dict[str, int]] = {}
    for e in entries:
        b = by_backend.setdefault(str(e["backend"]), {"entries": 0, "size": 0})
        b["entries"] += 1
        b["size"] += e["size"]
    exists = os.path.exists(root)
    problem = store.root_problem(root) if exists else None  # a missing root is created on first use
    return {
        "dir": root,
        "exists": exists,
        "disk_cache_enabled": flags.disk_cache_enabled(),
        "usable": problem is None,
        "problem": problem,
        "format_version": FORMAT_VERSION,
        "entries": len(entries),
        "size": sum(e["size"] for e in entries),
        "by_backend": by_backend,
        "library": library.library_summary(),
        "oldest_use": min((e["last_used"] for e in entries), default=None),
        "newest_use": max((e["last_used"] for e in entries), default=None),
    }


