"""Writes, with jitflow, the files that tests/data/tf_reads_jitflow.py checks with TensorFlow:

    python tests/data/jitflow_for_tf.py DIR && /path/to/tf/python tests/data/tf_reads_jitflow.py DIR

The tiny MLP of make_tf_graphs.py (same weights), trained 3 steps: a checkpoint with its .meta, a
frozen graph, a write_graph text, a SavedModel, and the values jitflow computed (expected.npz).
"""
import os
import sys

import numpy as np

import jitflow as tf

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.RandomState(0)
xv = rng.randn(4, 3).astype(np.float32)
yv = rng.randn(4, 2).astype(np.float32)
x = tf.placeholder(tf.float32, [None, 3], name="x")
y_ = tf.placeholder(tf.float32, [None, 2], name="y_")
w = tf.Variable(rng.randn(3, 5).astype(np.float32), name="w")
b = tf.Variable(np.full(5, 0.5, np.float32), name="b")
v = tf.Variable(rng.randn(5, 2).astype(np.float32), name="v")
h = tf.nn.relu(tf.matmul(x, w) + b)
out = tf.identity(tf.matmul(h, v), name="out")
loss = tf.reduce_mean(tf.square(out - y_), name="loss")
train = tf.train.GradientDescentOptimizer(0.05).minimize(loss, name="train")
tf.add_to_collection("train_op", train)
saver = tf.train.Saver()
with tf.Session() as s:
    s.run(tf.global_variables_initializer())
    for _ in range(3):
        s.run(train, {x: xv, y_: yv})
    saver.save(s, os.path.join(OUT, "model.ckpt"))
    out_v = s.run(out, {x: xv})
    s.run(train, {x: xv, y_: yv})
    loss4 = s.run(loss, {x: xv, y_: yv})
    saver.restore(s, os.path.join(OUT, "model.ckpt"))
    frozen = tf.graph_util.convert_variables_to_constants(s, s.graph.as_graph_def(), ["out"])
    tf.saved_model.simple_save(s, os.path.join(OUT, "saved_model"), {"x": x}, {"out": out})
with open(os.path.join(OUT, "frozen.pb"), "wb") as f:
    f.write(frozen.SerializeToString())
tf.train.write_graph(tf.get_default_graph(), OUT, "graph.pbtxt")
np.savez(os.path.join(OUT, "expected.npz"), x=xv, y=yv, out=out_v, loss_after_step4=loss4)
