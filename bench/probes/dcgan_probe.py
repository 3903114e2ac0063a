"""dcgan probe: warm training steps of the public TF1 `dcgan` example's graph, one framework per process.

Usage::

    python bench/probes/dcgan_probe.py jitflow [STEPS]
    PYTHONPATH=$PWD TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python bench/probes/dcgan_probe.py tensorflow [STEPS]

The graph is the example's (dense -> two strided conv2d_transpose generator; two 5x5 conv + average
pooling discriminator used three times; two Adam optimizers; batch 32), built with the same seed, and
one step is the example's ``sess.run([train_gen, train_disc, gen_loss, disc_loss], feed)``. Prints the
first step (build + compile + run) and the min and median of STEPS warm steps.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

BATCH, NOISE = 32, 200


def _framework(name: str) -> Any:
    if name == "tensorflow":
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow.compat.v1 as tf1

        tf1.disable_v2_behavior()  # as the examples run under TF (run_example.py): ref variables
        return tf1
    import jitflow

    return jitflow


def _generator(tf: Any, x: Any, reuse: bool = False) -> Any:
    with tf.variable_scope("Generator", reuse=reuse):
        x = tf.nn.tanh(tf.layers.dense(x, units=6 * 6 * 128))
        x = tf.reshape(x, shape=[-1, 6, 6, 128])
        x = tf.layers.conv2d_transpose(x, 64, 4, strides=2)
        x = tf.layers.conv2d_transpose(x, 1, 2, strides=2)
        return tf.nn.sigmoid(x)


def _discriminator(tf: Any, x: Any, reuse: bool = False) -> Any:
    with tf.variable_scope("Discriminator", reuse=reuse):
        x = tf.layers.average_pooling2d(tf.nn.tanh(tf.layers.conv2d(x, 64, 5)), 2, 2)
        x = tf.layers.average_pooling2d(tf.nn.tanh(tf.layers.conv2d(x, 128, 5)), 2, 2)
        x = tf.nn.tanh(tf.layers.dense(tf.layers.flatten(x), 1024))
        return tf.layers.dense(x, 2)


def build(tf: Any) -> dict[str, Any]:
    """The example's training graph in the default graph; returns the fetches and a feed."""
    tf.set_random_seed(0)
    noise = tf.placeholder(tf.float32, shape=[None, NOISE])
    real = tf.placeholder(tf.float32, shape=[None, 28, 28, 1])
    gen_sample = _generator(tf, noise)
    disc_concat = tf.concat([_discriminator(tf, real), _discriminator(tf, gen_sample, reuse=True)], axis=0)
    stacked = _discriminator(tf, gen_sample, reuse=True)
    disc_target = tf.placeholder(tf.int32, shape=[None])
    gen_target = tf.placeholder(tf.int32, shape=[None])
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits
    disc_loss = tf.reduce_mean(xent(logits=disc_concat, labels=disc_target))
    gen_loss = tf.reduce_mean(xent(logits=stacked, labels=gen_target))
    trainable = tf.GraphKeys.TRAINABLE_VARIABLES
    train_gen = tf.train.AdamOptimizer(0.001).minimize(gen_loss, var_list=tf.get_collection(trainable, "Generator"))
    train_disc = tf.train.AdamOptimizer(0.001).minimize(disc_loss,
                                                        var_list=tf.get_collection(trainable, "Discriminator"))
    rng = np.random.RandomState(0)
    feed = {real: rng.rand(BATCH, 28, 28, 1).astype(np.float32),
            noise: rng.uniform(-1.0, 1.0, size=[BATCH, NOISE]).astype(np.float32),
            disc_target: np.concatenate([np.ones(BATCH), np.zeros(BATCH)]).astype(np.int32),
            gen_target: np.ones(BATCH, np.int32)}
    return {"fetches": [train_gen, train_disc, gen_loss, disc_loss], "feed": feed,
            "init": tf.global_variables_initializer()}


def main(name: str, steps: int) -> None:
    tf = _framework(name)
    g = tf.Graph()
    t0 = time.perf_counter()
    with g.as_default():
        m = build(tf)
    with tf.Session(graph=g) as sess:
        sess.run(m["init"])
        sess.run(m["fetches"], m["feed"])
        first = time.perf_counter() - t0
        sess.run(m["fetches"], m["feed"])
        ts = []
        for _ in range(steps):
            t1 = time.perf_counter()
            out = sess.run(m["fetches"], m["feed"])
            ts.append(time.perf_counter() - t1)
    print(f"{name}: first step {first:.2f} s, warm step min {min(ts) * 1e3:.1f} ms, median "
          f"{np.median(ts) * 1e3:.1f} ms ({steps} steps), losses {out[2]:.4f} {out[3]:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "jitflow", int(sys.argv[2]) if len(sys.argv) > 2 else 20)
