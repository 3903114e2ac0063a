"""Numba's cache files of the hand-written kernels live under jitflow's compile cache root."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

import jitflow
from jitflow.codegen import cache
from jitflow.codegen.cache import library


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("JITFLOW_CACHE_DIR", str(path))
    monkeypatch.delenv("JITFLOW_DISK_CACHE", raising=False)
    return path


def _scaled(x):  # type: ignore[no-untyped-def]
    return x * 3.0 + 1.0


def _kernel():  # type: ignore[no-untyped-def]
    return library.njit(nogil=True)(_scaled)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / library.LIBRARY_DIR).rglob("*") if p.is_file())


def test_compiled_once_then_loaded_from_the_root(root: Path) -> None:
    x = np.arange(4.0)
    first = _kernel()
    np.testing.assert_array_equal(first(x), x * 3.0 + 1.0)
    assert sum(first.stats.cache_misses.values()) == 1
    files = _files(root)
    assert {p.suffix for p in files} == {".nbi", ".nbc"}
    assert all(p.parent == root / library.LIBRARY_DIR / "codegen" for p in files)
    again = _kernel()  # a fresh dispatcher: what the next process sees
    np.testing.assert_array_equal(again(x), x * 3.0 + 1.0)
    assert sum(again.stats.cache_hits.values()) == 1
    assert sum(again.stats.cache_misses.values()) == 0


def test_a_dependency_edit_recompiles(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel module's KERNEL_DEPENDENCIES join its cache stamp: touching one makes the kernel compile
    again instead of loading code built against the dependency's old source."""
    import os
    import sys

    dep = tmp_path / "dep_module.py"
    dep.write_text("X = 1\n")
    fake = type(sys)("dep_module")
    fake.__file__ = str(dep)
    monkeypatch.setitem(sys.modules, "dep_module", fake)
    monkeypatch.setattr(sys.modules[__name__], "KERNEL_DEPENDENCIES", ("dep_module",), raising=False)
    x = np.arange(4.0)
    assert sum(_kernel()(x) == x * 3.0 + 1.0) == 4
    again = _kernel()
    again(x)
    assert sum(again.stats.cache_hits.values()) == 1
    st = dep.stat()
    os.utime(dep, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    edited = _kernel()
    edited(x)
    assert sum(edited.stats.cache_hits.values()) == 0 and sum(edited.stats.cache_misses.values()) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage_index"])
def test_damaged_files_warn_and_recompile(root: Path, damage: str) -> None:
    x = np.arange(5.0)
    _kernel()(x)
    nbc = next(p for p in _files(root) if p.suffix == ".nbc")
    nbi = next(p for p in _files(root) if p.suffix == ".nbi")
    if damage == "truncate":
        nbc.write_bytes(nbc.read_bytes()[:40])
    else:
        nbi.write_bytes(b"not a pickle")
    fresh = _kernel()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(fresh(x), x * 3.0 + 1.0)
    assert sum(fresh.stats.cache_misses.values()) == 1
    assert any("discarded unreadable kernel cache files" in str(w.message) for w in caught)
    reloaded = _kernel()  # the rewritten files load cleanly
    np.testing.assert_array_equal(reloaded(x), x * 3.0 + 1.0)
    assert sum(reloaded.stats.cache_hits.values()) == 1


def test_disk_cache_off_writes_nothing_under_the_root(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITFLOW_DISK_CACHE", "0")
    np.testing.assert_array_equal(_kernel()(np.ones(2)), np.full(2, 4.0))
    assert not (root / library.LIBRARY_DIR).exists()


def test_clear_and_stats_count_the_library(root: Path) -> None:
    _kernel()(np.ones(3))
    n = len(_files(root))
    assert cache.disk_summary()["library"]["files"] == n == 2
    result = cache.clear()
    assert result["library_files"] == n and result["freed"] > 0
    assert _files(root) == []


def test_cache_option_is_refused() -> None:
    with pytest.raises(TypeError, match="always cached"):
        library.njit(cache=True)


def test_hand_written_kernels_use_it() -> None:
    from jitflow.data import indexed
    from jitflow.kernels import conv, filter_taps, pixel_conv, pool, pool_grad_rows

    for fn in (conv._im2col_rows, pixel_conv._images, filter_taps._parts, pool._max_pool_rows,
               pool._max_pool_grad_parts, pool_grad_rows._parts, *indexed._shuffle_kernels()):
        assert type(fn._cache).__name__ == "KernelCache", fn
        assert Path(fn._cache.cache_path).parent.name == library.LIBRARY_DIR


def _cached_decorators(path: Path) -> list[int]:
    """Lines of decorators (not generated source text) that pass cache=True to Numba."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and any(
                        k.arg == "cache" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in dec.keywords):
                    found.append(dec.lineno)
    return found


def test_no_module_uses_numbas_own_cache() -> None:
    """cache=True decorates only kernel sources that go through the verified store."""
    package = Path(jitflow.__file__).parent
    store_sources = {"ops/philox_kernels.py"}  # handed to get_kernel as text, never imported
    offenders = {rel: lines for path in package.rglob("*.py")
                 if (rel := path.relative_to(package).as_posix()) not in store_sources
                 and (lines := _cached_decorators(path))}
    assert offenders == {}
