"""W11: the W4 MLP with its variables on 1 ps task, trained by 2 worker tasks, each its own process.

    python bench/w11_distributed.py --seconds 10              # jitflow, and TensorFlow where it is found
    JITFLOW_BENCH_TF_PYTHON=/path/to/tf/python python bench/w11_distributed.py

For each backend (jitflow on Ray; TensorFlow 1.x's own gRPC runtime) it runs two layouts on localhost:
1 ps + 2 workers (aggregate examples per second: the workers' rates summed over their timed windows)
and 1 ps + 1 worker (the per-step overhead of remote variables: that worker's step time minus the
same step in a local session of the same process). The same file is the task program (`task`).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads as W  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tf_module(backend: str) -> Any:
    if backend == "jitflow":
        import jitflow as tf

        return tf
    import tensorflow.compat.v1 as tf  # type: ignore[import-not-found]

    tf.disable_v2_behavior()
    return tf


def _wait_initialized(tf: Any, sess: Any, timeout: float = 120) -> None:
    ready = tf.report_uninitialized_variables()
    deadline = time.monotonic() + timeout
    while len(sess.run(ready)):
        if time.monotonic() > deadline:
            raise TimeoutError("the chief did not initialize the variables")
        time.sleep(0.05)


def _timed_steps(step: Any, seconds: float) -> tuple[int, float]:
    for _ in range(10):  # warm-up: plans built, kernels compiled
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n, time.perf_counter() - t0


def task(args: argparse.Namespace) -> None:
    """One task of the program: ps tasks serve, workers train for `seconds` and print a JSON line."""
    tf = _tf_module(args.backend)
    cluster = tf.train.ClusterSpec({"ps": args.ps_hosts.split(","), "worker": args.worker_hosts.split(",")})
    server = tf.train.Server(cluster, job_name=args.job_name, task_index=args.task_index)
    if args.job_name == "ps":
        server.join()
        return
    params, batches = W.w4_params(), W.w4_batches(args.batch)
    with tf.device(tf.train.replica_device_setter(cluster=cluster,
                                                  worker_device=f"/job:worker/task:{args.task_index}")):
        m = W.build_w4(tf, params)
    feeds = [{m["x"]: xb, m["labels"]: yb} for xb, yb in batches]
    with tf.Session(server.target) as sess:
        if args.task_index == 0:
            sess.run(m["init"])
        _wait_initialized(tf, sess)
        i = iter(range(1 << 62))
        steps, secs = _timed_steps(lambda: sess.run(m["train"], feeds[next(i) % 4]), args.seconds)
    out = {"backend": args.backend, "task": args.task_index, "steps": steps, "seconds": secs, "batch": args.batch}
    if args.local:  # the same step in a local session, for the overhead of remote variables
        g = tf.Graph()
        with g.as_default():
            lm = W.build_w4(tf, params)
            lfeeds = [{lm["x"]: xb, lm["labels"]: yb} for xb, yb in batches]
            with tf.Session(graph=g) as sess:
                sess.run(lm["init"])
                j = iter(range(1 << 62))
                out["local_steps"], out["local_seconds"] = _timed_steps(
                    lambda: sess.run(lm["train"], lfeeds[next(j) % 4]), args.seconds)
    print("W11 " + json.dumps(out), flush=True)
    if args.backend == "tensorflow":  # TF's worker servers never end by themselves
        os._exit(0)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_layout(backend: str, python: str, workers: int, seconds: float, batch: int,
               timeout: float = 300) -> list[dict[str, Any]]:
    """Starts 1 ps and `workers` worker processes; returns the workers' JSON results."""
    ports = _free_ports(1 + workers)
    common = [python, os.path.abspath(__file__), "task", f"--backend={backend}", f"--ps_hosts=localhost:{ports[0]}",
              "--worker_hosts=" + ",".join(f"localhost:{p}" for p in ports[1:]), f"--seconds={seconds}",
              f"--batch={batch}"]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    ps = subprocess.Popen([*common, "--job_name=ps", "--task_index=0"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    procs = []
    try:
        procs = [subprocess.Popen([*common, "--job_name=worker", f"--task_index={i}"]
                                  + (["--local"] if workers == 1 else []), env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(workers)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            lines = [ln for ln in out.splitlines() if ln.startswith("W11 ")]
            if not lines:
                raise RuntimeError(f"{backend} worker failed:\n{err[-3000:]}")
            results.append(json.loads(lines[-1][4:]))
        return results
    finally:
        for p in [*procs, ps]:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


def measure(backend: str, python: str, seconds: float, batch: int) -> dict[str, float]:
    """Aggregate examples/s of 2 workers, and remote vs local step time of 1 worker, for `backend`."""
    two = run_layout(backend, python, 2, seconds, batch)
    one = run_layout(backend, python, 1, seconds, batch)[0]
    remote_step = one["seconds"] / one["steps"]
    local_step = one["local_seconds"] / one["local_steps"]
    return {"examples_per_s": sum(r["steps"] * r["batch"] / r["seconds"] for r in two),
            "steps": [r["steps"] for r in two], "remote_step_ms": remote_step * 1e3,
            "local_step_ms": local_step * 1e3, "overhead_ms": (remote_step - local_step) * 1e3}


def _tf_python() -> str | None:
    explicit = os.environ.get("JITFLOW_BENCH_TF_PYTHON")
    if explicit:
        return explicit
    return sys.executable if W.tensorflow_v1() is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "task"])
    parser.add_argument("--backend", default="jitflow", choices=["jitflow", "tensorflow"])
    parser.add_argument("--job_name")
    parser.add_argument("--task_index", type=int, default=0)
    parser.add_argument("--ps_hosts")
    parser.add_argument("--worker_hosts")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args()
    if args.mode == "task":
        task(args)
        return
    backends = [("jitflow", sys.executable)] + ([("tensorflow", p)] if (p := _tf_python()) else [])
    print(f"W11: W4 MLP (784-512-10, batch {args.batch}), 1 ps + 2 workers on localhost, "
          f"{args.seconds:g} s windows, {os.cpu_count()} CPUs")
    print("| backend | examples/s (2 workers) | steps per worker | 1-worker remote step | local step | "
          "overhead per step |")
    print("|---|---|---|---|---|---|")
    for backend, python in backends:
        r = measure(backend, python, args.seconds, args.batch)
        print(f"| {backend} | {r['examples_per_s']:.0f} | {r['steps']} | {r['remote_step_ms']:.2f} ms | "
              f"{r['local_step_ms']:.2f} ms | {r['overhead_ms']:.2f} ms |", flush=True)


if __name__ == "__main__":
    main()
