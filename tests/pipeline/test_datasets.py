"""tf.data in graph mode: sources, transformations, iterators, signatures and errors."""
from __future__ import annotations

import collections
import threading

import numpy as np
import pytest

import jitflow as tf


def drain(t, sess=None, feed=None, limit=10_000):
    """Every value of `t` until OutOfRangeError."""
    sess = sess or tf.Session()
    out = []
    with pytest.raises(tf.errors.OutOfRangeError):
        for _ in range(limit):
            out.append(sess.run(t, feed))
    return out


def test_from_tensor_slices_map_filter_batch_signature_and_values():
    x = np.arange(10, dtype=np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(10)))
    ds = ds.map(lambda a, b: (a * 2.0, b + 1)).filter(lambda a, b: tf.equal(b % 2, 0)).batch(2)
    assert ds.output_types == (tf.float32, tf.int64)
    assert [s.as_list() for s in ds.output_shapes] == [[None], [None]]
    assert ds.output_classes == (tf.Tensor, tf.Tensor)
    a, b = ds.make_one_shot_iterator().get_next()
    got = drain([a, b])
    want_b = [v + 1 for v in range(10) if (v + 1) % 2 == 0]
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), want_b)
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), [2.0 * (v - 1) for v in want_b])
    assert [len(g[0]) for g in got] == [2, 2, 1]


def test_dict_and_namedtuple_structures():
    Point = collections.namedtuple("Point", "x y")
    ds = tf.data.Dataset.from_tensor_slices({"b": np.arange(3), "a": Point(np.ones(3), np.zeros((3, 2)))})
    assert ds.output_types == {"a": Point(tf.float64, tf.float64), "b": tf.int64}
    assert ds.output_shapes["a"].y.as_list() == [2]
    el = ds.make_one_shot_iterator().get_next()
    assert isinstance(el["a"], Point)
    v = tf.Session().run(el)
    assert v["b"] == 0 and v["a"].y.shape == (2,)


def test_initializable_iterator_with_placeholder_and_reinitialization():
    n = tf.placeholder(tf.int64, [])
    it = tf.data.Dataset.range(n).map(lambda i: i * i).make_initializable_iterator()
    nxt = it.get_next()
    with tf.Session() as sess:
        with pytest.raises(tf.errors.FailedPreconditionError):
            sess.run(nxt)
        sess.run(it.initializer, {n: 3})
        assert drain(nxt, sess) == [0, 1, 4]
        sess.run(it.initializer, {n: 2})
        assert drain(nxt, sess) == [0, 1]


def test_reinitializable_iterator_from_structure():
    train = tf.data.Dataset.range(5)
    val = tf.data.Dataset.range(10, 12)
    it = tf.data.Iterator.from_structure(train.output_types, train.output_shapes)
    nxt = it.get_next()
    init_train, init_val = it.make_initializer(train), it.make_initializer(val)
    with tf.Session() as sess:
        sess.run(init_val)
        assert drain(nxt, sess) == [10, 11]
        sess.run(init_train)
        assert sess.run(nxt) == 0
    with pytest.raises(TypeError):
        it.make_initializer(tf.data.Dataset.from_tensors(1.0))


def test_compat_v1_make_functions_and_iterator_state_per_session():
    ds = tf.data.Dataset.range(3)
    nxt = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
    s1, s2 = tf.Session(), tf.Session()
    assert s1.run(nxt) == 0 and s1.run(nxt) == 1
    assert s2.run(nxt) == 0  # each session iterates on its own
    it = tf.compat.v1.data.make_initializable_iterator(ds)
    s1.run(it.initializer)
    assert s1.run(it.get_next()) == 0
    assert tf.data.get_output_types(ds) == tf.int64


def test_zip_concatenate_repeat_take_skip():
    a = tf.data.Dataset.range(4)
    b = tf.data.Dataset.from_tensor_slices(np.array([b"x", b"y", b"z"]))
    z = tf.data.Dataset.zip((a, b))
    assert z.output_types == (tf.int64, tf.string)
    assert drain(z.make_one_shot_iterator().get_next()) == [(0, b"x"), (1, b"y"), (2, b"z")]
    c = a.concatenate(tf.data.Dataset.range(7, 9)).repeat(2).skip(1).take(8)
    assert drain(c.make_one_shot_iterator().get_next()) == [1, 2, 3, 7, 8, 0, 1, 2]
    with pytest.raises(TypeError):
        a.concatenate(b)


def test_flat_map_and_interleave_order():
    fm = tf.data.Dataset.range(4).flat_map(lambda i: tf.data.Dataset.from_tensors(i).repeat(i))
    assert drain(fm.make_one_shot_iterator().get_next()) == [1, 2, 2, 3, 3, 3]
    il = tf.data.Dataset.range(1, 4).interleave(lambda i: tf.data.Dataset.from_tensors(i).repeat(3),
                                                cycle_length=2, block_length=2)
    # the order of TF's documentation for this pipeline
    assert drain(il.make_one_shot_iterator().get_next()) == [1, 1, 2, 2, 1, 2, 3, 3, 3]


def test_padded_batch_and_unbatch():
    ds = tf.data.Dataset.range(1, 4).map(lambda n: tf.fill(tf.reshape(tf.cast(n, tf.int32), [1]), n))
    pb = ds.padded_batch(2, padded_shapes=[None], padding_values=tf.constant(-1, tf.int64))
    got = drain(pb.make_one_shot_iterator().get_next())
    np.testing.assert_array_equal(got[0], [[1, -1], [2, 2]])
    np.testing.assert_array_equal(got[1], [[3, 3, 3]])
    ub = tf.data.Dataset.from_tensors(np.arange(6).reshape(3, 2)).unbatch()
    assert ub.output_shapes.as_list() == [2]
    assert [list(v) for v in drain(ub.make_one_shot_iterator().get_next())] == [[0, 1], [2, 3], [4, 5]]


def test_batch_drop_remainder_static_shape():
    ds = tf.data.Dataset.range(7).batch(3, drop_remainder=True)
    assert ds.output_shapes.as_list() == [3]
    assert [len(v) for v in drain(ds.make_one_shot_iterator().get_next())] == [3, 3]


def test_shuffle_seeded_is_deterministic_permutation_and_reshuffles():
    def run(reshuffle):
        tf.reset_default_graph()
        ds = tf.data.Dataset.range(20).shuffle(7, seed=3, reshuffle_each_iteration=reshuffle).repeat(2)
        return drain(ds.make_one_shot_iterator().get_next())

    a, b = run(True), run(True)
    assert a == b
    assert sorted(a[:20]) == list(range(20)) and sorted(a[20:]) == list(range(20))
    assert a[:20] != list(range(20)) and a[:20] != a[20:]
    c = run(False)
    assert c[:20] == c[20:]


def test_cache_replays_the_first_pass():
    calls = []

    def gen():
        calls.append(1)
        yield from range(3)

    ds = tf.data.Dataset.from_generator(gen, tf.int64, []).cache().repeat(3)
    assert drain(ds.make_one_shot_iterator().get_next()) == [0, 1, 2] * 3
    assert len(calls) == 1


def test_from_generator_checks_types_and_shapes_and_reports_errors():
    def gen():
        yield (1, [1.0, 2.0])
        yield (2, [3.0])

    ds = tf.data.Dataset.from_generator(gen, (tf.int32, tf.float32), ([], [2]))
    nxt = ds.make_one_shot_iterator().get_next()
    sess = tf.Session()
    v = sess.run(nxt)
    assert v[0] == 1 and v[1].dtype == np.float32
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        sess.run(nxt)

    def bad():
        yield "text"

    nxt2 = tf.data.Dataset.from_generator(bad, tf.int64).make_one_shot_iterator().get_next()
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected type"):
        sess.run(nxt2)

    def boom():
        raise ValueError("broken source")
        yield 1

    nxt3 = tf.data.Dataset.from_generator(boom, tf.int64).make_one_shot_iterator().get_next()
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken source"):
        sess.run(nxt3)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="dimension 0"):
        tf.data.Dataset.from_tensor_slices((np.zeros(3), np.zeros(2)))
    p = tf.placeholder(tf.float32, [None])
    it = tf.data.Dataset.from_tensor_slices((p, np.zeros(2))).make_initializable_iterator()
    with tf.Session() as sess:
        sess.run(it.initializer, {p: np.zeros(3)})
        with pytest.raises(tf.errors.InvalidArgumentError, match="same size"):
            sess.run(it.get_next())
    with pytest.raises(ValueError, match="predicate"):
        tf.data.Dataset.range(3).filter(lambda x: x)
    with pytest.raises(TypeError):
        tf.data.Dataset.range(3).map(lambda x: None)


def test_map_function_failure_names_the_op():
    p = tf.placeholder(tf.float32, [None, None])
    it = tf.data.Dataset.from_tensor_slices(p).map(lambda x: tf.reshape(x, [4])).make_initializable_iterator()
    with tf.Session() as sess:
        sess.run(it.initializer, {p: np.zeros((2, 3))})
        with pytest.raises(tf.errors.InvalidArgumentError, match="Reshape") as e:
            sess.run(it.get_next())
        assert "test_datasets.py" in str(e.value)  # the line that built the failing op


@pytest.mark.parametrize("parallel", [None, 3])
def test_map_compiled_matches_interpreter(parallel):
    data = np.random.RandomState(0).rand(37, 5).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(data).map(lambda x: tf.tanh(x) * 3.0 + 1.0,
                                                       num_parallel_calls=parallel).batch(8)
    nxt = ds.make_one_shot_iterator().get_next()
    jit = np.concatenate(drain(nxt, tf.Session()))
    interp = np.concatenate(drain(nxt, tf.Session(config=tf.ConfigProto(jit=False))))
    np.testing.assert_allclose(jit, interp, rtol=1e-6)
    np.testing.assert_allclose(jit, np.tanh(data) * 3.0 + 1.0, rtol=1e-6)


def test_elementwise_map_before_batch_runs_once_per_batch():
    ds = tf.data.Dataset.from_tensor_slices(np.arange(10, dtype=np.float32)).map(lambda x: x / 2.0).batch(4)
    assert ds._batched_map is not None
    assert [list(v) for v in drain(ds.make_one_shot_iterator().get_next())] == \
        [[0, 0.5, 1, 1.5], [2, 2.5, 3, 3.5], [4, 4.5]]
    # a reshape is not elementwise: per-element calls
    ds2 = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2))).map(lambda x: tf.reshape(x, [2, 1])).batch(2)
    assert ds2._batched_map is None
    assert ds2.output_shapes.as_list() == [None, 2, 1]


def test_map_captures_variables_and_outer_placeholders():
    v = tf.Variable(10.0)
    scale = tf.placeholder(tf.float32, [])
    ds = tf.data.Dataset.from_tensor_slices(np.ones(2, np.float32)).map(lambda x: x * v * scale)
    it = ds.make_initializable_iterator()
    nxt = it.get_next()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(it.initializer, {scale: 3.0})
        assert sess.run(nxt) == 30.0
        sess.run(v.assign(1.0))
        assert sess.run(nxt) == 3.0


def test_prefetch_delivers_everything_and_session_close_stops_threads():
    ds = tf.data.Dataset.range(50).map(lambda x: x + 1, num_parallel_calls=2).prefetch(4)
    nxt = ds.make_one_shot_iterator().get_next()
    assert drain(nxt) == list(range(1, 51))
    before = threading.active_count()
    sess = tf.Session()
    it = tf.data.Dataset.range(10**9).prefetch(2).make_one_shot_iterator().get_next()
    assert sess.run(it) == 0
    sess.close()
    assert threading.active_count() <= before


def test_monitored_training_session_stops_at_end_of_input(tmp_path):
    x = tf.data.Dataset.range(5).make_one_shot_iterator().get_next()
    step = tf.train.get_or_create_global_step()
    inc = tf.assign_add(step, 1)
    seen = []
    with tf.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path)) as mon:
        while not mon.should_stop():
            seen.append(mon.run([x, inc])[0])
    assert seen == [0, 1, 2, 3, 4]


def test_feedable_iterator_switches_between_iterators():
    train = tf.data.Dataset.range(100).make_one_shot_iterator()
    val = tf.data.Dataset.range(7, 9).make_initializable_iterator()
    handle = tf.placeholder(tf.string, [])
    it = tf.data.Iterator.from_string_handle(handle, train.output_types, train.output_shapes)
    nxt = it.get_next()
    with tf.Session() as sess:
        th, vh = sess.run([train.string_handle(), val.string_handle()])
        sess.run(val.initializer)
        assert [sess.run(nxt, {handle: th}) for _ in range(2)] == [0, 1]
        assert sess.run(nxt, {handle: vh}) == 7
        assert sess.run(nxt, {handle: th}) == 2
        with pytest.raises(tf.errors.NotFoundError):
            sess.run(nxt, {handle: b"nothing"})
