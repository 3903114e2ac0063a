"""Writes tf_random.npz: reference random numbers drawn by TensorFlow (run with TensorFlow installed).

The jitflow tests compare its random ops against these values bit for bit.
"""
import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()


def graph_ops():
    return {
        "normal_f32": tf.random_normal([1001], seed=7),
        "normal_f64": tf.random_normal([301], seed=7, dtype=tf.float64),
        "normal_scaled": tf.random_normal([3, 5], mean=2.0, stddev=3.0, seed=11),
        "uniform_f32": tf.random_uniform([301], seed=3),
        "uniform_f64": tf.random_uniform([301], seed=3, dtype=tf.float64),
        "uniform_range": tf.random_uniform([7], -2.0, 5.0, seed=3),
        "truncated_f32": tf.truncated_normal([1001], seed=5),
        "truncated_f64": tf.truncated_normal([301], seed=5, dtype=tf.float64),
        "int32": tf.random_uniform([301], 3, 1000, dtype=tf.int32, seed=9),
        "int64": tf.random_uniform([301], -5, 10**12, dtype=tf.int64, seed=9),
        "dropout": tf.nn.dropout(tf.ones([64]), keep_prob=0.5, seed=4),
    }


out = {}
with tf.Graph().as_default():
    ops = graph_ops()
    with tf.Session() as sess:
        first, second = sess.run(ops), sess.run(ops)
    for k in ops:
        out[k + "/1"], out[k + "/2"] = first[k], second[k]
with tf.Graph().as_default():
    tf.set_random_seed(42)
    a = tf.random_normal([4])
    b = tf.Variable(tf.random_uniform([3]))
    c = tf.get_variable("c", [2, 3])
    d = tf.get_variable("d", [3, 2], initializer=tf.truncated_normal_initializer(stddev=0.1))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out["graph_seed/a"], out["graph_seed/b"], out["graph_seed/c"], out["graph_seed/d"] = sess.run([a, b, c, d])
np.savez("tf_random.npz", **out)
