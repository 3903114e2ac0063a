"""Finding the Ray cluster a distributed program runs on: `RAY_ADDRESS`, or a local one for localhost specs.

Every process of one program (one ClusterSpec) uses the Ray namespace derived from that spec, so that
the actors its ps tasks create are found by name by its workers, and two programs never mix.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from typing import Any

from jitflow import errors
from jitflow.distributed.cluster_spec import ClusterSpec

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def import_ray() -> Any:
    """The `ray` module, or ImportError saying how to install it."""
    # Ray's default for a cluster it starts is token authentication with the user's ~/.ray/auth_token;
    # processes joining it must use it too, and Ray reads the mode once, when it is imported.
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        if "ray" in sys.modules:
            with contextlib.suppress(ImportError, AttributeError):
                from ray._raylet import Config  # type: ignore[attr-defined]

                Config.initialize("")
    try:
        import ray
    except ImportError:
        raise ImportError("Distributed jitflow (tf.train.Server) runs on Ray: pip install 'jitflow[distributed]'"
                          ) from None
    return ray


def namespace_for(cluster: ClusterSpec) -> str:
    """The Ray namespace of the program that `cluster` describes (a digest of its jobs and addresses)."""
    text = json.dumps(cluster.as_cluster_def(), sort_keys=True)
    return "jitflow-" + hashlib.sha1(text.encode()).hexdigest()[:12]


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not of the form host:port")
    return host, int(port)


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """UnavailableError naming `address` unless something accepts TCP connections there within `timeout`."""
    address = address.removeprefix("ray://")
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise errors.UnavailableError(None, None, f"Cannot reach the Ray cluster at RAY_ADDRESS={address!r}: "
                                                  f"{e}") from None


def _all_local(cluster: ClusterSpec) -> bool:
    for job in cluster.jobs:
        for address in cluster.job_tasks(job):
            if address is not None and address.rpartition(":")[0] not in LOCAL_HOSTS:
                return False
    return True


def _init_kwargs(namespace: str) -> dict[str, Any]:
    return {"namespace": namespace, "log_to_driver": False, "configure_logging": False,
            "include_dashboard": False}


def _connect_to(address: str, namespace: str) -> None:
    ray = import_ray()
    check_reachable(address)
    ray.init(address=address, **_init_kwargs(namespace))


def _address_file(namespace: str) -> str:
    return os.path.join(tempfile.gettempdir(), "jitflow_ray", namespace + ".address")


def _live_address(path: str) -> str | None:
    """The address recorded in `path` if a Ray instance answers there, else None."""
    with contextlib.suppress(OSError, errors.UnavailableError, ValueError):
        with open(path) as f:
            pid, address = f.read().split()
        os.kill(int(pid), 0)  # the process hosting it still runs (OSError if not)
        check_reachable(address, timeout=1.0)
        return address
    return None


def _start_or_join_local(namespace: str) -> None:
    """Joins the local Ray instance another task of this program started, or starts it in this process."""
    from filelock import FileLock

    ray = import_ray()
    path = _address_file(namespace)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with FileLock(path + ".lock", timeout=120):
        address = _live_address(path)
        if address is not None:  # the instance another task of this program started is up: join it
            ray.init(address=address, **_init_kwargs(namespace))
            return
        store_mb = int(os.environ.get("JITFLOW_RAY_OBJECT_STORE_MB", "256"))
        ray.init(num_cpus=int(os.environ.get("JITFLOW_RAY_NUM_CPUS", "1")), object_store_memory=store_mb << 20,
                 _node_ip_address="127.0.0.1", **_init_kwargs(namespace))
        with open(path + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {ray.get_runtime_context().gcs_address}")
        os.replace(path + ".tmp", path)


def connect(cluster: ClusterSpec) -> str:
    """Connects this process to the program's Ray cluster (once); returns the program's namespace.

    With `RAY_ADDRESS` set, joins that cluster (UnavailableError within seconds if nothing answers
    there). Without it, an all-localhost ClusterSpec starts or joins a local Ray instance that lives in
    the first process of the program to need it; other addresses need `RAY_ADDRESS`.
    """
    ray = import_ray()
    namespace = namespace_for(cluster)
    if ray.is_initialized():  # actors are named in the program's namespace explicitly: any connection does
        return namespace
    address = os.environ.get("RAY_ADDRESS")
    if address:
        _connect_to(address, namespace)
    elif _all_local(cluster):
        _start_or_join_local(namespace)
    else:
        raise errors.FailedPreconditionError(None, None, f"{cluster} names hosts other than localhost: set "
                                                         "RAY_ADDRESS to the address of the Ray cluster they share")
    return namespace


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Calls `predicate()` until it is true or `timeout` seconds have passed; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
