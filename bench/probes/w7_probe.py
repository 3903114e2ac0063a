"""W7 / W7i probe: Winograd on and off in one process, interleaved, and the plan's steps timed one by one.

Usage::

    python bench/probes/w7_probe.py ab [ROUNDS]       # W7 step and W7i run, im2col + GEMM vs Winograd, in turns
    python bench/probes/w7_probe.py steps [BATCH] [RUNS]   # per-step min / median over RUNS (JITFLOW_DEBUG=2)
    python bench/probes/w7_probe.py serve [ROUNDS]        # batch-1 runs right after training steps
    python bench/probes/w7_probe.py order [RUNS]          # batch-1 steps timed in plan order, helpers armed
    python bench/probes/w7_probe.py native [RUNS]         # batch-1 runs as one compiled call, its layers timed

`ab` switches Winograd off by making `winograd.applies` return False (the method is chosen per call),
so both variants run the same plan and buffers; each round times 3 training steps and 30 batch-1
inference runs per variant. `steps` runs the training step (BATCH > 1) or the batch-1 logits with
`JITFLOW_DEBUG=2` and aggregates the per-step timings it prints.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cnn_workload as cw  # noqa: E402


def _session(tf: Any, batch: int) -> tuple[Any, Any, dict, dict]:
    g = tf.Graph()
    with g.as_default():
        m = cw.build_cnn(tf, None)
    xs, ys = cw.cnn_batch(batch)
    sess = tf.Session(graph=g)
    sess.run(m["init"])
    return sess, m, {m["x"]: xs, m["y"]: ys, m["keep"]: 0.75}, {m["x"]: xs[:1], m["keep"]: 1.0}


def _timed(fn: Any, n: int, into: list) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        into.append(time.perf_counter() - t0)


def ab(rounds: int) -> None:
    """Interleaved W7 / W7i with Winograd off (0) and on (1)."""
    import jitflow as tf
    from jitflow.kernels import winograd

    on = winograd.applies
    off = lambda c, o, g: False  # noqa: E731
    sess, m, feed, feed1 = _session(tf, 128)
    res: dict[tuple[int, str], list[float]] = {(v, k): [] for v in (0, 1) for k in ("w7", "w7i")}
    for v in (0, 1):  # warm both variants up
        winograd.applies = on if v else off  # type: ignore[assignment]
        sess.run(m["train"], feed)
        sess.run(m["logits"], feed1)
    for _ in range(rounds):
        for v in (0, 1):
            winograd.applies = on if v else off  # type: ignore[assignment]
            _timed(lambda: sess.run(m["train"], feed), 3, res[(v, "w7")])
            _timed(lambda: sess.run(m["logits"], feed1), 30, res[(v, "w7i")])
    winograd.applies = on  # type: ignore[assignment]
    for (v, k), ts in sorted(res.items()):
        name = "winograd" if v else "im2col+gemm"
        print(f"{k:4s} {name:12s} min {min(ts) * 1e3:8.3f} ms  median {statistics.median(ts) * 1e3:8.3f} ms")


def steps(batch: int, runs: int) -> None:
    """Per-step min / median of the training step (batch > 1) or the batch-1 logits."""
    os.environ["JITFLOW_DEBUG"] = "2"
    import jitflow as tf

    sess, m, feed, feed1 = _session(tf, max(batch, 2))
    fetch, fd = (m["train"], feed) if batch > 1 else (m["logits"], feed1)
    with contextlib.redirect_stderr(io.StringIO()):  # the first runs: compile events, the plans' first timings
        for _ in range(3):
            sess.run(fetch, fd)
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        for _ in range(runs):
            sess.run(fetch, fd)
    rows: dict[str, list[float]] = {}
    for line in buf.getvalue().splitlines():
        hit = re.match(r"jitflow: step (.*) ([0-9.]+) us$", line)
        if hit:
            rows.setdefault(hit.group(1), []).append(float(hit.group(2)) / 1e3)
    table = sorted(((statistics.median(v), min(v), k) for k, v in rows.items()), reverse=True)
    for med, low, k in table[:25]:
        print(f"{med:8.2f} {low:8.2f} ms  {k[:110]}")
    print(f"sum of medians {sum(r[0] for r in table):.2f} ms, of minima {sum(r[1] for r in table):.2f} ms")


def serve(rounds: int) -> None:
    """Per round: 10 training steps (batch 128), then 400 batch-1 runs; medians of each 50 runs, in order (a
    serving run right after training should not run slower than later ones)."""
    import jitflow as tf

    sess, m, feed, feed1 = _session(tf, 128)
    for r in range(rounds):
        for _ in range(10):
            sess.run(m["train"], feed)
        ts: list[float] = []
        _timed(lambda: sess.run(m["logits"], feed1), 400, ts)
        print(r, [round(statistics.median(ts[i:i + 50]) * 1e6) for i in range(0, 400, 50)], "us")


def order(runs: int) -> None:
    """Each step of the batch-1 plan timed in plan order inside whole runs (the helpers armed, as a serving
    run arms them), so every step meets the caches the steps before it left: medians and minima."""
    import numpy as np

    import jitflow as tf
    from jitflow.compiler.arena import Arena
    from jitflow.compiler.plan import ARENA_SLOT
    from jitflow.compiler.step import describe_step
    from jitflow.kernels import packed_helpers

    sess, m, _, feed1 = _session(tf, 1)
    for _ in range(100):
        sess.run(m["logits"], feed1)
    plan = [p for p in sess._plans.values() if len(p.feed_slots) == 2][-1]
    per: list[list[float]] = [[] for _ in plan.steps]
    whole: list[float] = []
    for _ in range(runs):
        vals = plan.template.copy()
        vals[ARENA_SLOT] = arena = plan.arenas.pop() if plan.arenas else Arena()
        for t, v in feed1.items():
            vals[plan.slots[t]] = np.asarray(v, t.dtype.np)
        t_run = time.perf_counter()
        with packed_helpers.serving():
            for i, st in enumerate(plan.steps):
                t0 = time.perf_counter()
                st(sess, vals)
                per[i].append(time.perf_counter() - t0)
        whole.append(time.perf_counter() - t_run)
        plan.arenas.append(arena)
    for st, ts in zip(plan.steps, per):
        print(f"{statistics.median(ts) * 1e6:8.1f} {min(ts) * 1e6:8.1f} us  {describe_step(st)[:90]}")
    print(f"whole runs: median {statistics.median(whole) * 1e6:.1f} us, min {min(whole) * 1e6:.1f} us")


def native(runs: int) -> None:
    """W7i as one compiled call (`compiler/native_plan.py`), in turns: the generated function alone (the helper
    armed), the function inside `packed_helpers.serving`, `NativePlan.run`, and `sess.run`: medians, minima."""
    import numpy as np

    import jitflow as tf
    from jitflow.compiler.native_plan import NativePlan, Translations
    from jitflow.kernels import packed_helpers

    sess, m, _, feed1 = _session(tf, 1)
    for _ in range(60):
        sess.run(m["logits"], feed1)
    nat = [p.native.latest() for p in sess._plans.values() if isinstance(p.native, Translations)][-1]
    assert isinstance(nat, NativePlan)
    fv = [np.asarray(feed1[t], t.dtype.np) for t in (m["x"], m["keep"])]
    given: list[Any] = []
    call = nat._call
    nat._call = lambda a: given.append(list(a)) or call(a)  # type: ignore[method-assign]
    nat.run(sess, fv)
    nat._call = call  # type: ignore[method-assign]
    args = given[0]

    def served() -> None:
        with packed_helpers.serving():
            nat.fn(*args)

    ways = {"function": lambda: nat.fn(*args), "function in serving": served,
            "NativePlan.run": lambda: nat.run(sess, fv), "sess.run": lambda: sess.run(m["logits"], feed1)}
    res: dict[str, list[float]] = {k: [] for k in ways}
    packed_helpers.HELPERS.arm()
    try:
        for _ in range(runs):
            for k, fn in ways.items():
                _timed(fn, 1, res[k])
    finally:
        packed_helpers.HELPERS.disarm()
    for k, ts in res.items():
        print(f"{k:20s} median {statistics.median(ts) * 1e6:7.1f} us  min {min(ts) * 1e6:7.1f} us")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "ab"
    if mode == "ab":
        ab(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    elif mode == "serve":
        serve(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    elif mode == "order":
        order(int(sys.argv[2]) if len(sys.argv) > 2 else 400)
    elif mode == "native":
        native(int(sys.argv[2]) if len(sys.argv) > 2 else 400)
    else:
        steps(int(sys.argv[2]) if len(sys.argv) > 2 else 128, int(sys.argv[3]) if len(sys.argv) > 3 else 8)
