"""Training on /gpu:0 (CUDA simulator) against the interpreter; variables stay on the device between runs."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler import gpu
from tests.compiler.helpers import assert_same
from tests.cuda.helpers import backends, cuda_steps, last_plan, needs_cuda

pytestmark = needs_cuda

OPTIMIZERS: dict[str, Callable[[], Any]] = {
    "sgd": lambda: tf.train.GradientDescentOptimizer(0.1),
    "momentum_nesterov": lambda: tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
    "adam": lambda: tf.train.AdamOptimizer(0.05),
}


def _model(opt: Callable[[], Any], batch: int | None = None) -> tuple[Any, Any, Any, Any, list[Any]]:
    rng = np.random.default_rng(7)
    x = tf.placeholder(tf.float32, [batch, 4], name="x")
    y = tf.placeholder(tf.float32, [batch, 3], name="y")
    with tf.device("/gpu:0"):
        w = tf.Variable(rng.normal(0, 0.5, (4, 3)).astype(np.float32), name="w")
        b = tf.Variable(np.zeros(3, np.float32), name="b")
        pred = tf.tanh(tf.matmul(x, w) + b)
        loss = tf.reduce_mean(tf.square(pred - y))
        train = opt().minimize(loss)
    return x, y, loss, train, [w, b]


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    return {"x": rng.normal(size=(6, 4)).astype(np.float32), "y": rng.uniform(-1, 1, (6, 3)).astype(np.float32)}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_loop_matches_the_interpreter(name: str) -> None:
    x, y, loss, train, params = _model(OPTIMIZERS[name])
    d = _data()
    feed = {x: d["x"], y: d["y"]}
    results = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train], feed)[0] for _ in range(3)]
            plan = last_plan(sess)
            results.append((losses, sess.run(params)))
            if jit:
                assert "cuda" in backends(plan) and cuda_steps(plan)
                updates = [s for s in cuda_steps(plan) if isinstance(s, gpu.CudaClusterStep)
                           and any(v is not None for v in s.stores)]
                assert updates, "the optimizer's update runs on the device"
    (l_gpu, p_gpu), (l_ref, p_ref) = results
    assert l_gpu[-1] < l_gpu[0]
    assert_same(np.array(l_gpu), np.array(l_ref), rtol=2e-5)
    for g, w in zip(p_gpu, p_ref):
        assert_same(g, w, rtol=2e-5, atol=1e-6)


def test_variables_stay_on_the_device_between_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # static shapes: every op of the step compiles (a dynamic batch leaves UnbroadcastTo interpreted)
    x, y, loss, train, (w, b) = _model(OPTIMIZERS["sgd"], batch=6)
    d = _data()
    copies: list[tuple[int, ...]] = []
    real = gpu.to_host

    def counting(a: Any) -> np.ndarray:
        copies.append(tuple(a.shape))
        return real(a)

    monkeypatch.setattr(gpu.runtime, "to_host", counting)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train, {x: d["x"], y: d["y"]})  # first run: variables uploaded
        copies.clear()
        for _ in range(3):
            sess.run(train, {x: d["x"], y: d["y"]})
        assert copies == [], "a training step copies nothing back to the host"
        assert isinstance(sess.variables, gpu.DeviceVariables)
        assert {"w", "b"} <= sess.variables._dirty
        dev_w = sess.variables.device_value("w")
        sess.run(train, {x: d["x"], y: d["y"]})
        assert sess.variables.device_value("w") is dev_w, "the update wrote the device array in place"
        lv = sess.run(loss, {x: d["x"], y: d["y"]})
        assert copies == [()], "fetching the loss copies only the loss"
        # a host read (the Saver's path) brings the device values back
        w_host = sess._read_variables(["w"])[0]
        assert copies[-1] == (4, 3) and "w" not in sess.variables._dirty
        assert np.isfinite(lv) and w_host.shape == (4, 3) and not w_host.flags.writeable


def test_two_layer_mlp_snapshots_survive_updates() -> None:
    # the hidden layer's gradient reads w2's snapshot, which must not see w2's update of the same step
    rng = np.random.default_rng(9)
    x = tf.placeholder(tf.float32, [5, 4])
    labels = tf.placeholder(tf.float32, [5, 2])
    with tf.device("/gpu:0"):
        w1 = tf.Variable(rng.normal(0, 0.5, (4, 6)).astype(np.float32))
        w2 = tf.Variable(rng.normal(0, 0.5, (6, 2)).astype(np.float32))
        h = tf.sigmoid(tf.matmul(x, w1))
        out = tf.matmul(h, w2)
        loss = tf.reduce_sum(tf.square(out - labels))
        train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
    feed = {x: rng.normal(size=(5, 4)).astype(np.float32), labels: rng.normal(size=(5, 2)).astype(np.float32)}
    res = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train, feed)
            res.append(sess.run([w1, w2, loss], feed))
    for g, w in zip(*res):
        assert_same(g, w, rtol=2e-5, atol=1e-6)


def test_snapshot_taken_before_an_in_place_candidate_keeps_its_value() -> None:
    with tf.device("/gpu:0"):
        v = tf.Variable(np.arange(4, dtype=np.float32), name="v")
        snap = tf.identity(v)
        with tf.control_dependencies([snap]):
            upd = tf.assign_add(v, tf.ones([4]))
        with tf.control_dependencies([upd]):
            out = snap * 2.0
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            np.testing.assert_array_equal(sess.run(out), [0.0, 2.0, 4.0, 6.0])
            np.testing.assert_array_equal(sess.run(v), [1.0, 2.0, 3.0, 4.0])


def test_host_writes_reach_the_device_and_sessions_are_independent() -> None:
    x, y, loss, train, (w, b) = _model(OPTIMIZERS["sgd"])
    d = _data()
    feed = {x: d["x"], y: d["y"]}
    s1, s2 = tf.Session(), tf.Session()
    for s in (s1, s2):
        s.run(tf.global_variables_initializer())
    s1.run(train, feed)
    w.load(np.ones((4, 3), np.float32), s1)  # host write after a device update
    s1.run(train, feed)
    with tf.Session(config=tf.ConfigProto(jit=False)) as ref:
        ref.run(tf.global_variables_initializer())
        ref.run(train, feed)
        w.load(np.ones((4, 3), np.float32), ref)
        ref.run(train, feed)
        assert_same(s1.run(w), ref.run(w), rtol=2e-5)
        assert_same(s2.run(w), ref.run(w.initial_value))  # s2 never trained
    s1.close()
    s2.close()


def test_assign_ops_and_reads_after_them() -> None:
    with tf.device("/gpu:0"):
        v = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
        c = tf.Variable(np.int32(0), name="count")
        upd = tf.assign_add(v, tf.ones([2, 3]) * 2.0)
        with tf.control_dependencies([upd]):
            after = v.read_value() * 10.0
        sub = tf.assign_sub(v, tf.constant([1.0, 2.0, 3.0]) + tf.zeros([2, 3]))
        inc = tf.assign_add(c, 1)
        put = tf.assign(v, tf.fill([2, 3], 7.0))
    outs = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            r = [sess.run(after)]
            sess.run([sub, inc])
            sess.run(inc)
            r += [sess.run(v), sess.run(c)]
            sess.run(put)
            r.append(sess.run(v * 1.0))
            outs.append(r)
    for g, w in zip(*outs):
        assert_same(g, w)
    assert outs[0][2] == 2


def test_concurrent_training_runs() -> None:
    # Hogwild: threads share one session; updates may interleave, but every run completes and values stay sane
    import threading

    x, y, loss, train, (w, b) = _model(OPTIMIZERS["sgd"], batch=6)
    d = _data()
    feed = {x: d["x"], y: d["y"]}
    errors: list[BaseException] = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        start = sess.run(loss, feed)

        def work() -> None:
            try:
                for _ in range(3):
                    sess.run(train, feed)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        end = sess.run(loss, feed)
        assert np.isfinite(end) and end < start
        assert np.all(np.isfinite(sess.run(w)))


def test_mlp_with_sparse_softmax_runs_entirely_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = tf.placeholder(tf.float32, [None, 6])
    labels = tf.placeholder(tf.int32, [None])
    with tf.device("/gpu:0"):
        w1 = tf.Variable(rng.normal(0, 0.5, (6, 8)).astype(np.float32))
        b1 = tf.Variable(np.zeros(8, np.float32))
        w2 = tf.Variable(rng.normal(0, 0.5, (8, 3)).astype(np.float32))
        b2 = tf.Variable(np.zeros(3, np.float32))
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    feed = {x: rng.normal(size=(5, 6)).astype(np.float32), labels: rng.integers(0, 3, 5).astype(np.int32)}
    copies: list[tuple[int, ...]] = []
    real = gpu.to_host
    monkeypatch.setattr(gpu.runtime, "to_host", lambda a: copies.append(tuple(a.shape)) or real(a))
    res = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train, feed)
            copies.clear()
            sess.run(train, feed)
            if jit:
                assert copies == [], "nothing of a training step goes through the host"
                kinds = {type(s).__name__ for s in last_plan(sess).steps}
                assert {"CudaSparseXentStep", "DeviceUnbroadcastDyn", "DeviceReshape", "FusedMatMulStep"} <= kinds
            res.append(sess.run([loss, w1, b2], feed))
    for g, w in zip(*res):
        assert_same(g, w, rtol=2e-5, atol=1e-6)


def test_sparse_softmax_bad_labels_and_reshape_errors_match_the_interpreter() -> None:
    logits = tf.placeholder(tf.float32, [3, 4])
    labels = tf.placeholder(tf.int32, [3])
    z = tf.placeholder(tf.float32, [3])
    anyshape = tf.placeholder(tf.float32)  # unknown shape: a bad reshape fails only at run time
    with tf.device("/gpu:0"):
        fed = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits * 1.0)
        computed = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(z * 2.0, tf.int32),
                                                                  logits=logits * 1.0)
        flat = tf.reshape(anyshape * 2.0, [-1, 6]) + 1.0
        bad = tf.reshape(anyshape * 2.0, [5, -1]) + 1.0
    lv = np.arange(12, dtype=np.float32).reshape(3, 4) / 5
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            good = sess.run([fed, computed, flat], {logits: lv, labels: [0, 3, 1], z: [0.0, 1.0, 1.5], anyshape: lv})
            if jit:
                ref = good
            else:
                for g, w in zip(ref, good):
                    assert_same(g, w)
            with pytest.raises(tf.errors.InvalidArgumentError):
                sess.run(fed, {logits: lv, labels: [0, 4, 1]})
            with pytest.raises(tf.errors.InvalidArgumentError):
                sess.run(computed, {logits: lv, z: [0.0, -1.0, 1.0]})
            with pytest.raises(tf.errors.InvalidArgumentError):
                sess.run(bad, {anyshape: lv})
