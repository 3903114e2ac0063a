"""W4 probe: MLP 784-512-10 training step (ReLU, sparse softmax xent, SGD, batch 256), jitflow vs a
hand-written NumPy step, plus cold-compile time of the plan and compiles per process.

Usage: python bench/probes/w4_probe.py
"""
import time

import numpy as np

import jitflow as tf
from jitflow.codegen.cache import cache_stats


def numpy_step(p: dict, x: np.ndarray, y: np.ndarray, lr: np.float32) -> None:
    h = x @ p["w1"] + p["b1"]
    np.maximum(h, 0, out=h)
    logits = h @ p["w2"] + p["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    e /= e.sum(axis=1, keepdims=True)
    e[np.arange(len(y)), y] -= 1
    e /= len(y)
    gw2 = h.T @ e
    gb2 = e.sum(axis=0)
    dh = e @ p["w2"].T
    dh *= h > 0
    gw1 = x.T @ dh
    gb1 = dh.sum(axis=0)
    p["w1"] -= lr * gw1
    p["b1"] -= lr * gb1
    p["w2"] -= lr * gw2
    p["b2"] -= lr * gb2


def main() -> None:
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(256, 784)).astype(np.float32)
    yv = rng.integers(0, 10, 256).astype(np.int32)
    x = tf.placeholder(tf.float32, [None, 784])
    y = tf.placeholder(tf.int32, [None])
    w1 = tf.Variable(rng.normal(0, 0.05, (784, 512)).astype(np.float32))
    b1 = tf.Variable(np.zeros(512, np.float32))
    w2 = tf.Variable(rng.normal(0, 0.05, (512, 10)).astype(np.float32))
    b2 = tf.Variable(np.zeros(10, np.float32))
    h = tf.nn.relu(tf.matmul(x, w1) + b1)
    logits = tf.matmul(h, w2) + b2
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        c0 = cache_stats()["compiled"]
        t0 = time.perf_counter()
        sess.run(train, {x: xv, y: yv})
        cold = time.perf_counter() - t0
        compiled = cache_stats()["compiled"] - c0
        plan = list(sess._plans.values())[-1]
        p = {"w1": sess.run(w1), "b1": sess.run(b1), "w2": sess.run(w2), "b2": sess.run(b2)}
        tj, tn = [], []
        for _ in range(100):
            t0 = time.perf_counter()
            sess.run(train, {x: xv, y: yv})
            tj.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            numpy_step(p, xv, yv, np.float32(0.1))
            tn.append(time.perf_counter() - t0)
        rep = plan.report
        print(f"W4 clusters={len(rep['clusters'])} fallbacks={[f['type'] for f in rep['fallbacks']]}")
        print(f"W4 first run (plan build + compile/load) {cold:.2f}s, kernels compiled {compiled}")
        print(f"W4 jitflow {np.median(tj) * 1e3:.3f} ms/step, numpy {np.median(tn) * 1e3:.3f} ms/step, "
              f"ratio of medians {np.median(tj) / np.median(tn):.3f}, of minima {min(tj) / min(tn):.3f}")


if __name__ == "__main__":
    main()
