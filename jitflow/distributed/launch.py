"""`jitflow launch --ps N --workers M train.py [args]`: every task of a TF1 ps/worker program as a Ray actor.

Each task runs the script with `--job_name`, `--task_index` (and `--ps_hosts`/`--worker_hosts`, the
flags of TF's documented trainer); the tasks' output is streamed with a `[job/index]` prefix, and a
progress line reports the global step (read from the ps tasks) and global steps per second.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any, TextIO

from jitflow.distributed import ray_cluster
from jitflow.distributed.cluster_spec import ClusterSpec
from jitflow.distributed.server import actor_name

Task = tuple[str, int]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_for(ps: int, workers: int) -> ClusterSpec:
    """A ClusterSpec with `ps` ps tasks and `workers` worker tasks, each named by a free local port."""
    if ps < 0 or workers < 1:
        raise ValueError(f"launch needs at least one worker and no negative ps count: --ps {ps} --workers {workers}")
    ports = _free_ports(ps + workers)
    return ClusterSpec({"ps": [f"localhost:{p}" for p in ports[:ps]],
                        "worker": [f"localhost:{p}" for p in ports[ps:]]})


def _connect(cluster: ClusterSpec) -> tuple[Any, str, bool]:
    """The ray module, the cluster's address for the tasks, and whether this process started it."""
    ray = ray_cluster.import_ray()
    if ray.is_initialized():
        return ray, ray.get_runtime_context().gcs_address, False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray_cluster.connect(cluster)
        return ray, ray.get_runtime_context().gcs_address, False
    ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False,
             configure_logging=False, _node_ip_address="127.0.0.1",
             object_store_memory=int(os.environ.get("JITFLOW_RAY_OBJECT_STORE_MB", "256")) << 20)
    return ray, ray.get_runtime_context().gcs_address, True


class _Progress:
    """Global steps per second, from the global step the ps tasks hold."""

    def __init__(self, ray: Any, cluster: ClusterSpec, namespace: str) -> None:
        self._ray, self._cluster, self._namespace = ray, cluster, namespace
        self._last: tuple[float, int] | None = None

    def global_step(self) -> int | None:
        for i in range(self._cluster.num_tasks("ps") if "ps" in self._cluster.jobs else 0):
            try:
                store = self._ray.get_actor(actor_name("ps", i), namespace=self._namespace)
                got = self._ray.get(store.pull.remote(["global_step"]), timeout=5)
            except (ValueError, self._ray.exceptions.RayError):
                continue
            if "global_step" in got:
                return int(got["global_step"])
        return None

    def line(self) -> str | None:
        step, now = self.global_step(), time.monotonic()
        if step is None:
            return None
        last, self._last = self._last, (now, step)
        if last is None or now <= last[0]:
            return f"[launch] global step {step}"
        return f"[launch] global step {step}, {(step - last[1]) / (now - last[0]):.1f} global steps/s"


def _task_argv(script: str, script_args: list[str], cluster: ClusterSpec, task: Task, hosts_flags: bool) -> list[str]:
    argv = ["{python}", os.path.abspath(script), *script_args, f"--job_name={task[0]}", f"--task_index={task[1]}"]
    if hosts_flags:
        argv += [f"--{job}_hosts={','.join(a for a in cluster.job_tasks(job) if a)}" for job in cluster.jobs]
    return argv


def _pump(ray: Any, runners: dict[Task, Any], codes: dict[Task, int], out: TextIO) -> None:
    """Prints every task's new output with its prefix and records the exit status of tasks that ended."""
    live = [t for t in runners if t not in codes]
    results = ray.get([runners[t].take.remote() for t in live], timeout=60)
    for task, (lines, code) in zip(live, results):
        for line in lines:
            print(f"[{task[0]}/{task[1]}] {line}", file=out, flush=True)
        if code is not None:
            codes[task] = code


def launch(script: str, script_args: list[str], ps: int = 1, workers: int = 2, hosts_flags: bool = True,
           out: TextIO = sys.stdout, progress_secs: float = 5.0, poll_secs: float = 0.3) -> int:
    """Runs every task of `script` as a Ray actor until all workers end; returns the workers' worst status."""
    from ray import cloudpickle

    from jitflow.distributed import task_runner

    cluster = cluster_for(ps, workers)
    ray, address, started = _connect(cluster)
    cloudpickle.register_pickle_by_value(task_runner)
    runner_cls = ray.remote(num_cpus=0, max_restarts=0)(task_runner.TaskRunner)
    env = {"RAY_ADDRESS": address, "PYTHONPATH": os.pathsep.join(p for p in (os.getcwd(), os.environ.get(
        "PYTHONPATH", "")) if p), "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    tasks = [(job, i) for job in cluster.jobs for i in cluster.task_indices(job)]
    runners: dict[Task, Any] = {}
    codes: dict[Task, int] = {}
    progress = _Progress(ray, cluster, ray_cluster.namespace_for(cluster))
    try:
        for t in tasks:
            runners[t] = runner_cls.remote(_task_argv(script, script_args, cluster, t, hosts_flags), env)
        next_progress = time.monotonic() + progress_secs
        while any(t not in codes for t in tasks if t[0] != "ps"):
            _pump(ray, runners, codes, out)
            if time.monotonic() >= next_progress:
                line = progress.line()
                if line:
                    print(line, file=out, flush=True)
                next_progress += progress_secs
            time.sleep(poll_secs)
        _pump(ray, runners, codes, out)
        return max((codes[t] for t in tasks if t[0] != "ps"), default=0)
    finally:
        for r in runners.values():
            try:
                ray.get(r.kill.remote(), timeout=30)
            except ray.exceptions.RayError:
                pass
            ray.kill(r)
        if started:
            ray.shutdown()


def add_parser(subparsers: Any) -> None:
    """Adds `launch` to the jitflow command line."""
    p = subparsers.add_parser(
        "launch", help="run every task of a TF1 ps/worker program as Ray actors",
        description="Start each task of a between-graph replicated program on the Ray cluster of RAY_ADDRESS "
        "(or a local one): the script gets --job_name, --task_index, --ps_hosts and --worker_hosts. Output "
        "is streamed with a [job/index] prefix, with a progress line of global steps per second.")
    p.add_argument("--ps", type=int, default=1, help="number of ps tasks (default 1)")
    p.add_argument("--workers", type=int, default=2, help="number of worker tasks (default 2)")
    p.add_argument("--no-hosts-flags", action="store_true",
                   help="do not pass --ps_hosts/--worker_hosts to the script")
    p.add_argument("--progress-secs", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="SCRIPT.py [ARGS]")
    p.set_defaults(func=_cmd_launch)


def _cmd_launch(args: argparse.Namespace) -> int:
    if not args.command:
        print("jitflow launch: error: give the script to run", file=sys.stderr)
        return 2
    return launch(args.command[0], args.command[1:], args.ps, args.workers, not args.no_hosts_flags,
                  progress_secs=args.progress_secs)
