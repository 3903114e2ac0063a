"""Session.run semantics: fetch structures, feeds, errors, exactly-once execution, threads."""
from __future__ import annotations

import collections
import threading

import numpy as np
import pytest

import jitflow as tf


def test_fetch_structures_are_kept():
    a = tf.constant(1.0)
    b = tf.constant([2, 3])
    Pair = collections.namedtuple("Pair", "x y")
    with tf.Session() as sess:
        r = sess.run({"a": a, "nest": [b, (a,)], "nt": Pair(a, b), "op": a.op})
        assert r["a"] == 1.0 and isinstance(r["a"], np.float32)
        assert isinstance(r["nest"], list) and isinstance(r["nest"][1], tuple)
        assert isinstance(r["nt"], Pair) and r["nt"].y.tolist() == [2, 3]
        assert r["op"] is None
        assert sess.run("Const:0") == 1.0
        od = sess.run(collections.OrderedDict([("z", a), ("b", b)]))
        assert list(od) == ["z", "b"]


def test_feeds_any_tensor_and_by_name():
    x = tf.placeholder(tf.float32, shape=[2], name="x")
    y = x * 3
    z = y + 1
    with tf.Session() as sess:
        assert sess.run(z, {x: [1, 2]}).tolist() == [4, 7]
        assert sess.run(z, {"x:0": np.array([1, 1])}).tolist() == [4, 4]
        assert sess.run(z, {y: [10, 20]}).tolist() == [11, 21]
        assert sess.run(z, {x: [1, 2]}).dtype == np.float32


def test_unfed_placeholder_error_text():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError) as ei:
            sess.run(x * 2)
    assert "You must feed a value for placeholder tensor 'x' with dtype float32 and shape [?,3]" in str(ei.value)
    assert ei.value.op is x.op


def test_bad_feeds():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with tf.Session() as sess:
        with pytest.raises(ValueError, match=r"shape \(1, 2\).*'x:0'"):
            sess.run(x, {x: [[1.0, 2.0]]})
        with pytest.raises(ValueError):
            sess.run(x, {x: [["a", "b", "c"]]})
        with pytest.raises(TypeError):
            sess.run(x, {x: tf.constant([[1.0, 2.0, 3.0]])})


def test_closed_session_and_foreign_graph():
    a = tf.constant(1)
    sess = tf.Session()
    sess.close()
    with pytest.raises(RuntimeError):
        sess.run(a)
    g = tf.Graph()
    with g.as_default():
        b = tf.constant(2)
    with tf.Session() as sess:
        with pytest.raises(ValueError):
            sess.run(b)
    with pytest.raises(TypeError):
        tf.Session().run(None)


def test_each_op_runs_once_per_call():
    v = tf.Variable(0, name="v")
    inc = tf.assign_add(v, 1)
    a = inc + 1
    b = inc * 2
    with tf.Session() as sess:
        sess.run(v.initializer)
        sess.run([a, b, inc])
        assert sess.run(v) == 1


def test_runtime_error_names_op_shapes_and_line():
    x = tf.placeholder(tf.int32, name="num")
    d = tf.floordiv(x, tf.constant([0, 1]), name="div_by_zero")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError) as ei:
            sess.run(d, {x: [1, 2]})
        msg = str(ei.value)
        assert "div_by_zero" in msg and "[2], [2]" in msg and "test_session.py" in msg
        assert "Integer division by zero" in msg


def test_session_keeps_working_after_an_error():
    x = tf.placeholder(tf.int32)
    d = x // tf.constant(0)
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError):
            sess.run(d, {x: 1})
        assert sess.run(x + 1, {x: 1}) == 2


def test_fetched_arrays_are_owned_by_the_user():
    v = tf.Variable([1.0, 2.0])
    c = tf.constant([5.0, 6.0])
    with tf.Session() as sess:
        sess.run(v.initializer)
        got = sess.run(v)
        got[0] = 100.0
        assert sess.run(v).tolist() == [1.0, 2.0]
        cc = sess.run(c)
        cc[:] = 0
        assert sess.run(c).tolist() == [5.0, 6.0]


def test_interactive_session_and_eval():
    sess = tf.InteractiveSession()
    try:
        a = tf.constant(2.0)
        assert a.eval() == 2.0
        v = tf.Variable(1.0)
        v.initializer.run()
        assert (v * 3).eval() == 3.0
        assert tf.get_default_session() is sess
    finally:
        sess.close()
    assert tf.get_default_session() is None
    with pytest.raises(ValueError, match="No default session"):
        tf.constant(1).eval()


def test_threads_run_concurrently_with_consistent_results():
    x = tf.placeholder(tf.float32, [None])
    y = tf.reduce_sum(x * x)
    sess = tf.Session()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(50):
                arr = np.full(10, k + i, np.float32)
                assert sess.run(y, {x: arr}) == np.float32(10 * (k + i) ** 2)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def test_strict_placement_raises_for_missing_gpu():
    with tf.device("/gpu:3"):
        a = tf.constant(1.0) * 2
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=False)) as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="GPU:3"):
            sess.run(a)
    with tf.Session() as sess:  # strict is TF's default
        with pytest.raises(tf.errors.InvalidArgumentError, match="allow_soft_placement"):
            sess.run(a)
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=True)) as sess:
        assert sess.run(a) == 2.0


def test_other_job_without_cluster_raises_even_with_soft_placement(capsys):
    with tf.device("/job:ps/task:0"):
        v = tf.Variable(2.0, name="v")
    for soft in (False, True):
        with tf.Session(config=tf.ConfigProto(allow_soft_placement=soft)) as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match="operation v.*/job:ps.*allow_soft_placement"):
                sess.run(v.initializer)
    with tf.device("/job:localhost/replica:0/task:0/device:CPU:0"):
        w = tf.constant(3.0, name="w") * 2.0
    with tf.Session(config=tf.ConfigProto(log_device_placement=True)) as sess:
        assert sess.run(w) == 6.0
    assert "w: (Const): /job:localhost/replica:0/task:0/device:CPU:0" in capsys.readouterr().out
