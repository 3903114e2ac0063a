"""The content-keyed compile cache: keys, memory/disk/compile origins, integrity, pruning."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from jitflow.codegen import cache
from jitflow.codegen.cache import key as cache_key
from jitflow.codegen.cache import store as cache_store

# A complete generated module of the kind the code generator emits: eager signature, cache=True.
SOURCE = '''
import numpy as np
from numba import njit


@njit("float64[:](float64[:], float64[:])", cache=True)
def kernel(a, b):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = a[i] * {scale} + np.tanh(b[i])
    return out
'''


def source(scale: float = 2.0) -> str:
    return SOURCE.format(scale=repr(float(scale)))


def expected(scale: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a * scale + np.tanh(b)


A = np.linspace(-2.0, 3.0, 7)
B = np.linspace(1.0, -1.5, 7)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("JITFLOW_CACHE_DIR", str(root))
    monkeypatch.delenv("JITFLOW_DISK_CACHE", raising=False)
    monkeypatch.delenv("JITFLOW_DEBUG", raising=False)
    cache.clear_memory()
    cache.reset_stats()
    yield root
    cache.clear_memory()
    cache.reset_stats()


def get(scale: float = 2.0, parts: dict | None = None):
    return cache.get_kernel(source(scale), "kernel", parts or {"ops": ["Mul", "Tanh", "Add"]},
                            {"ops": ["Mul", "Tanh", "Add"]})


def the_entry(root: Path) -> Path:
    entries = [p for p in root.glob("??/*") if p.is_dir()]
    assert len(entries) == 1, entries
    return entries[0]


# --------------------------------------------------------------------------- keys


def test_key_is_canonical_and_sensitive_to_every_part() -> None:
    base = {"source": "x", "dtypes": ["float32", "int64"], "ranks": (2, 1), "backend": "cpu"}
    k = cache.kernel_key(base)
    assert len(k) == 64 and int(k, 16) >= 0
    assert cache.kernel_key(dict(reversed(list(base.items())))) == k  # insertion order is irrelevant
    assert cache.kernel_key({**base, "ranks": [2, 1]}) == k  # tuples and lists are the same shape
    variants = [{**base, "source": "y"}, {**base, "dtypes": ["float64", "int64"]},
                {**base, "ranks": (2, 2)}, {**base, "backend": "cuda"}, {**base, "extra": None}]
    keys = {cache.kernel_key(v) for v in variants}
    assert len(keys) == len(variants) and k not in keys
    # 1, 1.0 and True must not collide
    assert len({cache.kernel_key({"v": v}) for v in (1, 1.0, True, "1")}) == 4


def test_key_accepts_dtypes_and_rejects_unknown_objects() -> None:
    assert cache.kernel_key({"d": np.dtype("float32")}) == cache.kernel_key({"d": np.float32})
    assert cache.kernel_key({"d": np.dtype("float32")}) != cache.kernel_key({"d": np.dtype("float64")})
    assert cache.kernel_key({"n": np.int64(3)}) == cache.kernel_key({"n": 3})
    with pytest.raises(TypeError, match="cannot key"):
        cache.kernel_key({"obj": object()})
    with pytest.raises(TypeError, match="collide"):
        cache.kernel_key({"m": {1: "a", "1": "b"}})


def test_key_includes_format_version_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = {"source": "x"}
    k = cache.kernel_key(parts)
    env = cache_key._environment()
    assert {"jitflow", "numba", "llvmlite", "numpy", "python", "cpu_name", "cpu_features"} <= set(env)
    monkeypatch.setattr(cache_key, "FORMAT_VERSION", cache.FORMAT_VERSION + 1)
    assert cache.kernel_key(parts) != k
    monkeypatch.undo()
    monkeypatch.setattr(cache_key, "_environment", lambda: {**env, "numba": "0.0.0"})
    assert cache.kernel_key(parts) != k


def test_key_follows_imported_jitflow_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper, inner = tmp_path / "helper.py", tmp_path / "inner.py"
    helper.write_text("from jitflow.fake import inner\n")
    inner.write_text("X = 1\n")
    files = {"jitflow.fake": None, "jitflow.fake.helper": str(helper), "jitflow.fake.inner": str(inner)}
    monkeypatch.setattr(cache_key, "_module_file", lambda name: files.get(name))
    src = "from jitflow.fake import helper\n"
    k = cache.kernel_key({"source": src})
    assert cache.kernel_key({"source": src}) == k
    inner.write_text("X = 2\n")  # a module imported by the helper changed: kernels must not be reused
    os.utime(inner, ns=(1, 1))
    assert cache.kernel_key({"source": src}) != k


# --------------------------------------------------------------------------- origins


def test_compiled_then_memory_then_disk(cache_dir: Path) -> None:
    fn, origin = get(2.0)
    assert origin == "compiled"
    np.testing.assert_allclose(fn(A, B), expected(2.0, A, B), rtol=1e-15)
    fn2, origin2 = get(2.0)
    assert (fn2, origin2) == (fn, "memory")

    entry = the_entry(cache_dir)
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key"] == entry.name and entry.parent.name == entry.name[:2]
    assert meta["description"] == {"ops": ["Mul", "Tanh", "Add"]} and meta["backend"] == "cpu"
    assert (entry / "kernel.py").read_text() == source(2.0)
    assert any(n.endswith(".nbc") for n in meta["files"]) and any(n.endswith(".nbi") for n in meta["files"])
    assert cache.verify() == []

    cache.clear_memory()
    fn3, origin3 = get(2.0)
    assert origin3 == "disk"
    np.testing.assert_allclose(fn3(A, B), expected(2.0, A, B), rtol=1e-15)
    fn4, origin4 = get(3.0)  # a different kernel is not confused with the cached one
    assert origin4 == "compiled"
    np.testing.assert_allclose(fn4(A, B), expected(3.0, A, B), rtol=1e-15)
    stats = cache.cache_stats()
    assert (stats["compiled"], stats["memory_hits"], stats["disk_hits"]) == (2, 1, 1)
    cache.reset_stats()
    assert cache.cache_stats()["compiled"] == 0


def test_numba_cache_dir_setting_does_not_move_object_code(cache_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core import config

    elsewhere = tmp_path / "numba-cache"
    monkeypatch.setattr(config, "CACHE_DIR", str(elsewhere))
    get(4.0)
    assert config.CACHE_DIR == str(elsewhere)
    assert list((the_entry(cache_dir) / "__pycache__").glob("*.nbc"))
    assert not elsewhere.exists()


def _flip_nbc(entry: Path) -> None:
    nbc = next((entry / "__pycache__").glob("*.nbc"))
    data = bytearray(nbc.read_bytes())
    data[len(data) // 2] ^= 0x40
    nbc.write_bytes(bytes(data))


def _truncate_source(entry: Path) -> None:
    (entry / "kernel.py").write_text(source(2.0)[:40])


def _drop_index(entry: Path) -> None:
    next((entry / "__pycache__").glob("*.nbi")).unlink()


def _garble_meta(entry: Path) -> None:
    (entry / "meta.json").write_text('{"key": ')


def _add_stray_index(entry: Path) -> None:
    (entry / "__pycache__" / "kernel.helper-9.py311.nbi").write_bytes(b"not verified")


def _open_to_others(entry: Path) -> None:
    (entry / "__pycache__").chmod(0o777)


@pytest.mark.parametrize("damage", [_flip_nbc, _truncate_source, _drop_index, _garble_meta,
                                    _add_stray_index, _open_to_others])
def test_damaged_entry_warns_once_and_recompiles(cache_dir: Path, damage) -> None:
    get(2.0)
    entry = the_entry(cache_dir)
    damage(entry)
    bad = cache.verify()
    assert [b["key"] for b in bad] == [entry.name] and bad[0]["problem"]
    cache.clear_memory()
    with pytest.warns(RuntimeWarning, match=f"{entry.name[:12]} is corrupt"):
        fn, origin = get(2.0)
    assert origin == "compiled"
    np.testing.assert_allclose(fn(A, B), expected(2.0, A, B), rtol=1e-15)
    assert cache.cache_stats()["corrupt"] == 1
    assert cache.verify() == []  # the rebuilt entry is whole again
    cache.clear_memory()
    assert get(2.0)[1] == "disk"


def test_verify_fix_removes_bad_entries(cache_dir: Path) -> None:
    get(2.0)
    entry = the_entry(cache_dir)
    _flip_nbc(entry)
    bad = cache.verify(fix=True)
    assert bad[0]["removed"] is True
    assert not entry.exists() and cache.verify() == []


def test_unsafe_directory_is_refused_with_one_warning(cache_dir: Path) -> None:
    cache_dir.mkdir(mode=0o700)
    cache_dir.chmod(0o777)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert get(2.0)[1] == "compiled"
        assert get(5.0)[1] == "compiled"
    messages = [str(w.message) for w in caught if "not using compile cache directory" in str(w.message)]
    assert len(messages) == 1 and "writable by other users" in messages[0]
    assert os.listdir(cache_dir) == []


def test_disk_cache_disabled_keeps_kernels_in_memory(cache_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITFLOW_DISK_CACHE", "0")
    fn, origin = get(2.0)
    assert origin == "compiled" and get(2.0) == (fn, "memory")
    np.testing.assert_allclose(fn(A, B), expected(2.0, A, B), rtol=1e-15)
    assert not cache_dir.exists()


def test_losing_the_publish_race_keeps_the_winner(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    get(2.0)
    entry = the_entry(cache_dir)
    before = (entry / "meta.json").read_bytes()
    cache.clear_memory()
    # pretend the entry appeared only after this process looked: it compiles, then finds it taken
    monkeypatch.setattr(cache_store, "_load_from_disk", lambda *a: None)
    fn, origin = get(2.0)
    assert origin == "compiled"
    np.testing.assert_allclose(fn(A, B), expected(2.0, A, B), rtol=1e-15)
    assert (entry / "meta.json").read_bytes() == before
    assert cache.verify() == [] and os.listdir(cache_dir / "tmp") == []


def test_compile_errors_are_reported_and_leave_nothing(cache_dir: Path) -> None:
    with pytest.raises(cache.KernelCompileError, match="failed to compile"):
        cache.get_kernel("from numba import njit\n@njit('int64(int64)', cache=True)\ndef k(x):\n"
                         "    return undefined_name + x\n", "k", {}, {})
    with pytest.raises(cache.KernelCompileError, match="defines no callable 'missing'"):
        cache.get_kernel(source(2.0), "missing", {}, {})
    assert cache.list_entries() == [] and os.listdir(cache_dir / "tmp") == []


def test_prune_is_lru_and_clear_empties(cache_dir: Path) -> None:
    keys = {}
    for age, scale in ((3 * 86400, 1.0), (2 * 3600, 2.0), (0, 3.0)):
        get(scale)
        new = {e["key"] for e in cache.list_entries()} - set(keys.values())
        keys[age] = new.pop()
        t = os.path.getmtime(cache.entry_path(keys[age])) - age
        os.utime(cache.entry_path(keys[age]), (t, t))
        meta_path = Path(cache.entry_path(keys[age])) / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["last_used"] = t
        meta_path.write_text(json.dumps(meta))
    assert [e["key"] for e in cache.list_entries()] == [keys[0], keys[7200], keys[3 * 86400]]
    out = cache.prune(older_than_s=86400)
    assert out["removed"] == [keys[3 * 86400]] and out["remaining"] == 2
    newest_size = next(e["size"] for e in cache.list_entries() if e["key"] == keys[0])
    out = cache.prune(max_size=newest_size)
    assert out["removed"] == [keys[7200]] and [e["key"] for e in cache.list_entries()] == [keys[0]]
    assert cache.clear()["removed"] == 1 and cache.list_entries() == []
    with pytest.raises(ValueError):
        cache.prune(max_size=-1)


def test_entry_info_and_prefix_lookup(cache_dir: Path) -> None:
    get(2.0)
    key = cache.list_entries()[0]["key"]
    info = cache.entry_info(key[:10])
    assert info["key"] == key and info["problem"] is None and "kernel.py" in info["files"]
    with pytest.raises(KeyError, match="no cache entry"):
        cache.entry_info("f" * 64 if not key.startswith("f") else "0" * 64)
    with pytest.raises(KeyError, match="not a cache key"):
        cache.entry_info("../x")


def test_debug_levels_print_events_and_source(cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JITFLOW_DEBUG", "1")
    get(6.0)
    get(6.0)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "compiled in" in err[0] and "from memory" in err[1]
    monkeypatch.setenv("JITFLOW_DEBUG", "4")
    cache.clear_memory()
    get(6.0)
    err = capsys.readouterr().err
    assert "loaded from disk" in err and "def kernel(a, b):" in err


def test_a_full_disk_costs_the_cache_not_the_kernel(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(path: str, obj: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_store, "_write_json_atomic", no_space)
    with pytest.warns(RuntimeWarning, match="cannot store compiled kernels"):
        fn, origin = get(7.0)
    assert origin == "compiled"
    np.testing.assert_allclose(fn(A, B), expected(7.0, A, B), rtol=1e-15)
    assert cache.list_entries() == [] and os.listdir(cache_dir / "tmp") == []


def test_philox_kernels_live_in_the_compile_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jitflow.ops import philox

    monkeypatch.setenv("JITFLOW_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(philox, "_KERNELS", {})
    cache.clear_memory()
    first = philox.normal(philox.PhiloxState(1, 2), 5, np.dtype(np.float32))
    entries = [e for e in cache.list_entries() if e["description"].get("ops") == ["Philox4x32-10"]]
    assert len(entries) == 1 and entries[0]["path"].startswith(str(tmp_path))
    assert cache.clear()["removed"] >= 1 and not cache.list_entries()  # `jitflow cache clear` reaches them
    monkeypatch.setattr(philox, "_KERNELS", {})
    cache.clear_memory()
    np.testing.assert_array_equal(philox.normal(philox.PhiloxState(1, 2), 5, np.dtype(np.float32)), first)
