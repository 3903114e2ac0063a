"""tf.gfile / tf.io.gfile on the local filesystem, with TF's error classes."""
from __future__ import annotations

from pathlib import Path

import pytest

import jitflow as tf


def test_write_read_lines_and_binary(tmp_path: Path) -> None:
    p = str(tmp_path / "a.txt")
    with tf.gfile.GFile(p, "w") as f:
        f.write("one\ntwo\n")
    with tf.gfile.GFile(p) as f:
        assert f.read() == "one\ntwo\n"
    assert list(tf.gfile.GFile(p)) == ["one\n", "two\n"]
    with tf.io.gfile.GFile(p, "ab") as f:
        f.write("three")  # str is encoded in binary mode, as TF does
    with tf.gfile.FastGFile(p, "rb") as f:
        assert f.read() == b"one\ntwo\nthree"
    assert tf.gfile.Stat(p).length == 13 and not tf.gfile.Stat(p).is_directory


def test_directories_glob_copy_rename_remove(tmp_path: Path) -> None:
    d = str(tmp_path / "x" / "y")
    tf.gfile.MakeDirs(d)
    tf.gfile.MakeDirs(d)  # already there: fine
    assert tf.gfile.IsDirectory(d) and tf.io.gfile.isdir(d)
    with pytest.raises(tf.errors.AlreadyExistsError):
        tf.gfile.MkDir(d)
    for name in ("m.ckpt.index", "m.ckpt.data", "other"):
        with tf.gfile.GFile(f"{d}/{name}", "w") as f:
            f.write(name)
    assert sorted(tf.gfile.ListDirectory(d)) == ["m.ckpt.data", "m.ckpt.index", "other"]
    assert tf.gfile.Glob(f"{d}/m.ckpt*") == [f"{d}/m.ckpt.data", f"{d}/m.ckpt.index"]
    tf.gfile.Copy(f"{d}/other", f"{d}/copy")
    with pytest.raises(tf.errors.AlreadyExistsError):
        tf.gfile.Copy(f"{d}/other", f"{d}/copy")
    tf.gfile.Copy(f"{d}/other", f"{d}/copy", overwrite=True)
    with pytest.raises(tf.errors.AlreadyExistsError):
        tf.gfile.Rename(f"{d}/copy", f"{d}/other")
    tf.gfile.Rename(f"{d}/copy", f"{d}/moved")
    assert tf.gfile.Exists(f"{d}/moved") and not tf.gfile.Exists(f"{d}/copy")
    tf.gfile.Remove(f"{d}/moved")
    tf.io.gfile.rmtree(str(tmp_path / "x"))
    assert not tf.io.gfile.exists(str(tmp_path / "x"))


@pytest.mark.parametrize("call", [
    lambda p: tf.gfile.GFile(p).read(),
    lambda p: tf.gfile.ListDirectory(p),
    lambda p: tf.gfile.Remove(p),
    lambda p: tf.gfile.DeleteRecursively(p),
    lambda p: tf.gfile.Rename(p, p + "2"),
    lambda p: tf.gfile.Copy(p, p + "2"),
    lambda p: tf.gfile.Stat(p),
])
def test_missing_path_is_not_found(tmp_path: Path, call: object) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(tf.errors.NotFoundError, match="missing"):
        call(missing)  # type: ignore[operator]


def test_bad_mode_and_path_type() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="mode"):
        tf.gfile.GFile("/tmp/x", "q")
    with pytest.raises(TypeError, match="path"):
        tf.gfile.Exists(3)
