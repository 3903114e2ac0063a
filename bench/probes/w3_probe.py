"""W3 probe: the linear regression of acceptance/a03 (one sess.run(train_op) per scalar sample), µs/step,
compiled vs interpreted (JIT off) in the same process.

Usage: python bench/probes/w3_probe.py [--profile]
"""
import sys
import time

import numpy as np

import jitflow as tf


def build() -> tuple:
    tf.reset_default_graph()
    X = tf.placeholder("float")
    Y = tf.placeholder("float")
    w = tf.Variable(tf.random_normal([1], seed=1), name="weight")
    b = tf.Variable(tf.random_normal([1], seed=2), name="bias")
    z = tf.multiply(X, w) + b
    cost = tf.reduce_mean(tf.square(Y - z))
    opt = tf.train.GradientDescentOptimizer(0.01).minimize(cost)
    return X, Y, opt


def measure(jit: bool, xs: np.ndarray, ys: np.ndarray) -> float:
    X, Y, opt = build()
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.global_variables_initializer())
        for x, y in zip(xs, ys):
            sess.run(opt, feed_dict={X: x, Y: y})
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            for x, y in zip(xs, ys):
                sess.run(opt, feed_dict={X: x, Y: y})
            ts.append((time.perf_counter() - t0) / len(xs) * 1e6)
        if "--profile" in sys.argv and jit:
            import cProfile

            cProfile.runctx("for x, y in zip(xs, ys): sess.run(opt, feed_dict={X: x, Y: y})", globals(),
                            locals(), sort="tottime")
    return float(np.median(ts))


def main() -> None:
    xs = np.linspace(-1, 1, 100)
    ys = 3 * xs + np.random.default_rng(0).normal(size=100) * 0.3
    jit = measure(True, xs, ys)
    interp = measure(False, xs, ys)
    print(f"W3 jitflow {jit:.1f} us/step, interpreted {interp:.1f} us/step")


if __name__ == "__main__":
    main()
