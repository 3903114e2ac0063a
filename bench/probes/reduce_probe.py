"""Reductions fed by elementwise work, compiled vs NumPy: all-reduce, row reduce, column reduce.

Usage: python bench/probes/reduce_probe.py          # 4000 x 2500
       python bench/probes/reduce_probe.py shapes   # sums of squares over the last axis at W8's sizes and small rows
"""
import time

import numpy as np

import jitflow as tf


def bench(f, n=7):  # type: ignore[no-untyped-def]
    f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    xv = np.random.default_rng(0).normal(size=(4000, 2500)).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, None])
    cases = [("all", tf.reduce_sum(tf.square(x) * 0.5), lambda: np.sum(np.square(xv) * np.float32(0.5))),
             ("rows", tf.reduce_sum(tf.square(x) * 0.5, axis=1), lambda: np.sum(np.square(xv) * np.float32(0.5), 1)),
             ("cols", tf.reduce_sum(tf.square(x) * 0.5, axis=0), lambda: np.sum(np.square(xv) * np.float32(0.5), 0)),
             ("max rows", tf.reduce_max(tf.abs(x), axis=1), lambda: np.max(np.abs(xv), 1))]
    with tf.Session() as sess:
        for name, t, ref in cases:
            tj = bench(lambda t=t: sess.run(t, {x: xv}))  # type: ignore[misc]
            tn = bench(ref)
            err = np.max(np.abs(sess.run(t, {x: xv}) - ref()) / np.maximum(np.abs(ref()), 1e-30))
            print(f"{name:9s} jitflow {tj * 1e3:7.2f} ms  numpy {tn * 1e3:7.2f} ms  ratio {tj / tn:.2f}  "
                  f"max rel diff {err:.1e}")


def shapes() -> None:
    """`reduce_sum(square(x))` over the last axis (all of a vector) for shapes from 2M to rows of 10, per run."""
    rng = np.random.default_rng(0)
    with tf.Session() as sess:
        for shape in [(2_000_000,), (320_000,), (20, 10000), (700, 200), (1000, 37), (7000, 10)]:
            xv = rng.normal(size=shape).astype(np.float32)
            x = tf.placeholder(tf.float32, [None] * len(shape))
            t = tf.reduce_sum(tf.square(x), axis=None if len(shape) == 1 else 1)
            np.testing.assert_allclose(sess.run(t, {x: xv}), np.sum(np.square(xv), axis=None if len(shape) == 1
                                                                    else 1), rtol=1e-5)
            print(f"{str(shape):12s} {bench(lambda t=t, x=x, xv=xv: sess.run(t, {x: xv}), 15) * 1e6:8.1f} us")


if __name__ == "__main__":
    import sys

    shapes() if sys.argv[1:] == ["shapes"] else main()
