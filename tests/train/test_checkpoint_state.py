"""The `checkpoint` state file, atomic writes, and the graph-free reader API."""
from __future__ import annotations

import os
import pathlib
import shutil
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow.dtypes as dtypes
import jitflow.errors as errors
from jitflow.train import checkpoint as ckpt
from jitflow.train.checkpoint import atomic
from jitflow.train.checkpoint import state as cs

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tf_checkpoint"


def test_parses_tf_state_file_and_writes_it_back_identically() -> None:
    text = (DATA / "checkpoint").read_text()
    s = cs.parse(text)
    assert s.model_checkpoint_path == "model.ckpt-3"
    assert s.all_model_checkpoint_paths == ["model.ckpt-2", "model.ckpt-3"]
    assert cs.to_text(s) == text


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=20), st.lists(st.text(max_size=20), max_size=4),
       st.lists(st.floats(min_value=0, max_value=2e9), max_size=3))
def test_state_text_roundtrip(path: str, others: list[str], stamps: list[float]) -> None:
    s = cs.CheckpointState(path, others, stamps, 12.5)
    assert cs.parse(cs.to_text(s)) == s


def test_quotes_are_escaped() -> None:
    text = cs.to_text(cs.CheckpointState('a"b\\c'))
    assert text == 'model_checkpoint_path: "a\\"b\\\\c"\n'


def test_parse_is_lenient_about_layout_but_strict_about_fields() -> None:
    s = cs.parse("# comment\n  model_checkpoint_path :'a' \"b\"; all_model_checkpoint_paths: \"\\x41\\101\"")
    assert s.model_checkpoint_path == "ab" and s.all_model_checkpoint_paths == ["AA"]
    for bad in ['model_checkpoint_path "a"', 'unknown: "x"', "model_checkpoint_path: 3",
                'model_checkpoint_path: "open', 'last_preserved_timestamp: "x"']:
        with pytest.raises(cs.ParseError):
            cs.parse(bad)


def _fixture_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "ck"
    shutil.copytree(DATA, d)
    return d


def test_get_checkpoint_state_resolves_relative_paths(tmp_path: pathlib.Path) -> None:
    d = _fixture_dir(tmp_path)
    s = ckpt.get_checkpoint_state(str(d))
    assert s is not None
    assert s.model_checkpoint_path == str(d / "model.ckpt-3")
    assert s.all_model_checkpoint_paths == [str(d / "model.ckpt-2"), str(d / "model.ckpt-3")]
    assert ckpt.latest_checkpoint(str(d)) == str(d / "model.ckpt-3")


def test_state_missing_malformed_or_empty(tmp_path: pathlib.Path) -> None:
    assert ckpt.get_checkpoint_state(str(tmp_path)) is None
    assert ckpt.latest_checkpoint(str(tmp_path)) is None
    (tmp_path / "checkpoint").write_text("garbage here")
    assert ckpt.get_checkpoint_state(str(tmp_path)) is None
    (tmp_path / "checkpoint").write_text('all_model_checkpoint_paths: "x"\n')
    with pytest.raises(ValueError, match="Invalid checkpoint state"):
        ckpt.get_checkpoint_state(str(tmp_path))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone"\n')
    assert ckpt.latest_checkpoint(str(tmp_path)) is None  # recorded but its files are missing


def test_update_state_relative_and_absolute(tmp_path: pathlib.Path) -> None:
    d = str(tmp_path)
    ckpt.update_checkpoint_state(d, os.path.join(d, "m-2"), [os.path.join(d, "m-1")],
                                 save_relative_paths=True)
    assert (tmp_path / "checkpoint").read_text() == (
        'model_checkpoint_path: "m-2"\n'
        'all_model_checkpoint_paths: "m-1"\nall_model_checkpoint_paths: "m-2"\n')
    ckpt.update_checkpoint_state(d, os.path.join(d, "m-3"), latest_filename="other")
    s = ckpt.get_checkpoint_state(d, "other")
    assert s is not None and s.all_model_checkpoint_paths == [os.path.join(d, "m-3")]
    with pytest.raises(RuntimeError, match="conflicts"):
        ckpt.update_checkpoint_state(d, os.path.join(d, "checkpoint"))


def test_update_state_with_relative_save_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.makedirs("run")
    ckpt.update_checkpoint_state("run", "run/model.ckpt-5", ["run/model.ckpt-4", "run/model.ckpt-5"])
    assert 'model_checkpoint_path: "model.ckpt-5"' in (tmp_path / "run" / "checkpoint").read_text()
    s = ckpt.get_checkpoint_state("run")
    assert s is not None and s.model_checkpoint_path == os.path.join("run", "model.ckpt-5")


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "f"
    atomic.write_atomic(str(p), b"one")
    atomic.write_atomic(str(p), b"two")
    assert p.read_bytes() == b"two" and os.listdir(tmp_path) == ["f"]


def test_reader_api_on_tf_fixture(tmp_path: pathlib.Path) -> None:
    d = _fixture_dir(tmp_path)
    r = ckpt.NewCheckpointReader(str(d / "model.ckpt-3"))
    assert r.has_tensor("conv1/weights") and not r.has_tensor("nope")
    shapes = r.get_variable_to_shape_map()
    assert shapes["conv1/weights"] == [5, 5, 3, 8] and shapes["counter"] == []
    dt = r.get_variable_to_dtype_map()
    assert dt["half"] is dtypes.float16 and dt["flags"] is dtypes.bool and dt["global_step"] is dtypes.int64
    assert r.get_tensor("counter") == 10 and np.ndim(r.get_tensor("counter")) == 0
    with pytest.raises(errors.NotFoundError, match="missing_var"):
        r.get_tensor("missing_var")
    assert ckpt.load_checkpoint(str(d)).get_tensor("global_step") == 3  # a directory → its latest
    names = [n for n, _ in ckpt.list_variables(str(d / "model.ckpt-2"))]
    assert names == sorted(shapes)
    assert ckpt.load_variable(str(d), "weight:0").shape == (1,)
    assert b"conv1/weights (DT_FLOAT) [5,5,3,8]" in r.debug_string()  # TF's format


def test_reader_missing_paths(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.NotFoundError, match="matching files"):
        ckpt.NewCheckpointReader(str(tmp_path / "model.ckpt-9"))
    with pytest.raises(ValueError, match="Couldn't find 'checkpoint'"):
        ckpt.load_checkpoint(str(tmp_path))
    assert not ckpt.checkpoint_exists(str(tmp_path / "model.ckpt-9"))
    assert ckpt.checkpoint_exists(str(DATA / "model.ckpt-2"))


def test_discard_removes_name_at_once_and_file_soon(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "model.ckpt-1.data-00000-of-00001"
    p.write_bytes(b"x" * 100)
    atomic.discard(str(p))
    assert not any(n.startswith("model.ckpt") for n in os.listdir(tmp_path))
    for t in threading.enumerate():
        if t.name == "jitflow-discard":
            t.join()
    assert os.listdir(tmp_path) == []
    atomic.discard(str(tmp_path / "missing"))  # nothing to do, no error


def test_replace_keeping_old(tmp_path: pathlib.Path) -> None:
    target, new = tmp_path / "f", tmp_path / "n"
    target.write_bytes(b"old")
    new.write_bytes(b"new")
    old = atomic.replace_keeping_old(str(new), str(target))
    assert target.read_bytes() == b"new" and old is not None and pathlib.Path(old).read_bytes() == b"old"
    assert atomic.replace_keeping_old(str(target), str(tmp_path / "absent")) is None


def test_remove_checkpoint_and_mtimes(tmp_path: pathlib.Path) -> None:
    for name in ("m-1.index", "m-1.data-00000-of-00001", "m-1.meta", "m-10.index", "m-1x"):
        (tmp_path / name).write_bytes(b"x")
    assert len(ckpt.get_checkpoint_mtimes([str(tmp_path / "m-1"), str(tmp_path / "gone")])) == 1
    ckpt.remove_checkpoint(str(tmp_path / "m-1"))
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == ["m-10.index", "m-1x"]
