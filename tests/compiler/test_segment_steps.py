"""UnsortedSegmentSum's plan step (`compiler/segment_steps.py`): a buffer kept across runs, of which each run
clears only the rows the previous one wrote. Run after run, with the ids, the batch and the segment count
changing, its sums must equal the interpreter's; an id out of range gives TF's error and the next run is
right again."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler.segment_steps import SegmentSumStep
from tests.compiler.helpers import last_plan


def _graph(dtype: type, itype: type) -> tuple[tuple, object]:
    data = tf.placeholder(tf.as_dtype(dtype), [None, 3, 4])
    ids = tf.placeholder(tf.as_dtype(itype), [None])
    n = tf.placeholder(tf.int32, [])
    total = tf.unsorted_segment_sum(data, ids, n)
    return (data, ids, n), total * 2.0  # read by a kernel: the step's buffer is not the fetched value


@pytest.mark.parametrize("dtype,itype", [(np.float32, np.int32), (np.float64, np.int64)])
def test_segment_sums_stay_right_run_after_run(dtype: type, itype: type) -> None:
    (data, ids, n), out = _graph(dtype, itype)
    rng = np.random.default_rng(1)
    with tf.Session() as sess, tf.Session(config=tf.ConfigProto(jit=False)) as ref:
        runs = [(6, 10), (6, 10), (9, 10), (4, 10), (4, 7), (6, 10), (0, 10), (5, 10)]
        for m, segs in runs:
            feed = {data: rng.normal(size=(m, 3, 4)).astype(dtype),
                    ids: rng.integers(-1, segs, m).astype(itype), n: segs}
            got, want = sess.run(out, feed), ref.run(out, feed)
            np.testing.assert_array_equal(got, want)
        assert any(isinstance(s, SegmentSumStep) for s in last_plan(sess).steps)


def test_an_id_out_of_range_raises_and_the_next_run_is_right() -> None:
    (data, ids, n), out = _graph(np.float32, np.int32)
    dv = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with tf.Session() as sess:
        first = sess.run(out, {data: dv, ids: [1, 1], n: 3})
        np.testing.assert_array_equal(first[1], 2.0 * (dv[0] + dv[1]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="segment_ids"):
            sess.run(out, {data: dv, ids: [2, 3], n: 3})  # row 2 written before id 3 is found
        again = sess.run(out, {data: dv, ids: [0, -1], n: 3})
    np.testing.assert_array_equal(again, np.stack([2.0 * dv[0], np.zeros((3, 4)), np.zeros((3, 4))]))


def test_a_fetched_segment_sum_is_the_callers_own() -> None:
    data = tf.placeholder(tf.float32, [None, 2])
    ids = tf.placeholder(tf.int32, [None])
    total = tf.unsorted_segment_sum(data, ids, 4)
    with tf.Session() as sess:
        a = sess.run(total, {data: np.ones((3, 2), np.float32), ids: [0, 0, 3]})
        b = sess.run(total, {data: np.ones((1, 2), np.float32), ids: [1]})
    np.testing.assert_array_equal(a, [[2, 2], [0, 0], [0, 0], [1, 1]])
    np.testing.assert_array_equal(b, [[0, 0], [1, 1], [0, 0], [0, 0]])
