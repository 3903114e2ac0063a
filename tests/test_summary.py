"""tf.summary: summary ops, merging, and event files read back record by record."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert [e["step"] for e in events[1:] if "summary" in e] == [0, 1, 2]  # after the graph event
    last = events[-1]["summary"]
    # TF names the summary by its unique scope: "stats/Mean" (the reduce op) takes "stats/mean"
    assert s1.op.name == "stats/mean_1"
    assert last["stats/mean_1"] == pytest.approx(float((vals + 2).mean()))
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


def test_monitored_training_session_writes_summaries(tmp_path):
    from jitflow.summary import FileWriterCache

    gs = tf.train.get_or_create_global_step()
    v = tf.Variable(0.0, name="v")
    train = tf.group(tf.assign_add(gs, 1), tf.assign_add(v, 2.0))
    tf.summary.scalar("v", v)
    with tf.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path), save_summaries_steps=5,
                                           save_checkpoint_secs=None,
                                           hooks=[tf.train.StopAtStepHook(last_step=12)]) as sess:
        while not sess.should_stop():
            sess.run(train)
    FileWriterCache.clear()
    (path,) = glob.glob(os.path.join(str(tmp_path), "events.out.tfevents.*"))
    # the variable "v" holds the name, so TF tags its summary "v_1"
    steps = [(e["step"], e["summary"]["v_1"]) for e in summary_iterator(path) if "summary" in e]
    # As TF's hook: the step after the first run, then every 5 steps (the real step, read after the run).
    assert [s for s, _ in steps] == [1, 6, 11]
    # the summary runs with the train op of step s: it sees v before or after that step's update
    assert all(val in (2.0 * s - 2.0, 2.0 * s) for s, val in steps)


def test_summary_saver_hook_arguments():
    with pytest.raises(ValueError):
        tf.train.SummarySaverHook(save_steps=1, output_dir="/tmp/x")
    with pytest.raises(ValueError):
        tf.train.SummarySaverHook(save_steps=1, summary_op=tf.constant(b""))


def _reference_histogram(values):
    """TF's HistogramProto buckets the plain way: a binary search per value, empty runs collapsed in a loop."""
    from jitflow.summary import _LIMITS

    counts = np.zeros(len(_LIMITS))
    for x in np.asarray(values, np.float64).reshape(-1):
        counts[min(int(np.searchsorted(_LIMITS, x, side="right")), len(_LIMITS) - 1)] += 1
    limits, buckets, i = [], [], 0
    while i < len(counts):
        end, count = _LIMITS[i], counts[i]
        i += 1
        if count <= 0:
            while i < len(counts) and counts[i] <= 0:
                end, count = _LIMITS[i], counts[i]
                i += 1
        limits.append(end)
        buckets.append(count)
    return limits, buckets


_EDGES = st.sampled_from([0.0, -0.0, 1e-12, -1e-12, 5e-324, -5e-324, 1.1e-12, np.finfo(np.float64).max,
                          -np.finfo(np.float64).max, 1.0, -1.0, 3.0e19])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False), _EDGES), max_size=300),
       st.booleans())
def test_histogram_buckets_match_a_binary_search(values, as_float32):
    from jitflow.summary import histogram_value, parse_summary

    v = np.array(values, np.float64)
    if as_float32:
        v = v[np.abs(v) < 3e38].astype(np.float32)
    limits, buckets = _reference_histogram(v)
    h = parse_summary(histogram_value("w", v))["w"]
    assert h["bucket_limit"] == limits and h["bucket"] == buckets


def test_values_next_to_every_limit_fall_on_its_sides():
    from jitflow.summary import _LIMITS_ARR, histogram_value, parse_summary

    inner = _LIMITS_ARR[1:-1]
    near = np.concatenate([inner, np.nextafter(inner, np.inf), np.nextafter(inner, -np.inf)])
    assert parse_summary(histogram_value("n", near))["n"]["bucket"] == _reference_histogram(near)[1]
