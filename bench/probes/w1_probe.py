"""W1/W3 overhead probe: `a*b+1` on two scalar float32 placeholders, µs per Session.run.

Usage: python bench/probes/w1_probe.py [--profile]
"""
import sys
import time

import numpy as np

import jitflow as tf


def main() -> None:
    a = tf.placeholder(tf.float32, [])
    b = tf.placeholder(tf.float32, [])
    c = a * b + 1
    with tf.Session() as sess:
        assert sess.run(c, {a: 2.0, b: 3.0}) == 7.0
        for _ in range(2000):
            sess.run(c, {a: 2.0, b: 3.0})
        ts = []
        for _ in range(15):
            t0 = time.perf_counter()
            for _ in range(2000):
                sess.run(c, {a: 2.0, b: 3.0})
            ts.append((time.perf_counter() - t0) / 2000 * 1e6)
        # NumPy doing the same work on float32 scalars, for scale
        x, y = np.float32(2.0), np.float32(3.0)
        t0 = time.perf_counter()
        for _ in range(20000):
            np.float32(x) * np.float32(y) + np.float32(1)
        npt = (time.perf_counter() - t0) / 20000 * 1e6
        print(f"W1 jitflow: {np.median(ts):.2f} us/run (min {min(ts):.2f}); numpy expression {npt:.2f} us")
        if "--profile" in sys.argv:
            import cProfile
            cProfile.runctx("for _ in range(20000): sess.run(c, {a: 2.0, b: 3.0})", globals(), locals(),
                            sort="tottime")


if __name__ == "__main__":
    main()
