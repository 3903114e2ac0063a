"""Queues, queue runners, input producers and readers: results, ends of input, and no hangs."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import jitflow as tf

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "tfrecord", "examples.tfrecord")


def run_in_thread(fn):
    """Starts `fn` in a thread; returns (thread, box) where box gets its result or exception."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def test_fifo_queue_operations_and_close():
    q = tf.FIFOQueue(5, [tf.int32, tf.float32], shapes=[[], [2]])
    enq = q.enqueue_many([[1, 2, 3], [[1, 2], [3, 4], [5, 6]]])
    one, many, up_to = q.dequeue(), q.dequeue_many(2), q.dequeue_up_to(10)
    assert many[1].shape.as_list() == [2, 2] and up_to[1].shape.as_list() == [None, 2]
    with tf.Session() as sess:
        sess.run(enq)
        sess.run(q.enqueue((4, [7.0, 8.0])))
        assert sess.run(q.size()) == 4
        a, b = sess.run(one)
        assert a == 1 and list(b) == [1.0, 2.0]
        a, b = sess.run(many)
        assert list(a) == [2, 3]
        sess.run(q.close())
        assert sess.run(q.is_closed())
        a, _ = sess.run(up_to)  # a closed queue hands out what is left
        assert list(a) == [4]
        t0 = time.monotonic()
        with pytest.raises(tf.errors.OutOfRangeError, match="closed and has insufficient elements"):
            sess.run(one)
        assert time.monotonic() - t0 < 1.0
        with pytest.raises(tf.errors.CancelledError):
            sess.run(q.enqueue((5, [0.0, 0.0])))
        with pytest.raises(tf.errors.InvalidArgumentError, match="Shape mismatch"):
            tf.Session().run(q.enqueue((5, [0.0, 0.0, 1.0])))


def test_blocked_ops_end_when_the_session_closes():
    q = tf.FIFOQueue(1, tf.int32, shapes=[[]])
    deq = q.dequeue()
    enq = q.enqueue(1)
    sess = tf.Session()
    t, box = run_in_thread(lambda: sess.run(deq))
    sess2 = tf.Session()
    sess2.run(enq)
    t2, box2 = run_in_thread(lambda: sess2.run(enq))  # full queue: blocks
    time.sleep(0.2)
    assert t.is_alive() and t2.is_alive()
    sess.close()
    sess2.close()
    t.join(5)
    t2.join(5)
    assert not t.is_alive() and not t2.is_alive()
    assert isinstance(box["error"], tf.errors.CancelledError)
    assert isinstance(box2["error"], tf.errors.CancelledError)


def test_random_shuffle_queue_is_a_seeded_permutation():
    def run():
        tf.reset_default_graph()
        q = tf.RandomShuffleQueue(20, 0, tf.int64, shapes=[[]], seed=5)
        sess = tf.Session()
        sess.run(q.enqueue_many([np.arange(10)]))
        return list(sess.run(q.dequeue_many(10)))

    a = run()
    assert sorted(a) == list(range(10)) and a != list(range(10)) and a == run()


def test_random_shuffle_queue_keeps_min_after_dequeue_until_closed():
    q = tf.RandomShuffleQueue(10, 3, tf.int32, shapes=[[]], seed=1)
    sess = tf.Session()
    sess.run(q.enqueue_many([[1, 2, 3, 4]]))
    sess.run(q.dequeue())  # 4 > 3 left: fine
    t, box = run_in_thread(lambda: sess.run(q.dequeue()))
    time.sleep(0.2)
    assert t.is_alive()  # only min_after_dequeue left: waits
    sess.run(q.close())
    t.join(5)
    assert "value" in box
    assert len(sess.run(q.dequeue_up_to(5))) == 2


def _drain_with_runners(fetch, sess):
    coord = tf.train.Coordinator()
    threads = tf.train.start_queue_runners(sess, coord)
    out = []
    try:
        while not coord.should_stop():
            out.append(sess.run(fetch))
    except tf.errors.OutOfRangeError:
        pass
    finally:
        coord.request_stop()
    coord.join(threads, stop_grace_period_secs=5)
    assert not any(t.is_alive() for t in threads)
    return out


def test_slice_input_producer_and_batch_epochs():
    x, y = np.arange(10, dtype=np.float32), np.arange(10) * 10
    xs, ys = tf.train.slice_input_producer([x, y], num_epochs=2, shuffle=True, seed=3)
    bx, by = tf.train.batch([xs, ys], 4, allow_smaller_final_batch=True)
    assert bx.shape.as_list() == [None]
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        got = _drain_with_runners([bx, by], sess)
    xs_all = np.concatenate([g[0] for g in got])
    ys_all = np.concatenate([g[1] for g in got])
    assert sorted(xs_all.tolist()) == sorted(list(range(10)) * 2)
    np.testing.assert_array_equal(ys_all, xs_all * 10)  # rows stay together


def test_shuffle_batch_static_shape_and_contents():
    xs, = tf.train.slice_input_producer([np.arange(12)], num_epochs=1, shuffle=False)
    b = tf.train.shuffle_batch([xs], 4, capacity=20, min_after_dequeue=2, seed=1)
    assert b[0].shape.as_list() == [4]
    with tf.Session() as sess:
        got = _drain_with_runners(b, sess)
    assert sorted(np.concatenate([g[0] for g in got]).tolist()) == list(range(12))


def test_string_input_producer_with_tfrecord_reader():
    fq = tf.train.string_input_producer([FIXTURE], num_epochs=2, shuffle=False)
    key, value = tf.TFRecordReader().read(fq)
    label = tf.parse_single_example(value, {"label": tf.FixedLenFeature([], tf.int64)})["label"]
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        got = _drain_with_runners([key, label], sess)
    assert [g[1] for g in got] == [i % 3 for i in range(7)] * 2
    assert got[0][0].endswith(b"examples.tfrecord:0")


def test_text_line_reader_read_up_to(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("header\na\nb\nc\n")
    fq = tf.train.string_input_producer([str(p)], num_epochs=1, shuffle=False)
    _, lines = tf.TextLineReader(skip_header_lines=1).read_up_to(fq, 2)
    with tf.Session() as sess:
        got = _drain_with_runners(lines, sess)
    assert [list(g) for g in got] == [[b"a", b"b"], [b"c"]]


def test_coordinator_reports_errors_but_not_clean_ends():
    coord = tf.train.Coordinator()

    def fail():
        with coord.stop_on_exception():
            raise ValueError("worker broke")

    t = threading.Thread(target=fail)
    t.start()
    with pytest.raises(ValueError, match="worker broke"):
        coord.join([t])
    coord2 = tf.train.Coordinator()
    coord2.request_stop(tf.errors.OutOfRangeError(None, None, "done"))
    coord2.join([])
    assert coord2.should_stop() and coord2.joined
