"""tf.train.Saver: save/restore through the session's variable store, bookkeeping, errors, TF interop."""
from __future__ import annotations

import os
import pathlib
import shutil
import time

import numpy as np
import pytest

import jitflow as tf
from jitflow.train.checkpoint import state as cs

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tf_checkpoint"


def _vars() -> tuple[tf.Variable, tf.Variable]:
    a = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="a")
    with tf.variable_scope("scope"):
        b = tf.Variable(np.array([1, 2, 3], np.int64), name="b")
    return a, b


def test_save_restore_roundtrip_and_files(tmp_path: pathlib.Path) -> None:
    a, b = _vars()
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(tf.assign(a, a * 10.0))
        path = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=7)
    assert path == str(tmp_path / "model.ckpt-7")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.ckpt-7.data-00000-of-00001",
                                            "model.ckpt-7.index", "model.ckpt-7.meta"]
    r = tf.train.load_checkpoint(path)
    assert sorted(r.get_variable_to_shape_map()) == ["a", "scope/b"]
    with tf.Session() as sess:
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(a), np.arange(6, dtype=np.float32).reshape(2, 3) * 10)
        got = sess.run(b)
        assert got.dtype == np.int64 and got.tolist() == [1, 2, 3]
        assert sess.run(tf.report_uninitialized_variables()).size == 0  # restoring initializes


def test_global_step_as_variable_or_tensor_and_padding(tmp_path: pathlib.Path) -> None:
    gs = tf.Variable(42, dtype=tf.int64, name="global_step", trainable=False)
    saver = tf.train.Saver(pad_step_number=True)
    with tf.Session() as sess:
        sess.run(gs.initializer)
        assert saver.save(sess, str(tmp_path / "m"), global_step=gs) == str(tmp_path / "m-00000042")
        assert saver.save(sess, str(tmp_path / "m"), global_step=gs + 1) == str(tmp_path / "m-00000043")


def test_var_list_forms_and_duplicates(tmp_path: pathlib.Path) -> None:
    a, b = _vars()
    with pytest.raises(ValueError, match="same name"):
        tf.train.Saver([a, a])
    with pytest.raises(TypeError):
        tf.train.Saver({"x": tf.constant(1.0)})
    with pytest.raises(ValueError, match="No variables to save"):
        tf.train.Saver([])
    s = tf.train.Saver({"renamed": b})
    with tf.Session() as sess:
        sess.run(b.initializer)
        p = s.save(sess, str(tmp_path / "r"), write_meta_graph=False)
        assert list(tf.train.load_checkpoint(p).get_variable_to_shape_map()) == ["renamed"]
        assert not os.path.exists(p + ".meta")
        sess.run(tf.assign(b, [7, 8, 9]))
        s.restore(sess, p)
        assert sess.run(b).tolist() == [1, 2, 3]


def test_uninitialized_variable_save_fails_and_writes_nothing(tmp_path: pathlib.Path) -> None:
    _vars()
    saver = tf.train.Saver()
    with tf.Session() as sess, pytest.raises(tf.errors.FailedPreconditionError):
        saver.save(sess, str(tmp_path / "m"))
    assert os.listdir(tmp_path) == []


def test_restore_errors(tmp_path: pathlib.Path) -> None:
    a, b = _vars()
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        p = saver.save(sess, str(tmp_path / "m"))
        with pytest.raises(ValueError, match="not a valid checkpoint"):
            saver.restore(sess, str(tmp_path / "missing"))
        with pytest.raises(ValueError):
            saver.restore(sess, None)
    tf.reset_default_graph()
    tf.Variable(np.zeros((3, 2), np.float32), name="a")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError) as ei:
        tf.train.Saver().restore(sess, p)
    assert "a" in str(ei.value) and "[3,2]" in str(ei.value) and "[2,3]" in str(ei.value)
    tf.reset_default_graph()
    tf.Variable(np.zeros((2, 3), np.float64), name="a")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        tf.train.Saver().restore(sess, p)
    tf.reset_default_graph()
    c = tf.Variable(1.0, name="not_in_file")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.NotFoundError, match="not_in_file"):
            tf.train.Saver().restore(sess, p)
        with pytest.raises(tf.errors.FailedPreconditionError):
            sess.run(c)  # a failed restore sets nothing


def test_reshape_option(tmp_path: pathlib.Path) -> None:
    a = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="a")
    with tf.Session() as sess:
        sess.run(a.initializer)
        p = tf.train.Saver().save(sess, str(tmp_path / "m"))
    tf.reset_default_graph()
    a2 = tf.Variable(np.zeros((3, 2), np.float32), name="a")
    with tf.Session() as sess:
        tf.train.Saver(reshape=True).restore(sess, p)
        np.testing.assert_array_equal(sess.run(a2), np.arange(6, dtype=np.float32).reshape(3, 2))


def test_max_to_keep_deletes_oldest_and_updates_state(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(0.0, name="w")
    bump = tf.assign_add(w, 1.0)
    saver = tf.train.Saver(max_to_keep=2)
    prefix = str(tmp_path / "m")
    with tf.Session() as sess:
        sess.run(w.initializer)
        for step in range(1, 5):
            sess.run(bump)
            saver.save(sess, prefix, global_step=step)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".index")) == ["m-3.index", "m-4.index"]
    assert not any(n.startswith(("m-1.", "m-2.")) for n in os.listdir(tmp_path))
    assert saver.last_checkpoints == [f"{prefix}-3", f"{prefix}-4"]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state is not None and state.all_model_checkpoint_paths == [f"{prefix}-3", f"{prefix}-4"]
    assert tf.train.load_checkpoint(str(tmp_path)).get_tensor("w") == 4.0


def test_max_to_keep_zero_or_none_keeps_everything(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(0.0, name="w")
    saver = tf.train.Saver(max_to_keep=None)
    with tf.Session() as sess:
        sess.run(w.initializer)
        for step in range(7):
            saver.save(sess, str(tmp_path / "m"), global_step=step)
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".index")]) == 7
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "m-6")


def test_keep_checkpoint_every_n_hours(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    w = tf.Variable(0.0, name="w")
    saver = tf.train.Saver(max_to_keep=1, keep_checkpoint_every_n_hours=1.0)
    with tf.Session() as sess:
        sess.run(w.initializer)
        for step in range(6):  # one save every 40 minutes
            saver.save(sess, str(tmp_path / "m"), global_step=step)
            clock[0] += 2400
    kept = sorted(int(n[2:-6]) for n in os.listdir(tmp_path) if n.endswith(".index"))
    # Saved at 0, 40, 80, 120, 160, 200 min. A checkpoint pushed out by max_to_keep survives if it was
    # saved after the next keep mark (first mark 60 min, then +60 min from the mark): 80 → next 120,
    # 160 → next 180; plus the newest (200).
    assert kept == [2, 4, 5], kept


def test_state_file_with_relative_paths(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(0.0, name="w")
    saver = tf.train.Saver(save_relative_paths=True)
    with tf.Session() as sess:
        sess.run(w.initializer)
        saver.save(sess, str(tmp_path / "m"), global_step=1)
    assert cs.parse((tmp_path / "checkpoint").read_text()).model_checkpoint_path == "m-1"
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    shutil.copytree(tmp_path, moved)
    assert tf.train.latest_checkpoint(str(moved)) == str(moved / "m-1")


def test_save_errors(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(0.0, name="w")
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(w.initializer)
        (tmp_path / "afile").write_text("")
        with pytest.raises(ValueError, match="Parent directory"):  # the parent is a file
            saver.save(sess, str(tmp_path / "afile" / "m"))
        # a missing directory is created, as TF's V2 save does
        assert saver.save(sess, str(tmp_path / "new" / "dir" / "m")) == str(tmp_path / "new" / "dir" / "m")
        assert tf.train.checkpoint_exists(str(tmp_path / "new" / "dir" / "m"))
        with pytest.raises(ValueError, match="path components"):
            saver.save(sess, str(tmp_path / "m"), latest_filename="a/b")
        with pytest.raises(TypeError, match="Session"):
            saver.save(object(), str(tmp_path / "m"))


def test_restores_tf_written_checkpoint() -> None:
    exp = dict(np.load(DATA / "expected.npz"))
    variables = {}
    for key, value in exp.items():
        name = key.replace("__", "/")
        variables[name] = tf.Variable(np.zeros_like(value), name=name)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        saver.restore(sess, str(DATA / "model.ckpt-3"))
        for name, v in variables.items():
            got = sess.run(v)
            want = exp[name.replace("/", "__")]
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_written_checkpoint_matches_tf_bytes(tmp_path: pathlib.Path) -> None:
    # The same variables and values as TF's fixture give byte-identical .index and .data files.
    exp = dict(np.load(DATA / "expected.npz"))
    for key, value in exp.items():
        tf.Variable(value, name=key.replace("__", "/"))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        p = tf.train.Saver().save(sess, str(tmp_path / "model.ckpt"), global_step=3)
    for suffix in (".index", ".data-00000-of-00001"):
        assert pathlib.Path(p + suffix).read_bytes() == (DATA / f"model.ckpt-3{suffix}").read_bytes()


def test_sessions_have_independent_values(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(1.0, name="w")
    saver = tf.train.Saver()
    s1, s2 = tf.Session(), tf.Session()
    s1.run(w.initializer)
    s1.run(tf.assign(w, 5.0))
    p = saver.save(s1, str(tmp_path / "m"))
    saver.restore(s2, p)
    s1.run(tf.assign(w, 9.0))
    assert s2.run(w) == 5.0 and s1.run(w) == 9.0


def test_meta_graph_reused_while_graph_unchanged(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(1.0, name="w")
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(w.initializer)
        p1 = saver.save(sess, str(tmp_path / "m"), global_step=1)
        p2 = saver.save(sess, str(tmp_path / "m"), global_step=2)
        assert os.stat(p1 + ".meta").st_ino == os.stat(p2 + ".meta").st_ino  # hard link, no rewrite
        ino = os.stat(p2 + ".meta").st_ino
        assert saver.save(sess, str(tmp_path / "m"), global_step=2) == p2
        assert os.stat(p2 + ".meta").st_ino == ino  # the same prefix again: left as it is
        tf.add_to_collection("extra", w)  # a collection change must show up in the next export
        p3 = saver.save(sess, str(tmp_path / "m"), global_step=3)
        assert os.stat(p3 + ".meta").st_ino != os.stat(p2 + ".meta").st_ino
        tf.constant(2.0, name="later")
        p4 = saver.save(sess, str(tmp_path / "m"), global_step=4)
    tf.reset_default_graph()
    tf.train.import_meta_graph(p3 + ".meta")
    assert [v.op.name for v in tf.get_collection("extra")] == ["w"]
    tf.reset_default_graph()
    tf.train.import_meta_graph(p4 + ".meta")
    assert tf.get_default_graph().get_operation_by_name("later").type == "Const"


def test_concurrent_saves_keep_consistent_bookkeeping(tmp_path: pathlib.Path) -> None:
    import threading

    w = tf.Variable(np.zeros(1000, np.float32), name="w")
    saver = tf.train.Saver(max_to_keep=3)
    with tf.Session() as sess:
        sess.run(w.initializer)

        def work(first: int) -> None:
            for step in range(first, first + 20, 4):
                saver.save(sess, str(tmp_path / "m"), global_step=step)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    kept = saver.last_checkpoints
    assert len(kept) == 3
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state is not None and state.all_model_checkpoint_paths == kept
    on_disk = sorted(str(tmp_path / n[:-6]) for n in os.listdir(tmp_path) if n.endswith(".index"))
    assert on_disk == sorted(kept)


def test_saver_from_saver_def(tmp_path: pathlib.Path) -> None:
    a, b = _vars()
    original = tf.train.Saver({"k": b}, max_to_keep=7, pad_step_number=True)
    copy = tf.train.Saver(saver_def=original.saver_def)
    assert copy.saver_def == original.saver_def
    with tf.Session() as sess:
        sess.run(b.initializer)
        p = copy.save(sess, str(tmp_path / "m"), global_step=3)
    assert p.endswith("m-00000003") and list(tf.train.load_checkpoint(p).get_variable_to_shape_map()) == ["k"]
    with pytest.raises(TypeError):
        tf.train.Saver(saver_def="not a saver def")
