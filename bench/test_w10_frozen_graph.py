"""W10: a TensorFlow-written frozen W7 inference graph (`.pb`), loaded with `tf.import_graph_def` and run,
batch 1 and batch 64.

    /path/to/tf/python bench/make_w10_graph.py DIR     # once, where TensorFlow is installed
    JITFLOW_W10_DIR=DIR pytest bench/test_w10_frozen_graph.py

The graph and TF's outputs and latencies come from `make_w10_graph.py` (TF froze the graph with its own
convert_variables_to_constants). When TensorFlow is importable here too, it runs in this process,
side by side; otherwise the latencies TF recorded on this machine are the baseline. Outputs are
checked against TF's; nothing asserts speed.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import workloads as W

import jitflow as tf

DIR = os.environ.get("JITFLOW_W10_DIR", "")


def _load() -> tuple[tf.GraphDef, dict]:
    pb = os.path.join(DIR, "w10_frozen.pb")
    if not DIR or not os.path.exists(pb):
        pytest.skip("set JITFLOW_W10_DIR to the output of bench/make_w10_graph.py")
    gd = tf.GraphDef()
    with open(pb, "rb") as f:
        gd.ParseFromString(f.read())
    return gd, dict(np.load(os.path.join(DIR, "w10_tf.npz")))


def _median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


@pytest.mark.parametrize("batch", [1, 64])
def test_w10(batch: int, record) -> None:  # type: ignore[no-untyped-def]
    gd, ref = _load()
    xb = ref[f"x{batch}"]
    tf_ms = float(ref[f"tf_ms{batch}"])
    real = W.tensorflow_v1()
    if real is not None:
        g = real.Graph()
        with g.as_default():
            real.import_graph_def(real.GraphDef.FromString(gd.SerializeToString()), name="")
        with real.Session(graph=g) as s:
            tf_ms = _median_ms(lambda: s.run("prob:0", {"x:0": xb}), 20)
    g = tf.Graph()
    with g.as_default():
        prob, = tf.import_graph_def(gd, return_elements=["prob:0"], name="")
    with tf.Session(graph=g) as sess:
        got = sess.run(prob, {"x:0": xb})
        np.testing.assert_allclose(got, ref[f"prob{batch}"], rtol=1e-4, atol=1e-5)
        ms = _median_ms(lambda: sess.run(prob, {"x:0": xb}), 30 if batch == 1 else 10)
    record("W10", f"batch{batch}", ms / 1e3, "s/run", "jitflow")
    print(f"\nW10 batch {batch}: jitflow {ms:.2f} ms, TF {tf_ms:.2f} ms, ratio {ms / tf_ms:.2f} "
          f"(target {'0.5' if batch == 1 else '1.0'})")
