"""Bad input raises the interpreter's error naming the op; the session keeps working; threads agree."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import jitflow as tf
from jitflow import errors
from tests.compiler.helpers import assert_same, counts, last_plan


def test_integer_division_by_zero_names_the_op() -> None:
    x = tf.placeholder(tf.int32, [None])
    y = tf.placeholder(tf.int32, [None])
    q = tf.floordiv(x * 3, y, name="the_div") + 1
    with tf.Session() as sess:
        ok = sess.run(q, {x: np.arange(6, dtype=np.int32), y: np.full(6, 2, np.int32)})
        np.testing.assert_array_equal(ok, np.arange(6) * 3 // 2 + 1)
        assert counts(last_plan(sess)) == (1, 0)
        with pytest.raises(errors.InvalidArgumentError, match="the_div") as e:
            sess.run(q, {x: np.arange(6, dtype=np.int32), y: np.array([1, 2, 0, 1, 1, 1], np.int32)})
        assert e.value.op.name == "the_div"
        again = sess.run(q, {x: np.arange(6, dtype=np.int32), y: np.full(6, 2, np.int32)})
        np.testing.assert_array_equal(again, ok)


def test_mismatched_runtime_shapes_raise_like_the_interpreter() -> None:
    a = tf.placeholder(tf.float32, [None])
    b = tf.placeholder(tf.float32, [None])
    c = tf.exp(a) * b
    feeds = {a: np.ones(5, np.float32), b: np.ones(4, np.float32)}
    messages = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            with pytest.raises(errors.InvalidArgumentError) as e:
                sess.run(c, feeds)
            messages.append((type(e.value), e.value.op.name))
            # and the session still works
            assert sess.run(c, {a: np.zeros(3, np.float32), b: np.full(3, 2.0, np.float32)}).tolist() == [2.0] * 3
    assert messages[0] == messages[1]


def test_fed_value_of_wrong_static_shape_is_a_value_error() -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    y = x * 2.0
    with tf.Session() as sess:
        sess.run(y, {x: np.ones((2, 3), np.float32)})
        with pytest.raises(ValueError, match="shape"):
            sess.run(y, {x: np.ones((2, 4), np.float32)})
        assert sess.run(y, {x: np.ones((1, 3), np.float32)}).tolist() == [[2.0] * 3]


def test_uninitialized_variable_in_a_fused_update() -> None:
    v = tf.Variable(np.zeros(4, np.float32), name="weights")
    x = tf.placeholder(tf.float32, [4])
    upd = tf.assign_sub(v, x * 0.5)
    with tf.Session() as sess:
        with pytest.raises(errors.FailedPreconditionError, match="weights"):
            sess.run(upd, {x: np.ones(4, np.float32)})
        sess.run(v.initializer)
        assert sess.run(upd, {x: np.ones(4, np.float32)}).tolist() == [-0.5] * 4


def test_update_with_wrong_shape_errors_and_stores_nothing() -> None:
    v = tf.Variable(np.zeros((2, 3), np.float32))
    d = tf.placeholder(tf.float32, None)
    upd = tf.assign_add(v, d * 2.0)
    with tf.Session() as sess:
        sess.run(v.initializer)
        with pytest.raises(errors.InvalidArgumentError):
            sess.run(upd, {d: np.ones(3, np.float32)})  # broadcastable, but AssignAdd wants equal shapes
        assert sess.run(v).sum() == 0.0
        assert sess.run(upd, {d: np.ones((2, 3), np.float32)}).sum() == 12.0


def test_results_are_owned_by_the_caller() -> None:
    x = tf.placeholder(tf.float32, [16])
    y = tf.exp(x)
    z = tf.reshape(y * 2.0, [4, 4])  # interpreted view of a compiled result
    with tf.Session() as sess:
        first = sess.run([y, z], {x: np.zeros(16, np.float32)})
        kept = [a.copy() for a in first]
        for i in range(3):
            sess.run([y, z], {x: np.full(16, i + 1.0, np.float32)})
        for a, b in zip(first, kept):
            np.testing.assert_array_equal(a, b)


def test_concurrent_runs_match_serial_runs() -> None:
    x = tf.placeholder(tf.float64, [None, 8])
    h = tf.nn.relu(tf.matmul(x, tf.constant(np.eye(8) * 0.5)) + 1.0)
    out = tf.reduce_sum(tf.tanh(h) * h, axis=1)
    inputs = [np.random.default_rng(i).normal(size=(32, 8)) for i in range(8)]
    with tf.Session() as sess:
        serial = [sess.run(out, {x: v}) for v in inputs]
        got: dict[int, list[np.ndarray]] = {}

        def work(k: int) -> None:
            got[k] = [sess.run(out, {x: inputs[(k + j) % 8]}) for j in range(40)]

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for k, results in got.items():
        for j, r in enumerate(results):
            assert_same(r, serial[(k + j) % 8])


def test_fast_path_follows_the_call_shape() -> None:
    a, b = tf.constant(1.0), tf.constant(2.0)
    x = tf.placeholder(tf.float32, [None], name="x")
    y = x * 3.0
    with tf.Session() as sess:
        for _ in range(3):  # temporary tuples may reuse ids: results must follow their contents
            assert sess.run((a, b)) == (1.0, 2.0)
            assert sess.run((b, a)) == (2.0, 1.0)
        fetches = [a]
        assert sess.run(fetches) == [1.0]
        fetches[0] = b
        assert sess.run(fetches) == [2.0]
        assert sess.run(y, {x: [1.0]}).tolist() == [3.0]
        assert sess.run(y, {"x:0": [2.0, 3.0]}).tolist() == [6.0, 9.0]
        assert sess.run(y, {x: np.array([1.0, 2.0])}).tolist() == [3.0, 6.0]  # float64 converted
        with pytest.raises(ValueError):
            sess.run(y, {x: [[1.0]]})
        assert sess.run({"k": y}, {x: [1.0]}) == {"k": np.array([3.0], np.float32)}


@pytest.mark.parametrize("jit", [True, False])
def test_check_numerics_and_bad_gather_indices_in_compiled_plans(jit: bool) -> None:
    x = tf.placeholder(tf.float32, [None])
    y = tf.check_numerics(tf.log(x) * 2.0, "log went bad", name="numerics") + 1.0
    idx = tf.placeholder(tf.int32, [None])
    g = tf.gather(tf.exp(x), idx, name="the_gather") * 3.0
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        assert sess.run(y, {x: np.ones(4, np.float32)}).tolist() == [1.0] * 4
        with pytest.raises(errors.InvalidArgumentError, match="log went bad") as e:
            sess.run(y, {x: np.array([1.0, -1.0], np.float32)})
        assert e.value.op.name == "numerics"
        with pytest.raises(errors.InvalidArgumentError) as e2:
            sess.run(g, {x: np.ones(3, np.float32), idx: np.array([0, 5], np.int32)})
        assert e2.value.op.name == "the_gather"
        assert sess.run(g, {x: np.zeros(3, np.float32), idx: np.array([2, 0], np.int32)}).tolist() == [3.0, 3.0]


def test_fast_path_keeps_string_feed_conversion() -> None:
    p = tf.placeholder(tf.string, [None])
    q = tf.identity(p)
    with tf.Session() as sess:
        for _ in range(3):
            assert sess.run(q, {p: np.array(["ab", "c"])}).tolist() == [b"ab", b"c"]


def test_hogwild_training_from_threads_is_safe() -> None:
    rng = np.random.default_rng(13)
    xv = rng.normal(size=(64, 6)).astype(np.float32)
    yv = (xv @ rng.normal(size=(6, 1))).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 6])
    y = tf.placeholder(tf.float32, [None, 1])
    w = tf.Variable(np.zeros((6, 1), np.float32))
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
    train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
    errors_seen: list[BaseException] = []
    with tf.Session() as sess:
        sess.run(w.initializer)
        start = sess.run(loss, {x: xv, y: yv})

        def work() -> None:
            try:
                for _ in range(60):
                    sess.run(train, {x: xv, y: yv})
            except BaseException as e:  # noqa: BLE001 - reported by the assertion below
                errors_seen.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = sess.run(loss, {x: xv, y: yv})
    assert not errors_seen
    assert np.isfinite(end) and end < start * 0.1
