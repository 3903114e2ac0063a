"""Compiled variable updates written over the variable's array (`compiler/in_place.py`), against the
interpreter, and never where something could still see the old values."""
from __future__ import annotations

import os
from typing import Any
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.compiler.steps import ClusterStep
from jitflow.explain import report_of
from tests.compiler.helpers import assert_same, last_plan

OPTIMIZERS = {
    "sgd": lambda: tf.train.GradientDescentOptimizer(0.1),
    "momentum": lambda: tf.train.MomentumOptimizer(0.05, 0.9),
    "adam": lambda: tf.train.AdamOptimizer(0.01),
    "adagrad": lambda: tf.train.AdagradOptimizer(0.1),
    "rmsprop": lambda: tf.train.RMSPropOptimizer(0.01),
}


def _model(opt: str) -> tuple[Any, Any, Any, Any, dict]:
    """A dense layer big enough for compiled updates (600 weights), its loss, train op and feed."""
    rng = np.random.default_rng(3)
    x = tf.placeholder(tf.float32, [None, 20], name="x")
    y = tf.placeholder(tf.float32, [None, 30], name="y")
    w = tf.Variable(rng.normal(size=(20, 30)).astype(np.float32), name="w")
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
    train = OPTIMIZERS[opt]().minimize(loss)
    feed = {x: rng.normal(size=(16, 20)).astype(np.float32), y: rng.normal(size=(16, 30)).astype(np.float32)}
    return w, loss, train, tf.global_variables_initializer(), feed


def _in_place_steps(sess: tf.Session) -> list[ClusterStep]:
    return [s for s in last_plan(sess).steps if isinstance(s, ClusterStep) and s.in_place]


def test_adam_updates_in_place_and_matches_the_interpreter() -> None:
    w, loss, train, init, feed = _model("adam")
    results = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(init)
            losses = []
            for k in range(5):
                losses.append(sess.run([train, loss], feed)[1])
                if jit and k == 1:
                    # (ids: holding a buffer would keep it from being written over)
                    buffers = [id(sess.variables[n].base) for n in ("w", "w/Adam", "w/Adam_1")]
            if jit:
                steps = _in_place_steps(sess)
                assert [sorted(v for _, v in s.in_place) for s in steps] == [["w", "w/Adam", "w/Adam_1"]]
                report = report_of(last_plan(sess))
                assert sorted(report.to_dict()["in_place"]) == ["w", "w/Adam", "w/Adam_1"]
                assert "updated in place while nothing else holds them: w, w/Adam, w/Adam_1" in str(report)
                # from the second run on, every update wrote over the same buffers
                assert [id(sess.variables[n].base) for n in ("w", "w/Adam", "w/Adam_1")] == buffers
            results.append((losses, sess.run(w)))
    assert_same(results[0][0], results[1][0], what="losses")
    assert_same(results[0][1], results[1][1], what="weights")


def test_a_value_the_user_holds_is_never_overwritten() -> None:
    w, _, train, init, feed = _model("momentum")
    flat = tf.reshape(w, [-1])
    with tf.Session() as sess:
        sess.run(init)
        sess.run(train, feed)
        sess.run(train, feed)
        held, held_view = sess.run(w), sess.run(flat)
        part = sess.variables["w"][2:4]  # a view of the variable's own array
        copies = held.copy(), held_view.copy(), part.copy()
        for _ in range(3):
            sess.run(train, feed)
        for got, want in zip((held, held_view, part), copies):
            np.testing.assert_array_equal(got, want)
        assert not np.array_equal(sess.run(w), held)  # training went on
        del held, held_view, part
        sess.run(train, feed)
        before = id(sess.variables["w"].base)
        sess.run(train, feed)
        assert id(sess.variables["w"].base) == before  # in place again once nothing holds the old arrays


def test_a_snapshot_read_after_the_update_keeps_the_old_values() -> None:
    rng = np.random.default_rng(4)
    w = tf.Variable(rng.normal(size=(10, 10)).astype(np.float32), name="w")
    snap = tf.identity(w, name="snap")  # the variable's array itself, in its slot
    upd = tf.assign_sub(w, snap * 0.5 + 1.0)
    with tf.control_dependencies([upd]):
        late = snap * 2.0  # reads the slot after the update
    got = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(w.initializer)
            runs = [sess.run([late, upd]) for _ in range(3)]
            got.append(runs)
            if jit:
                assert not _in_place_steps(sess)  # the snapshot's slot is read after the update
    for (a_late, a_upd), (b_late, b_upd) in zip(*got):
        assert_same(a_late, b_late, what="late")
        assert_same(a_upd, b_upd, what="update")


def test_fetching_the_update_keeps_each_run_s_result() -> None:
    w = tf.Variable(np.arange(200, dtype=np.float32), name="w")
    upd = tf.assign_add(w, tf.ones([200]) * 3.0)
    with tf.Session() as sess:
        sess.run(w.initializer)
        outs = [sess.run(upd) for _ in range(4)]  # later in-place updates must not reach earlier results
        for k, o in enumerate(outs):
            np.testing.assert_array_equal(o, np.arange(200, dtype=np.float32) + 3.0 * (k + 1))


@settings(max_examples=20, deadline=None)
@given(opt=st.sampled_from(sorted(OPTIMIZERS)), runs=st.integers(2, 5),
       fetch_w=st.booleans(), hold=st.sets(st.integers(0, 4)), graph=st.booleans())
def test_random_training_matches_the_interpreter(opt: str, runs: int, fetch_w: bool, hold: set[int],
                                                 graph: bool) -> None:
    """Any optimizer, the variable fetched or not with the train op, some fetched values kept by the caller
    (they must not change), steps run in order or, every run, as a graph (`JITFLOW_INTER_OP=1`; plain SGD's
    plan has no two steps to overlap and runs in order): the interpreter's values."""
    with mock.patch.dict(os.environ, {"JITFLOW_INTER_OP": "1" if graph else "0"}), tf.Graph().as_default():
        w, loss, train, init, feed = _model(opt)
        fetches = [train, loss, w] if fetch_w else [train, loss]
        got: list[list[Any]] = []
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
                sess.run(init)
                res, kept = [], []
                for k in range(runs):
                    out = sess.run(fetches, feed)
                    res.append([o.copy() if isinstance(o, np.ndarray) else o for o in out[1:]])
                    if k in hold:
                        value = sess.run(w)
                        kept.append((value, value.copy()))
                for value, copy in kept:  # what the caller kept did not change since
                    np.testing.assert_array_equal(value, copy)
                res.append([sess.run(w)])
                got.append(res)
        for a, b in zip(*got):
            for x, y in zip(a, b):
                assert_same(x, y, rtol=2e-5)


@settings(max_examples=15, deadline=None)
@given(before=st.sampled_from(["mul", "identity", "reshape", "none"]), after=st.booleans(),
       fetch_snapshot=st.booleans())
def test_reads_around_an_update_see_the_interpreter_s_values(before: str, after: bool,
                                                            fetch_snapshot: bool) -> None:
    """A value read from the variable before an in-place-able update (computed from it, or its array itself
    through Identity/Reshape), the update, and a read ordered after it: every run equals the interpreter."""
    with tf.Graph().as_default():
        w = tf.Variable(np.linspace(-1, 1, 300, dtype=np.float32).reshape(10, 30), name="w")
        first = {"mul": lambda: w * 2.0, "identity": lambda: tf.identity(w),
                 "reshape": lambda: tf.reshape(w, [300]), "none": lambda: None}[before]()
        deps = [first] if first is not None else []
        with tf.control_dependencies(deps):
            upd = tf.assign_add(w, tf.fill([10, 30], 0.5))
        fetches: list[Any] = [upd]
        if after:
            with tf.control_dependencies([upd]):
                fetches.append(w.read_value() * 3.0)
        if first is not None and fetch_snapshot:
            fetches.append(first)
        got = []
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
                sess.run(w.initializer)
                got.append([[np.array(v) for v in sess.run(fetches)] for _ in range(3)])
        for run_a, run_b in zip(*got):
            for a, b in zip(run_a, run_b):
                assert_same(a, b)
