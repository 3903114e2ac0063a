"""W10 input: run with TensorFlow installed (not a jitflow dependency).

    python bench/make_w10_graph.py DIR

Builds the W7 network (conv 5x5x1x32 + bias + ReLU + 2x2 max pool, conv 5x5x32x64 + bias + ReLU + pool,
dense 3136->1024 + ReLU, dense ->10, softmax) in TensorFlow with seeded weights, freezes it with TF's
own convert_variables_to_constants into DIR/w10_frozen.pb, and records in DIR/w10_tf.npz the inputs,
TF's outputs and TF's median latency (ms) at batch 1 and 64.
"""
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
tf.disable_resource_variables()
out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
rng = np.random.RandomState(7)


def var(shape, name):
    return tf.Variable((rng.randn(*shape) * 0.05).astype(np.float32), name=name)


x = tf.placeholder(tf.float32, [None, 28, 28, 1], name="x")
h = tf.nn.relu(tf.nn.conv2d(x, var([5, 5, 1, 32], "wc1"), [1, 1, 1, 1], "SAME") + var([32], "bc1"))
h = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")
h = tf.nn.relu(tf.nn.conv2d(h, var([5, 5, 32, 64], "wc2"), [1, 1, 1, 1], "SAME") + var([64], "bc2"))
h = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")
h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 3136]), var([3136, 1024], "wd1")) + var([1024], "bd1"))
prob = tf.nn.softmax(tf.matmul(h, var([1024, 10], "wout")) + var([10], "bout"), name="prob")
with tf.Session() as s:
    s.run(tf.global_variables_initializer())
    frozen = tf.graph_util.convert_variables_to_constants(s, s.graph.as_graph_def(), ["prob"])
with open(os.path.join(out_dir, "w10_frozen.pb"), "wb") as f:
    f.write(frozen.SerializeToString())

g = tf.Graph()
with g.as_default():
    tf.import_graph_def(frozen, name="")
record = {}
with tf.Session(graph=g) as s:
    for batch in (1, 64):
        xb = rng.rand(batch, 28, 28, 1).astype(np.float32)
        record[f"x{batch}"] = xb
        record[f"prob{batch}"] = s.run("prob:0", {"x:0": xb})
        for _ in range(5):
            s.run("prob:0", {"x:0": xb})
        times = []
        for _ in range(30 if batch == 1 else 10):
            t0 = time.perf_counter()
            s.run("prob:0", {"x:0": xb})
            times.append(time.perf_counter() - t0)
        record[f"tf_ms{batch}"] = np.median(times) * 1e3
np.savez(os.path.join(out_dir, "w10_tf.npz"), **record)
print({k: float(v) for k, v in record.items() if k.startswith("tf_ms")})
