"""Where a kernel call beats interpreting a cluster op by op: a 3-op cluster and a reduction at
growing sizes, per step, with the one-element path at size 1.

Usage: python bench/probes/small_probe.py
"""
import time

import numpy as np

import jitflow as tf
from jitflow.compiler import steps


def per_run(sess: tf.Session, t: tf.Tensor, feed: dict, n: int = 3000) -> float:
    for _ in range(200):
        sess.run(t, feed)
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            sess.run(t, feed)
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def main() -> None:
    x = tf.placeholder(tf.float32, [None])
    ew = tf.nn.relu(x * 2.0 + 1.0)
    red = tf.reduce_mean(tf.square(x - 0.5))
    for size in (1, 16, 64, 256, 1024, 4096):
        xv = np.random.default_rng(0).normal(size=size).astype(np.float32)
        row = []
        for small in (0, 1 << 30):  # 0: always the kernel; huge: always interpreted
            steps.SMALL_SIZE = small
            with tf.Session() as sess:
                row.append((per_run(sess, ew, {x: xv}), per_run(sess, red, {x: xv})))
        (ke, kr), (ie, ir) = row
        print(f"size {size:5d}: elementwise kernel {ke:6.1f} us, interpreted {ie:6.1f} us | "
              f"reduction kernel {kr:6.1f} us, interpreted {ir:6.1f} us")


if __name__ == "__main__":
    main()
