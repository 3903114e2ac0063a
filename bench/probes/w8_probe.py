"""W8 probe: warm training steps of the PTB small LSTM (`bench/test_w8_ptb.py`'s `build_w8`) in one
framework per process, so that TensorFlow (in its own venv) and jitflow can be run alternately.

Usage::

    python bench/probes/w8_probe.py jitflow [STEPS]
    PYTHONPATH=$PWD TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python bench/probes/w8_probe.py tensorflow [STEPS]
    python bench/probes/w8_probe.py loop        # per-iteration overhead of a tiny 2-layer LSTM loop
    python bench/probes/w8_probe.py gemms [N]   # W8's GEMMs alone, through NumPy's BLAS: the step's floor

Prints the first step (build + compile + run), min and median of STEPS warm steps, and the cost.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _framework(name: str) -> Any:
    if name == "tensorflow":
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow.compat.v1 as tf1

        tf1.disable_eager_execution()
        return tf1
    import jitflow

    return jitflow


def w8_steps(name: str, steps: int) -> None:
    """Times `steps` warm W8 training steps."""
    import test_w8_ptb as w8

    tfm = _framework(name)
    g = tfm.Graph()
    t0 = time.perf_counter()
    with g.as_default():
        m = w8.build_w8(tfm)
    with tfm.Session(graph=g) as sess:
        sess.run(m["init"])
        sess.run([m["cost"], m["train"]], m["feed"])
        first = time.perf_counter() - t0
        sess.run([m["cost"], m["train"]], m["feed"])
        ts = []
        for _ in range(steps):
            t1 = time.perf_counter()
            sess.run([m["cost"], m["train"]], m["feed"])
            ts.append(time.perf_counter() - t1)
        cost = sess.run(m["cost"], m["feed"])
    print(f"{name}: first step {first:.1f} s, warm step min {min(ts) * 1e3:.1f} ms, median "
          f"{np.median(ts) * 1e3:.1f} ms ({steps} steps), cost {cost:.3f}")


def loop_overhead(steps: int, t: int = 400) -> None:
    """Per-iteration time of a 2-layer LSTM(8) at batch 1: the kernels do almost nothing, so this is the
    loop's own cost per iteration (a compiled loop's, or the replay's where a loop does not compile) plus
    the run's fixed cost spread over the iterations; tiny clusters still call their kernels."""
    import jitflow as tf
    from jitflow.compiler import steps as compiled_steps

    compiled_steps.SMALL_SIZE = 0
    for mode in ("forward", "forward+backward"):
        with tf.Graph().as_default():
            tf.set_random_seed(1)
            x = tf.placeholder(tf.float32, [1, t, 8])
            cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.LSTMCell(8) for _ in range(2)])
            out, _ = tf.nn.dynamic_rnn(cell, x, dtype=tf.float32)
            loss = tf.reduce_sum(out)
            fetch = loss if mode == "forward" else tf.train.GradientDescentOptimizer(0.01).minimize(loss)
            xv = np.random.RandomState(0).randn(1, t, 8).astype(np.float32)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for _ in range(2):
                    sess.run(fetch, {x: xv})
                ts = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    sess.run(fetch, {x: xv})
                    ts.append(time.perf_counter() - t0)
        print(f"{mode}: per iteration min {min(ts) / t * 1e6:.1f} us, median {np.median(ts) / t * 1e6:.1f} us")


def gemm_floor(rounds: int) -> None:
    """The GEMMs of one W8 step, each shape timed alone (min of `rounds`) through NumPy's BLAS as the plan
    calls it, times its count per step: what any step must spend in GEMMs at this BLAS's speed."""
    rng = np.random.default_rng(0)
    t, b, h, v = 35, 20, 200, 10_000
    cell = 4 * h

    def mat(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    shapes = [  # (what, count per step, a, b): out = a @ b
        ("logits = outputs @ softmax_w", 1, mat(t * b, h), mat(h, v)),
        ("d outputs = d logits @ softmax_w^T", 1, mat(t * b, v), mat(h, v).T),
        ("d softmax_w = outputs^T @ d logits", 1, mat(t * b, h).T, mat(t * b, v)),
        ("gates = [x, h] @ kernel (per layer and step)", 2 * t, mat(b, 2 * h), mat(2 * h, cell)),
        ("d [x, h] = d gates @ kernel^T (row-major copy)", 2 * t, mat(b, cell), mat(cell, 2 * h)),
        ("d kernel = [x, h]^T @ d gates (hoisted, per layer)", 2, mat(t * b, 2 * h).T, mat(t * b, cell)),
    ]
    total = 0.0
    for what, count, a, bm in shapes:
        out = np.empty((a.shape[0], bm.shape[1]), np.float32)
        np.matmul(a, bm, out=out)
        best = min(_timed_matmul(a, bm, out) for _ in range(rounds))
        flops = 2.0 * a.shape[0] * a.shape[1] * bm.shape[1]
        total += best * count
        print(f"{what:52s} x{count:3d}: {best * 1e3:7.3f} ms each ({flops / best / 1e9:6.1f} GFLOP/s), "
              f"{best * count * 1e3:6.1f} ms per step")
    print(f"GEMMs per W8 step: {total * 1e3:.1f} ms")


def _timed_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> float:
    t0 = time.perf_counter()
    np.matmul(a, b, out=out)
    return time.perf_counter() - t0


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "jitflow"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    if which == "loop":
        loop_overhead(n)
    elif which == "gemms":
        gemm_floor(n)
    else:
        w8_steps(which, n)
