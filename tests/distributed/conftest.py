"""A Ray instance for the tests that need one: started once, small, on this machine, shut down at the end."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """Starts Ray in this process (1 CPU, a 128 MiB object store); yields its address for other processes."""
    pytest.importorskip("ray", reason="distributed training runs on Ray: pip install 'jitflow[distributed]'")
    from jitflow.distributed.ray_cluster import import_ray

    ray = import_ray()
    ray.init(num_cpus=1, object_store_memory=128 << 20, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits for tasks give up after a few seconds, so a failing test fails fast."""
    monkeypatch.setenv("JITFLOW_DISTRIBUTED_TIMEOUT", os.environ.get("JITFLOW_TEST_DISTRIBUTED_TIMEOUT", "15"))
