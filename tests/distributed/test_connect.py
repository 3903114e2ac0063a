"""Finding the Ray cluster: errors come within seconds and name the address (no cluster is started)."""
from __future__ import annotations

import time

import pytest

import jitflow as tf
from jitflow import errors
from jitflow.distributed import ray_cluster

ray = pytest.importorskip("ray", reason="distributed training runs on Ray: pip install 'jitflow[distributed]'")


@pytest.fixture
def unconnected(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process looks unconnected to Ray, so that `connect` goes looking for a cluster."""
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init must not be reached"))


def test_unreachable_ray_address_fails_fast(unconnected: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    start = time.monotonic()
    with pytest.raises(errors.UnavailableError, match=r"RAY_ADDRESS='127.0.0.1:1'"):
        tf.train.Server({"ps": ["localhost:2222"], "worker": ["localhost:2223"]}, job_name="ps", task_index=0)
    assert time.monotonic() - start < 10


def test_remote_hosts_need_ray_address(unconnected: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(errors.FailedPreconditionError, match="set RAY_ADDRESS"):
        tf.train.Server({"ps": ["10.0.0.1:2222"], "worker": ["localhost:2223"]}, job_name="worker", task_index=0)


def test_namespace_is_a_digest_of_the_cluster() -> None:
    a = tf.train.ClusterSpec({"ps": ["localhost:1"], "worker": ["localhost:2"]})
    b = tf.train.ClusterSpec({"worker": ["localhost:2"], "ps": ["localhost:1"]})
    c = tf.train.ClusterSpec({"ps": ["localhost:1"], "worker": ["localhost:3"]})
    assert ray_cluster.namespace_for(a) == ray_cluster.namespace_for(b) != ray_cluster.namespace_for(c)


def test_session_on_an_unknown_grpc_target_is_unavailable() -> None:
    with pytest.raises(errors.UnavailableError, match="No tf.train.Server in this process serves"):
        tf.Session("grpc://localhost:9")
