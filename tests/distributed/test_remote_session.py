"""Worker sessions on a ps task in a Ray actor: the ps and worker Servers of one program in this process."""
from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow import errors

pytestmark = pytest.mark.usefixtures("ray_address", "short_timeouts")
_ports = itertools.count(21000)


def _cluster(workers: int = 1) -> tf.train.ClusterSpec:
    return tf.train.ClusterSpec({"ps": [f"localhost:{next(_ports)}"],
                                 "worker": [f"localhost:{next(_ports)}" for _ in range(workers)]})


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    """A ps server and two worker servers of one fresh cluster; stopped afterwards."""
    cluster = _cluster(2)
    made = {"cluster": cluster, "ps": tf.train.Server(cluster, job_name="ps", task_index=0),
            "w0": tf.train.Server(cluster, job_name="worker", task_index=0),
            "w1": tf.train.Server(cluster, job_name="worker", task_index=1)}
    yield made
    for k in ("w1", "w0", "ps"):
        made[k].stop()


def _linear(cluster: tf.train.ClusterSpec | None, task: int, optimizer: Any) -> dict[str, Any]:
    """The model, placed by replica_device_setter on `cluster` (None: a single-process graph, no devices)."""
    setter = None if cluster is None else tf.train.replica_device_setter(
        cluster=cluster, worker_device=f"/job:worker/task:{task}")
    with tf.device(setter):
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(tf.zeros([3, 1]), name="w")
        b = tf.Variable(0.5, name="b")
        gs = tf.train.get_or_create_global_step()
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        train = optimizer.minimize(loss, global_step=gs)
    return {"x": x, "y": y, "w": w, "b": b, "gs": gs, "loss": loss, "train": train}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    xs = rng.randn(16, 3).astype(np.float32)
    return xs, (xs @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)


def _train(sess: Any, m: dict[str, Any], steps: int) -> list[float]:
    xs, ys = _data()
    return [float(sess.run([m["loss"], m["train"]], {m["x"]: xs, m["y"]: ys})[0]) for _ in range(steps)]


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("make_opt", [lambda: tf.train.GradientDescentOptimizer(0.1),
                                      lambda: tf.train.AdamOptimizer(0.05)], ids=["sgd", "adam"])
def test_one_worker_matches_a_local_session(servers: dict[str, Any], jit: bool, make_opt: Any) -> None:
    config = tf.ConfigProto(jit=jit)
    m = _linear(servers["cluster"], 0, make_opt())
    assert m["w"].device == "/job:ps/task:0" and m["loss"].op.device == "/job:worker/task:0"
    with tf.Session(servers["w0"].target, config=config) as sess:
        assert type(sess).__name__ == "DistributedSession"
        sess.run(tf.global_variables_initializer())
        remote = _train(sess, m, 20)
        remote_w, remote_step = sess.run([m["w"], m["gs"]])
    with tf.Graph().as_default():  # the same program in one process: no ps/worker devices
        lm = _linear(None, 0, make_opt())
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            local = _train(sess, lm, 20)
            local_w = sess.run(lm["w"])
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote_w, local_w, rtol=1e-5, atol=1e-6)
    assert remote_step == 20 and remote[-1] < remote[0] / 2


def test_variables_live_on_the_ps_between_sessions(servers: dict[str, Any]) -> None:
    m = _linear(servers["cluster"], 0, tf.train.GradientDescentOptimizer(0.1))
    with tf.Session(servers["w0"].target) as sess:
        assert sess.run(tf.report_uninitialized_variables()).size == 3
        sess.run(tf.global_variables_initializer())
        _train(sess, m, 3)
        w = sess.run(m["w"])
    with tf.Session(servers["w1"].target) as other:  # another worker's session sees the ps's values
        np.testing.assert_array_equal(other.run(m["w"]), w)
        assert other.run(m["gs"]) == 3
        other.run(tf.assign(m["b"], 7.0))
    with tf.Session(servers["w0"].target) as sess:
        assert sess.run(m["b"]) == 7.0
        with pytest.raises(errors.InvalidArgumentError, match="/job:ps/task:0"):
            tf.Session().run(m["b"])  # a session without a cluster cannot place the ps's variables (TF's placer)


def test_concurrent_workers_apply_every_update(servers: dict[str, Any]) -> None:
    """Two workers, each in its own graph and thread: no update is lost (the global step counts them all)."""
    graphs, models = [], []
    for task in (0, 1):
        g = tf.Graph()
        with g.as_default():
            models.append(_linear(servers["cluster"], task, tf.train.GradientDescentOptimizer(0.05)))
        graphs.append(g)
    with graphs[0].as_default(), tf.Session(servers["w0"].target) as chief:
        chief.run(tf.global_variables_initializer())
    losses: dict[int, list[float]] = {}

    def work(task: int) -> None:
        with graphs[task].as_default(), tf.Session(servers[f"w{task}"].target) as sess:
            losses[task] = _train(sess, models[task], 40)

    threads = [threading.Thread(target=work, args=(t,)) for t in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(losses) == [0, 1]
    with graphs[0].as_default(), tf.Session(servers["w0"].target) as sess:
        assert sess.run(models[0]["gs"]) == 80
        assert losses[0][-1] < losses[0][0] / 5 and losses[1][-1] < losses[1][0] / 5


def test_saver_round_trip_through_the_ps(servers: dict[str, Any], tmp_path: Any) -> None:
    m = _linear(servers["cluster"], 0, tf.train.GradientDescentOptimizer(0.1))
    saver = tf.train.Saver()
    with tf.Session(servers["w0"].target) as sess:
        sess.run(tf.global_variables_initializer())
        _train(sess, m, 5)
        path = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=m["gs"])
        w = sess.run(m["w"])
        _train(sess, m, 5)
        saver.restore(sess, path)
    with tf.Session(servers["w1"].target) as other:  # the restore reached the ps
        np.testing.assert_array_equal(other.run(m["w"]), w)
    with tf.Graph().as_default():  # a single-process program restores the chief's checkpoint
        lm = _linear(None, 0, tf.train.GradientDescentOptimizer(0.1))
        with tf.Session() as local:
            tf.train.Saver().restore(local, path)
            np.testing.assert_array_equal(local.run(lm["w"]), w)
            assert local.run(lm["gs"]) == 5


def test_non_chief_waits_for_the_chief_to_initialize(servers: dict[str, Any], tmp_path: Any) -> None:
    graphs, models = [], []
    for task in (0, 1):
        g = tf.Graph()
        with g.as_default():
            models.append(_linear(servers["cluster"], task, tf.train.GradientDescentOptimizer(0.1)))
        graphs.append(g)
    steps: dict[str, Any] = {}

    def non_chief() -> None:
        with graphs[1].as_default(), tf.train.MonitoredTrainingSession(
                master=servers["w1"].target, is_chief=False) as sess:
            steps["first"] = sess.run(models[1]["gs"])

    t = threading.Thread(target=non_chief)
    t.start()
    t.join(timeout=1.0)
    assert t.is_alive(), "the non-chief must wait while the variables are uninitialized"
    with graphs[0].as_default(), tf.train.MonitoredTrainingSession(
            master=servers["w0"].target, is_chief=True, checkpoint_dir=str(tmp_path)) as chief:
        xs, ys = _data()
        m = models[0]
        chief.run(m["train"], {m["x"]: xs, m["y"]: ys})
        t.join(timeout=20)
    assert not t.is_alive() and steps["first"] in (0, 1)
    assert tf.train.latest_checkpoint(str(tmp_path)) is not None


def test_non_chief_gives_up_after_max_wait(servers: dict[str, Any]) -> None:
    _linear(servers["cluster"], 1, tf.train.GradientDescentOptimizer(0.1))
    with pytest.raises(errors.DeadlineExceededError, match="not ready after waiting"):
        tf.train.MonitoredTrainingSession(master=servers["w1"].target, is_chief=False, max_wait_secs=0.5)


def test_lost_ps_raises_unavailable_and_the_chief_recovers(servers: dict[str, Any], tmp_path: Any) -> None:
    cluster = servers["cluster"]
    m = _linear(cluster, 0, tf.train.GradientDescentOptimizer(0.1))
    xs, ys = _data()
    with tf.train.MonitoredTrainingSession(master=servers["w0"].target, is_chief=True,
                                           checkpoint_dir=str(tmp_path), save_checkpoint_steps=5,
                                           log_step_count_steps=0) as sess:
        for _ in range(6):
            sess.run(m["train"], {m["x"]: xs, m["y"]: ys})
        saved = tf.train.latest_checkpoint(str(tmp_path))
        assert saved is not None and saved.endswith("-5")
        raw = sess._tf_sess()
        servers["ps"].stop()  # the ps task dies with its variables
        with pytest.raises(errors.UnavailableError, match="ps task"):
            raw.run(m["gs"])
        servers["ps"] = tf.train.Server(cluster, job_name="ps", task_index=0)  # and comes back empty
        with pytest.raises(errors.AbortedError, match="restarted"):
            raw.run(m["gs"])  # the old session's variables are gone with the old ps
        # The monitored session recreates its session: the chief restores the latest checkpoint.
        sess.run(m["train"], {m["x"]: xs, m["y"]: ys})
        assert sess.run(m["gs"]) == 6
