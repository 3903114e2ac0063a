"""Content-keyed compile cache for generated Numba kernels: in memory and on disk.

Three modules: :mod:`.key` says what identifies a kernel (:func:`kernel_key`), :mod:`.store`
compiles, verifies, publishes and loads entries (:func:`get_kernel`), and :mod:`.admin` is what
``jitflow cache`` does to the directory (list, info, verify, clear, prune). :mod:`.library` keeps
Numba's own cache files of the hand-written kernels (`kernels/`) under the same root.

For the code generator: :func:`get_kernel`, :func:`kernel_key`, :class:`KernelCompileError`,
:func:`cache_stats`, :func:`reset_stats`, :func:`clear_memory`.
For ``jitflow cache``: :func:`cache_root`, :func:`usable_root`, :func:`list_entries`,
:func:`entry_info`, :func:`find_key`, :func:`disk_summary`, :func:`clear`, :func:`prune`,
:func:`verify`.
"""
from jitflow.codegen.cache.admin import (
    cache_root,
    clear,
    disk_summary,
    entry_info,
    find_key,
    list_entries,
    prune,
    verify,
)
from jitflow.codegen.cache.key import FORMAT_VERSION, kernel_key
from jitflow.codegen.cache.store import (
    CacheCorruptError,
    KernelCompileError,
    cache_stats,
    clear_memory,
    entry_path,
    get_kernel,
    reset_stats,
    root_problem,
    usable_root,
)

__all__ = [
    "FORMAT_VERSION", "CacheCorruptError", "KernelCompileError", "cache_root", "cache_stats", "clear",
    "clear_memory", "disk_summary", "entry_info", "entry_path", "find_key", "get_kernel", "kernel_key",
    "list_entries", "prune", "reset_stats", "root_problem", "usable_root", "verify",
]
