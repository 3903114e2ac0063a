"""ClusterSpec, Server argument checks, replica_device_setter strategies: no Ray needed."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from jitflow.distributed.server import _check_task

SPEC = {"ps": ["localhost:2222", "localhost:2223"], "worker": ["localhost:2224", "localhost:2225", "localhost:2226"]}


def test_cluster_spec_queries() -> None:
    cs = tf.train.ClusterSpec(SPEC)
    assert cs.jobs == ["ps", "worker"]
    assert cs.as_dict() == SPEC
    assert cs.num_tasks("worker") == 3
    assert cs.task_indices("ps") == [0, 1]
    assert cs.task_address("worker", 2) == "localhost:2226"
    assert cs.job_tasks("ps") == SPEC["ps"]
    assert tf.train.ClusterSpec(cs) == cs and tf.train.ClusterSpec({"ps": ["a:1"]}) != cs
    assert bool(cs) and not tf.train.ClusterSpec({})


def test_cluster_spec_sparse_job() -> None:
    cs = tf.train.ClusterSpec({"worker": {1: "localhost:1", 3: "localhost:3"}})
    assert cs.as_dict() == {"worker": {1: "localhost:1", 3: "localhost:3"}}
    assert cs.job_tasks("worker") == [None, "localhost:1", None, "localhost:3"]
    assert cs.num_tasks("worker") == 2


def test_cluster_spec_errors_name_the_job_and_task() -> None:
    cs = tf.train.ClusterSpec(SPEC)
    with pytest.raises(ValueError, match="No such job in cluster: 'chief'"):
        cs.num_tasks("chief")
    with pytest.raises(ValueError, match="No task with index 5 in job 'ps'"):
        cs.task_address("ps", 5)
    with pytest.raises(TypeError, match="must be a string"):
        tf.train.ClusterSpec({"ps": [2222]})
    with pytest.raises(TypeError, match="list or a dictionary"):
        tf.train.ClusterSpec({"ps": "localhost:2222"})
    with pytest.raises(TypeError, match="`cluster` must be a dictionary"):
        tf.train.ClusterSpec(["localhost:2222"])


@pytest.mark.parametrize("job, task, message", [
    ("chief", 0, "Job 'chief' is not in the ClusterSpec"),
    ("worker", 3, r"task_index 3 is out of range for job 'worker', which has tasks \[0, 1, 2\]"),
    ("ps", -1, "task_index -1 is out of range"),
    ("worker", None, "explicit `task_index`"),
])
def test_server_rejects_bad_task_before_connecting(job: str, task: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tf.train.Server(SPEC, job_name=job, task_index=task)


def test_server_rejects_duplicate_address() -> None:
    spec = {"ps": ["localhost:2222"], "worker": ["localhost:2223", "localhost:2222"]}
    with pytest.raises(ValueError, match=r"'localhost:2222' appears twice .*/job:ps/task:0 and /job:worker/task:1"):
        _check_task(tf.train.ClusterSpec(spec), "ps", 0)


def _placements(strategy_factory=None) -> dict[str, str]:
    cluster = tf.train.ClusterSpec(SPEC)
    kwargs = {} if strategy_factory is None else {"ps_strategy": strategy_factory(2)}
    with tf.device(tf.train.replica_device_setter(cluster=cluster, **kwargs)):
        big = tf.Variable(tf.zeros([100, 100]), name="big")
        small1 = tf.Variable(tf.zeros([10]), name="small1")
        small2 = tf.Variable(tf.zeros([10]), name="small2")
        mid = tf.Variable(tf.zeros([50, 50]), name="mid")
        y = tf.matmul(big, big)
    return {v.op.name: v.device for v in (big, small1, small2, mid)} | {"y": y.op.device}


def test_replica_device_setter_round_robin() -> None:
    p = _placements()
    assert [p[n] for n in ("big", "small1", "small2", "mid")] == [
        "/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:0", "/job:ps/task:1"]
    assert p["y"] == "/job:worker"


def test_replica_device_setter_greedy_load_balancing() -> None:
    p = _placements(tf.train.GreedyLoadBalancingStrategy)
    # big (40000 B) takes task 0; every later, smaller variable goes to the lighter task 1
    assert [p[n] for n in ("big", "small1", "small2", "mid")] == [
        "/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:1", "/job:ps/task:1"]


def test_greedy_strategy_balances_bytes() -> None:
    strategy = tf.train.GreedyLoadBalancingStrategy(3)
    sizes = np.random.RandomState(0).randint(1, 200, size=30)
    for i, n in enumerate(sizes):
        strategy(tf.Variable(tf.zeros([int(n)]), name=f"v{i}").op)
    loads = strategy.loads
    assert sum(loads) == 4 * int(sizes.sum())
    assert max(loads) - min(loads) <= 4 * int(sizes.max())  # greedy keeps tasks within one variable


def test_byte_size_load_fn() -> None:
    v = tf.Variable(tf.zeros([3, 5], dtype=tf.float64))
    assert tf.train.byte_size_load_fn(v.op) == 3 * 5 * 8
    with pytest.raises(ValueError, match="not fully defined"):
        tf.train.byte_size_load_fn(tf.placeholder(tf.float32, [None, 3], name="p").op)
    with pytest.raises(ValueError, match="num_tasks must be positive"):
        tf.train.GreedyLoadBalancingStrategy(0)
