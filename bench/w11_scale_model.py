"""W11 at scale: what the ps bandwidth and Ray's object transfer model predict for 8, 32 and 128 workers.

    python bench/w11_scale_model.py --measure        # measures this machine's ps-side cost per step first

Model (asynchronous training, variables split evenly over P ps tasks, as partitioned variables or
many variables under GreedyLoadBalancingStrategy allow):
- a worker's step takes `local_step + round_trip` when no ps task is busy;
- per worker step, each ps task spends `call_cpu + 3 * bytes/P / mem_bw` (deserialize the update,
  add it, serialize the read: Ray passes arrays over 100 KiB through its shared-memory object store,
  one copy in and one out) and its network link carries `2 * bytes/P` (update in, read out) when the
  workers are on other hosts;
- throughput = min(N / (local_step + round_trip), 1 / max(ps_cpu, ps_net)) steps per second (every
  worker step visits every ps task, so sharding divides the bytes but not the per-call cost).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

W4_BYTES = (784 * 512 + 512 + 512 * 10 + 10) * 4


def measure_ps_cpu(nbytes: int, repeats: int = 50) -> float:
    """Seconds the variable store spends on one exchange of `nbytes` (without Ray's call overhead)."""
    from jitflow.distributed.ps_actor import VariableStore
    from jitflow.train.training_ops import UPDATES

    store = VariableStore("ps", 0)
    n = nbytes // 4
    store.push({"w": np.zeros(n, np.float32)}, {})
    sgd = (UPDATES["ApplyGradientDescent"].rule, ("w",), [np.float32(0.01), np.ones(n, np.float32)])
    t0 = time.perf_counter()
    for _ in range(repeats):
        got = store.exchange({}, {}, [sgd], ["w"])
        bytes(memoryview(got["w"]))  # the copy Ray makes into its object store
    return (time.perf_counter() - t0) / repeats


def throughput(n: int, p: int, a: argparse.Namespace) -> tuple[float, str]:
    """Global steps per second of `n` workers on `p` ps tasks, and what bounds it."""
    share = a.bytes / p
    ps_cpu = a.call_cpu_ms / 1e3 + a.ps_cpu_ms / 1e3 * share / a.bytes
    ps_net = 2 * share / (a.nic_gbit * 1e9 / 8)
    workers = n / ((a.local_step_ms + a.round_trip_ms) / 1e3)
    ps = 1 / max(ps_cpu, ps_net)  # every worker step visits every ps task
    return min(workers, ps), ("workers" if workers <= ps else ("ps network" if ps_net > ps_cpu else "ps cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=float, default=W4_BYTES, help="model size (default W4: 1.63 MB)")
    parser.add_argument("--local-step-ms", type=float, default=18.0, help="a worker's local step (W11)")
    parser.add_argument("--round-trip-ms", type=float, default=2.0, help="one exchange call, unloaded")
    parser.add_argument("--call-cpu-ms", type=float, default=0.3, help="Ray's per-call cost on the ps task")
    parser.add_argument("--ps-cpu-ms", type=float, default=1.0, help="ps-side work per exchange of --bytes")
    parser.add_argument("--nic-gbit", type=float, default=10.0, help="each ps host's network link")
    parser.add_argument("--measure", action="store_true", help="measure --ps-cpu-ms on this machine")
    a = parser.parse_args()
    if a.measure:
        a.ps_cpu_ms = measure_ps_cpu(int(a.bytes)) * 1e3
    print(f"model {a.bytes / 1e6:.2f} MB, local step {a.local_step_ms} ms, round trip {a.round_trip_ms} ms, "
          f"ps cpu {a.call_cpu_ms} + {a.ps_cpu_ms:.2f} ms per exchange, {a.nic_gbit} Gbit/s links")
    print("| workers | ps tasks | global steps/s | bound | steps/s per worker |")
    print("|---|---|---|---|---|")
    for n in (8, 32, 128):
        for p in (1, 2, 4, 8, 16, 32, 64):
            x, bound = throughput(n, p, a)
            print(f"| {n} | {p} | {x:.0f} | {bound} | {x / n:.1f} |")
            if bound == "workers":
                break  # more ps tasks no longer help: sharding has taken over


if __name__ == "__main__":
    main()
