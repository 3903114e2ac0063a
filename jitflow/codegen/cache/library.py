"""Numba's cache files of jitflow's hand-written kernels, kept under the compile cache root.

The generated kernels go through the verified store (:mod:`.store`). The hand-written ones
(`kernels/conv.py`, `kernels/pool.py`, the shuffle buffer, the Example reader, ...) are ordinary
Numba functions compiled lazily for whatever dtypes and layouts they meet, so they keep Numba's own
per-function cache; :func:`njit` only moves its files from the package's ``__pycache__`` to
``<root>/library/<module directory>/``, so that ``JITFLOW_CACHE_DIR`` and ``JITFLOW_DISK_CACHE=0``
apply to them and ``jitflow cache clear`` removes them. User code decorated with Numba's own
``njit(cache=True)`` is not affected: the locator is attached to these dispatchers only.

A kernel module whose kernels call functions of other modules names them in ``KERNEL_DEPENDENCIES``
(module names): their files' stamps join the kernel's, so editing them recompiles it too.

The directory is the store's root (owner-only, checked by :func:`.store.usable_root`). Numba stamps
each index with a hash of the kernel's source file, so edited sources recompile. A cache file that
fails to load (truncated, corrupted) is reported once with :func:`warnings.warn`, its function's files
are deleted, and the function is compiled again: never a crash. Without a usable root the files go to
a private temporary directory, removed at exit.
"""
from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from jitflow import flags
from jitflow.codegen.cache import store

LIBRARY_DIR = "library"
_private: list[str] = []  # the temporary directory used without a usable root
_classes: list[type] = []  # (KernelLocator, KernelCache), built on first use


def library_root() -> str:
    """Where Numba's cache files of the hand-written kernels go now (created, mode 0700)."""
    root = store.usable_root()
    if root is None:
        if not _private:
            _private.append(tempfile.mkdtemp(prefix="jitflow-library-"))
            atexit.register(shutil.rmtree, _private[0], True)
        return _private[0]
    path = os.path.join(root, LIBRARY_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _cache_classes() -> tuple[type, type]:
    """(locator, cache) classes, built on first use so that importing this module stays Numba-free."""
    if _classes:
        return _classes[0], _classes[1]
    from numba.core import caching

    # Numba renamed _CompileResultCacheImpl to CompileResultCacheImpl (0.60); the others keep their names
    impl_base = vars(caching).get("CompileResultCacheImpl") or vars(caching)["_CompileResultCacheImpl"]
    locator_base = caching._CacheLocator
    mixin = caching._SourceFileBackedLocatorMixin

    class KernelLocator(mixin, locator_base):  # type: ignore[misc, valid-type]
        """Numba's files for a function of jitflow's source tree, under :func:`library_root`."""

        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            package = os.path.basename(os.path.dirname(os.path.abspath(py_file)))
            self._cache_path = os.path.join(library_root(), package)
            module = sys.modules.get(py_func.__module__)
            self._deps = [getattr(sys.modules.get(name), "__file__", None) or name
                          for name in getattr(module, "KERNEL_DEPENDENCIES", ())]

        def get_source_stamp(self) -> Any:
            """The source file's stamp, with those of the modules its kernels compile in (`KERNEL_DEPENDENCIES`
            of the kernel's module: Numba would otherwise keep a kernel compiled against their old code)."""
            own = super().get_source_stamp()
            if not self._deps:
                return own
            deps: list[tuple[Any, float | None, int | None]] = []
            for path in self._deps:
                try:
                    st = os.stat(path)
                    deps.append((path, st.st_mtime, st.st_size))
                except OSError:
                    deps.append((path, None, None))
            return (own, tuple(deps))

        def get_cache_path(self) -> str:
            return self._cache_path

        def ensure_cache_path(self) -> None:
            os.makedirs(self._cache_path, mode=0o700, exist_ok=True)

    class KernelCacheImpl(impl_base):  # type: ignore[misc, valid-type]
        _locator_classes = [KernelLocator]

    class KernelCache(caching.FunctionCache):  # type: ignore[misc, valid-type]
        """Numba's per-function cache that recompiles, once warned, when its files fail to load."""

        _impl_class = KernelCacheImpl

        def load_overload(self, sig: Any, target_context: Any) -> Any:
            try:
                return super().load_overload(sig, target_context)
            except Exception as exc:  # a damaged file costs a compile, never the run
                _discard(self, exc)
                return None

    _classes.extend([KernelLocator, KernelCache])
    return KernelLocator, KernelCache



def _discard(cache: Any, exc: Exception) -> None:
    """Delete one function's cache files after they failed to load, and say so once."""
    base = os.path.join(cache.cache_path, cache._impl.filename_base)
    for path in glob.glob(glob.escape(base) + ".*"):
        try:
            os.remove(path)
        except OSError:
            pass
    store._warn_once(f"library:{base}", f"jitflow: discarded unreadable kernel cache files {base}.* "
                     f"({type(exc).__name__}: {exc}); recompiling")


class LazyKernel:
    """A hand-written kernel whose Numba dispatcher is made on first use.

    Making a dispatcher starts Numba's CPU target (~0.5 s once per process), so importing the kernel
    modules must not: a program whose steps never reach them (all its clusters one element, or
    interpreted) never pays it. On first use every `LazyKernel` of the same module is resolved and the
    module's globals are pointed at the dispatchers, so kernels calling each other are compiled against
    real dispatchers; calls and attributes (``signatures``, ``stats``) go to the dispatcher.
    """

    def __init__(self, fn: Callable[..., Any], signatures: tuple[Any, ...], options: dict[str, Any]) -> None:
        self._fn, self._signatures, self._options = fn, signatures, options
        self._dispatcher: Any = None
        functools.update_wrapper(self, fn)

    def _resolve(self) -> Any:
        if self._dispatcher is None:
            with _resolve_lock:
                module = sys.modules.get(self._fn.__module__)
                for name, value in list(vars(module).items()) if module is not None else ():
                    if isinstance(value, LazyKernel):
                        setattr(module, name, value._make())
                self._make()
        return self._dispatcher

    def _make(self) -> Any:
        if self._dispatcher is None:
            import numba

            _, cache_class = _cache_classes()
            dispatcher = numba.njit(**self._options)(self._fn)
            with store.own_numba_locators():
                dispatcher._cache = cache_class(self._fn)  # what Numba's enable_caching() does with its own class
            for sig in self._signatures:
                dispatcher.compile(sig)
            self._dispatcher = dispatcher
        return self._dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        d = self._dispatcher
        return (d if d is not None else self._resolve())(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_fn", "_signatures", "_options", "_dispatcher"):
            raise AttributeError(name)  # not built yet (copy, pickle): never a dispatcher's attribute
        return getattr(self._resolve(), name)


_resolve_lock = threading.RLock()


def njit(*signatures: Any, **options: Any) -> Callable[[Callable[..., Any]], LazyKernel]:
    """``numba.njit`` for jitflow's own kernels, cached under the compile cache root.

    Takes Numba's options except ``cache`` (always on). The dispatcher is made on first use
    (`LazyKernel`); explicit signatures compile then, after the cache is attached, so they are loaded
    from it too.
    """
    if "cache" in options:
        raise TypeError("jitflow's kernels are always cached; do not pass cache=")

    def decorate(fn: Callable[..., Any]) -> LazyKernel:
        return LazyKernel(fn, signatures, options)

    return decorate


def library_summary() -> dict[str, int]:
    """Files and bytes of the hand-written kernels' cache under the configured root."""
    path = os.path.join(flags.cache_dir(), LIBRARY_DIR)
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                size += os.stat(os.path.join(dirpath, n)).st_size
                files += 1
            except OSError:
                pass
    return {"files": files, "size": size}


def clear_library() -> dict[str, int]:
    """Delete the hand-written kernels' cache files under the configured root; return what was freed."""
    before = library_summary()
    shutil.rmtree(os.path.join(flags.cache_dir(), LIBRARY_DIR), ignore_errors=True)
    return before
