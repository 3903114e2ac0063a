"""`tf.train.ClusterSpec`: the jobs of a distributed program and the address of each of their tasks."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _tasks_of(job_name: str, tasks: Any) -> dict[int, str]:
    """One job's tasks as {task index: address}, from a list of addresses or a dict of them."""
    if isinstance(tasks, Mapping):
        items = list(tasks.items())
    elif isinstance(tasks, (list, tuple)):
        items = list(enumerate(tasks))
    else:
        raise TypeError(f"The tasks for job {job_name!r} must be a list or a dictionary from integers to "
                        f"strings, not {type(tasks).__name__}.")
    out: dict[int, str] = {}
    for index, address in items:
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TypeError(f"Task index for job {job_name!r} must be a non-negative integer, got {index!r}.")
        if isinstance(address, bytes):
            address = address.decode()
        if not isinstance(address, str):
            raise TypeError(f"Task address for job {job_name!r} task {index} must be a string, got "
                            f"{type(address).__name__}.")
        out[index] = address
    return out


class ClusterSpec:
    """A cluster as a set of jobs, each a set of tasks with network addresses ("host:port").

    Built from a dict of job name to a list of addresses (task i is the i-th) or to a dict of task
    index to address (sparse jobs), or from another ClusterSpec.
    """

    def __init__(self, cluster: Any) -> None:
        source: Mapping[Any, Any]
        if isinstance(cluster, ClusterSpec):
            source = cluster.as_dict()
        elif isinstance(cluster, Mapping):
            source = cluster
        else:
            raise TypeError("`cluster` must be a dictionary mapping one or more job names to (i) a list of "
                            "network addresses, or (ii) a dictionary mapping integer task indices to network "
                            f"addresses, or a ClusterSpec; got {type(cluster).__name__}.")
        self._cluster_spec: dict[str, dict[int, str]] = {}
        for job_name, tasks in source.items():
            if not isinstance(job_name, str) or not job_name:
                raise TypeError(f"Job name must be a non-empty string, got {job_name!r}.")
            self._cluster_spec[job_name] = _tasks_of(job_name, tasks)

    # -- comparisons -------------------------------------------------------------------------------------
    def __bool__(self) -> bool:
        return bool(self._cluster_spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClusterSpec) and self._cluster_spec == other._cluster_spec

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value type, like TF's

    def __str__(self) -> str:
        return f"ClusterSpec({self.as_dict()!r})"

    __repr__ = __str__

    # -- queries -----------------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """job name → list of addresses (dense jobs) or dict of task index → address (sparse jobs)."""
        out: dict[str, Any] = {}
        for job_name, tasks in self._cluster_spec.items():
            if sorted(tasks) == list(range(len(tasks))):
                out[job_name] = [tasks[i] for i in range(len(tasks))]
            else:
                out[job_name] = dict(sorted(tasks.items()))
        return out

    @property
    def jobs(self) -> list[str]:
        """The job names, in the order they were given."""
        return list(self._cluster_spec)

    def _job(self, job_name: str) -> dict[int, str]:
        try:
            return self._cluster_spec[job_name]
        except KeyError:
            raise ValueError(f"No such job in cluster: {job_name!r}") from None

    def num_tasks(self, job_name: str) -> int:
        """How many tasks `job_name` has; ValueError if the cluster has no such job."""
        return len(self._job(job_name))

    def task_indices(self, job_name: str) -> list[int]:
        """The task indices of `job_name`, sorted."""
        return sorted(self._job(job_name))

    def task_address(self, job_name: str, task_index: int) -> str:
        """The address of task `task_index` of `job_name`; ValueError naming what is missing."""
        job = self._job(job_name)
        try:
            return job[task_index]
        except KeyError:
            raise ValueError(f"No task with index {task_index!r} in job {job_name!r}") from None

    def job_tasks(self, job_name: str) -> list[str | None]:
        """The addresses of `job_name`'s tasks by index, with None where a sparse job has no task."""
        job = self._job(job_name)
        ret: list[str | None] = [None] * (max(job) + 1 if job else 0)
        for i, address in job.items():
            ret[i] = address
        return ret

    def as_cluster_def(self) -> dict[str, Any]:
        """The cluster as TF's ClusterDef fields: jobs (sorted by name) with their task maps."""
        return {"job": [{"name": n, "tasks": dict(sorted(self._cluster_spec[n].items()))}
                        for n in sorted(self._cluster_spec)]}
