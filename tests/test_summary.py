"""tf.summary: summary ops, merging, and event files read back record by record."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import jitflow as tf
from jitflow.summary import summary_iterator


def test_scalar_histogram_merge_and_file_writer(tmp_path):
    x = tf.placeholder(tf.float32, [None])
    with tf.name_scope("stats"):
        s1 = tf.summary.scalar("mean", tf.reduce_mean(x))
    s2 = tf.summary.histogram("values", x)
    merged = tf.summary.merge_all()
    assert tf.get_collection(tf.GraphKeys.SUMMARIES) == [s1, s2]
    vals = np.array([-1.0, 0.0, 0.5, 2.0, 2.0], np.float32)
    with tf.Session() as sess:
        writer = tf.summary.FileWriter(str(tmp_path), sess.graph)
        for step in range(3):
            writer.add_summary(sess.run(merged, {x: vals + step}), step)
        writer.close()
    (path,) = glob.glob(os.path.join(str(tmp_path), "events.out.tfevents.*"))
    events = list(summary_iterator(path))
    assert events[0]["file_version"] == "brain.Event:2"
    assert [e["step"] for e in events[1:]] == [0, 1, 2]
    last = events[-1]["summary"]
    assert last["stats/mean"] == pytest.approx(float((vals + 2).mean()))
    h = last["values"]
    assert h["num"] == 5 and h["min"] == 1.0 and h["max"] == 4.0
    assert h["sum"] == pytest.approx(float((vals + 2).sum()))
    assert sum(h["bucket"]) == 5 and len(h["bucket"]) == len(h["bucket_limit"])
    assert h["bucket_limit"] == sorted(h["bucket_limit"])


def test_merge_all_empty_and_bad_input(tmp_path):
    assert tf.summary.merge_all() is None
    with pytest.raises(ValueError):
        tf.summary.scalar("v", tf.zeros([3]))
    w = tf.summary.FileWriter(str(tmp_path / "logs"))
    with pytest.raises(TypeError):
        w.add_summary("not a summary")
    w.close()
    with pytest.raises(RuntimeError):
        w.add_summary(b"")


def test_corrupted_event_file_is_data_loss(tmp_path):
    w = tf.summary.FileWriter(str(tmp_path))
    with tf.Session() as sess:
        w.add_summary(sess.run(tf.summary.scalar("a", 1.0)), 1)
    w.close()
    (path,) = glob.glob(os.path.join(str(tmp_path), "events.*"))
    data = bytearray(open(path, "rb").read())
    data[-6] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(summary_iterator(path))
