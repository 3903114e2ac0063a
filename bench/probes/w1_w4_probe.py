"""W1-W4 of the jitflow on sys.path, min / median, to compare two trees in alternating processes.

Usage (from the repository root; run it alternately for each tree)::

    JITFLOW_CACHE_DIR=/tmp/cache_a PYTHONPATH=/path/to/tree_a:bench python bench/probes/w1_w4_probe.py
    JITFLOW_CACHE_DIR=/tmp/cache_b PYTHONPATH=/path/to/tree_b:bench python bench/probes/w1_w4_probe.py

Prints W1 (us per run, 15 x 2000 runs), W2 (ms per 10M-float run, 15 runs), W3 (us per step over the 100
samples, 15 epochs) and W4 (ms per step, 60 steps).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import workloads as W

import jitflow as tf


def timed(fn: Callable[[], Any], reps: int, inner: int = 1) -> tuple[float, float]:
    """(min, median) seconds per call of `fn` over `reps` rounds of `inner` calls, after two warm rounds."""
    ts = []
    for r in range(reps + 2):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        if r >= 2:
            ts.append((time.perf_counter() - t) / inner)
    return min(ts), float(np.median(ts))


def session(build: Callable[[], Any]) -> tuple[Any, Any]:
    """A session on a new graph holding what `build` returns."""
    g = tf.Graph()
    with g.as_default():
        parts = build()
        init = tf.global_variables_initializer()
    sess = tf.Session(graph=g)
    sess.run(init)
    return sess, parts


def main() -> None:
    out = {}
    s, (a, b, c) = session(lambda: W.build_w1(tf))
    feed = {a: np.float32(1.5), b: np.float32(2.0)}
    out["W1 us"] = [1e6 * v for v in timed(lambda: s.run(c, feed), 15, 2000)]
    s, (x, y) = session(lambda: W.build_w2(tf))
    xv = W.w2_input(10_000_000)
    out["W2 ms"] = [1e3 * v for v in timed(lambda: s.run(y, {x: xv}), 15)]
    s, m3 = session(lambda: W.build_w3(tf))
    tx, ty = W.w3_data()
    samples = [{m3["x"]: xi, m3["y"]: yi} for xi, yi in zip(tx, ty)]
    out["W3 us"] = [1e6 * v / len(tx) for v in timed(lambda: [s.run(m3["train"], f) for f in samples], 15)]
    s, m4 = session(lambda: W.build_w4(tf, W.w4_params()))
    feeds = [{m4["x"]: xb, m4["labels"]: yb} for xb, yb in W.w4_batches(256)]
    step = iter(range(1 << 30))
    out["W4 ms"] = [1e3 * v for v in timed(lambda: s.run(m4["train"], feeds[next(step) % 4]), 60)]
    print(tf.__file__.rsplit("/jitflow/", 1)[0], " ".join(f"{k} {v[0]:.2f}/{v[1]:.2f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
