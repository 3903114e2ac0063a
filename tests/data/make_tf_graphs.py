"""Records tests/data/tf_graphs with TensorFlow (run once, with TF installed):
a tiny MLP built with ref variables, trained 3 steps, then its checkpoint + .meta, its frozen graph
(TF's convert_variables_to_constants), its write_graph text, and the values TF computed."""
import os

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
tf.disable_resource_variables()
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_graphs")
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
    w4 = s.run(w)
    saver.restore(s, os.path.join(OUT, "model.ckpt"))
    import shutil
    shutil.rmtree(os.path.join(OUT, "saved_model"), ignore_errors=True)
    tf.saved_model.simple_save(s, os.path.join(OUT, "saved_model"), {"x": x}, {"out": out})
    frozen = tf.graph_util.convert_variables_to_constants(s, s.graph.as_graph_def(), ["out"])
with open(os.path.join(OUT, "frozen.pb"), "wb") as f:
    f.write(frozen.SerializeToString())
tf.train.write_graph(tf.get_default_graph(), OUT, "graph.pbtxt", as_text=True)
np.savez(os.path.join(OUT, "expected.npz"), x=xv, y=yv, out=out_v, loss_after_step4=loss4, w_after_step4=w4)
