"""`tf.train.Server`: one task of a distributed program, on a Ray cluster.

A task of a variable-holding job (any job but worker/chief/master/evaluator, usually "ps") serves its
variables from a Ray actor named after the task, owned by the task's process: when that process
ends, its variables go with it, as a ps task's do in TF. A worker task only connects; its sessions
(`Session(server.target)`) run their plans locally and read and update the variables remotely.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from jitflow import errors
from jitflow.distributed import ray_cluster
from jitflow.distributed.cluster_spec import ClusterSpec

# Jobs whose tasks compute; every other job's tasks hold variables.
COMPUTE_JOBS = frozenset({"worker", "chief", "master", "evaluator"})

_servers: dict[str, Server] = {}  # target -> the Server of this process that serves it
_servers_lock = threading.Lock()


def server_for_target(target: str) -> Server | None:
    """The Server of this process whose `target` is `target`, if any."""
    with _servers_lock:
        return _servers.get(target)


def actor_name(job_name: str, task_index: int) -> str:
    """The Ray actor name of a task's variable store."""
    return f"{job_name}:{task_index}"


def wait_seconds() -> float:
    """How long to wait for a task to appear or answer (JITFLOW_DISTRIBUTED_TIMEOUT, default 60 s)."""
    return float(os.environ.get("JITFLOW_DISTRIBUTED_TIMEOUT", "60"))


def _check_task(cluster: ClusterSpec, job_name: str | None, task_index: int | None) -> tuple[str, int]:
    """The (job, task) this server runs, checked against the cluster; ValueError naming what is wrong."""
    if job_name is None:
        if len(cluster.jobs) != 1:
            raise ValueError(f"Must specify an explicit `job_name` for a cluster with jobs {cluster.jobs}")
        job_name = cluster.jobs[0]
    if job_name not in cluster.jobs:
        raise ValueError(f"Job {job_name!r} is not in the ClusterSpec: its jobs are {cluster.jobs}")
    indices = cluster.task_indices(job_name)
    if task_index is None:
        if len(indices) != 1:
            raise ValueError(f"Must specify an explicit `task_index` for job {job_name!r} with tasks {indices}")
        task_index = indices[0]
    if task_index not in indices:
        raise ValueError(f"task_index {task_index} is out of range for job {job_name!r}, which has tasks "
                         f"{indices}")
    seen: dict[str, str] = {}
    for job in cluster.jobs:
        for i in cluster.task_indices(job):
            address = cluster.task_address(job, i)
            if address in seen:
                raise ValueError(f"Address {address!r} appears twice in the ClusterSpec: {seen[address]} and "
                                 f"/job:{job}/task:{i}")
            seen[address] = f"/job:{job}/task:{i}"
    return job_name, task_index


class Server:
    """An in-process server for one task of `cluster`, on the Ray cluster the program shares."""

    def __init__(self, server_or_cluster_def: Any, job_name: str | None = None, task_index: int | None = None,
                 protocol: str | None = None, config: Any = None, start: bool = True) -> None:
        self._cluster = ClusterSpec(server_or_cluster_def)
        if not self._cluster:
            raise ValueError("The ClusterSpec of a Server must have at least one job")
        self._job_name, self._task_index = _check_task(self._cluster, job_name, task_index)
        self._address = self._cluster.task_address(self._job_name, self._task_index)
        self._namespace = ""
        self._store: Any = None
        self._started = False
        if start:
            self.start()

    # -- TF's API ------------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        """The master address sessions of this task connect to: "grpc://" + the task's address."""
        return "grpc://" + self._address

    @property
    def server_def(self) -> dict[str, Any]:
        """TF's ServerDef fields: the cluster, this task's job and index, the protocol."""
        return {"cluster": self._cluster.as_cluster_def(), "job_name": self._job_name,
                "task_index": self._task_index, "protocol": "grpc"}

    def start(self) -> None:
        """Connects to Ray and, for a variable-holding task, starts its variable store (once)."""
        if self._started:
            return
        self._namespace = ray_cluster.connect(self._cluster)
        if self._job_name not in COMPUTE_JOBS:
            self._store = self._start_store()
        with _servers_lock:
            _servers[self.target] = self
        self._started = True

    def join(self) -> None:
        """Blocks while this task serves (a ps task: until its variable store stops answering)."""
        self.start()
        while True:
            time.sleep(1.0)
            if self._store is not None:
                self._ping(self._store, timeout=wait_seconds())

    @staticmethod
    def create_local_server(config: Any = None, start: bool = True) -> Server:
        """A single-task server (job "local") on a free localhost port."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return Server({"local": [f"localhost:{port}"]}, job_name="local", task_index=0, config=config,
                      start=start)

    # -- for sessions ------------------------------------------------------------------------------------
    @property
    def cluster(self) -> ClusterSpec:
        return self._cluster

    @property
    def namespace(self) -> str:
        """The Ray namespace of this program's actors."""
        return self._namespace

    @property
    def task(self) -> tuple[str, int]:
        return self._job_name, self._task_index

    def variable_tasks(self) -> list[tuple[str, int]]:
        """The tasks of the cluster that hold variables (every task of a non-compute job)."""
        return [(job, i) for job in self._cluster.jobs if job not in COMPUTE_JOBS
                for i in self._cluster.task_indices(job)]

    def stop(self) -> None:
        """Stops this task's variable store (its variables are lost) and forgets the target."""
        with _servers_lock:
            _servers.pop(self.target, None)
        if self._store is not None:
            ray = ray_cluster.import_ray()
            ray.kill(self._store)
            store, self._store = self._store, None

            def gone() -> bool:  # ray.kill only asks: wait (bounded) until the store stops answering
                try:
                    ray.get(store.ping.remote(), timeout=1.0)
                except ray.exceptions.RayError:
                    return True
                return False

            ray_cluster.wait_for(gone, wait_seconds())
        self._started = False

    # -- the variable store ------------------------------------------------------------------------------
    def _start_store(self) -> Any:
        ray = ray_cluster.import_ray()
        from ray import cloudpickle

        from jitflow.distributed import ps_actor

        cloudpickle.register_pickle_by_value(ps_actor)  # Ray's workers need not import jitflow
        remote_cls = ray.remote(num_cpus=0, max_restarts=0)(ps_actor.VariableStore)
        name = actor_name(self._job_name, self._task_index)
        deadline = time.monotonic() + wait_seconds()
        while True:
            try:
                store = remote_cls.options(name=name, namespace=self._namespace).remote(
                    self._job_name, self._task_index)
                break
            except ValueError as e:  # the name is taken: a previous process of this task may still be ending
                if time.monotonic() > deadline:
                    raise errors.AlreadyExistsError(None, None, f"Task /job:{self._job_name}/task:"
                                                                f"{self._task_index} is already served: {e}") from None
                time.sleep(0.2)
        self._ping(store, timeout=wait_seconds())
        return store

    def _ping(self, store: Any, timeout: float) -> None:
        ray = ray_cluster.import_ray()
        try:
            ray.get(store.ping.remote(), timeout=timeout)
        except Exception as e:  # any Ray failure here means the task's store is gone
            raise errors.UnavailableError(None, None, f"The variable store of /job:{self._job_name}/task:"
                                                      f"{self._task_index} does not answer: {e}") from None
