"""W2 probe: the 10-op elementwise chain on 10M float32, jitflow vs NumPy, ratio and max rel. error.

Usage: python bench/probes/w2_probe.py [N]
"""
import sys
import time

import numpy as np

import jitflow as tf


def numpy_w2(x: np.ndarray) -> np.ndarray:
    y = np.tanh(np.float32(1.5) * x + np.float32(0.3)) * (1 / (1 + np.exp(-x))) - np.float32(0.5) * x * x
    return np.exp(-np.abs(y)) + np.maximum(y, np.float32(0))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    xv = np.random.default_rng(0).normal(0, 2, n).astype(np.float32)
    x = tf.placeholder(tf.float32, [None])
    y = tf.tanh(1.5 * x + 0.3) * tf.sigmoid(x) - 0.5 * tf.square(x)
    out = tf.exp(-tf.abs(y)) + tf.maximum(y, 0.0)
    with tf.Session() as sess:
        t0 = time.perf_counter()
        r = sess.run(out, {x: xv})
        first = time.perf_counter() - t0
        plan = list(sess._plans.values())[-1]
        rep = plan.report
        tj, tn = [], []
        for _ in range(10):
            t0 = time.perf_counter()
            r = sess.run(out, {x: xv})
            tj.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref = numpy_w2(xv)
            tn.append(time.perf_counter() - t0)
    err = np.max(np.abs(r.astype(np.float64) - ref) / np.maximum(np.abs(ref), 1e-30))
    print(f"W2 clusters={len(rep['clusters'])} fallbacks={len(rep['fallbacks'])} first run {first:.3f}s")
    print(f"W2 jitflow {np.median(tj) * 1e3:.2f} ms, numpy {np.median(tn) * 1e3:.2f} ms, "
          f"ratio {np.median(tj) / np.median(tn):.3f}, max rel err {err:.2e}")


if __name__ == "__main__":
    main()
