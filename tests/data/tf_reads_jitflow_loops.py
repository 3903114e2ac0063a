"""Checks with TensorFlow the loop graphs tests/data/jitflow_loops_for_tf.py wrote (see there); prints one
line per check and exits non-zero on a mismatch."""
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
D = sys.argv[1]
e = np.load(os.path.join(D, "expected.npz"))
with tf.Graph().as_default(), tf.Session() as s:
    gd = tf.GraphDef.FromString(open(os.path.join(D, "frozen.pb"), "rb").read())
    tf.import_graph_def(gd, name="")
    names = sorted(k for k in e.files if k.startswith("f_"))
    got = s.run([n + ":0" for n in names], {"x:0": e["x"], "k:0": e["k"]})
    for n, v in zip(names, got):
        assert np.allclose(v, e[n], rtol=1e-5, atol=1e-6), n
    print("frozen loops (while, max iterations, cond in body, nested, in a cond, map_fn, scan, dynamic_rnn):",
          "same outputs")
t = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_loops", "expected.npz"))
for name, feed, want in [("nested.pb", {"n:0": np.int32(6)}, {"acc:0": t["nested_acc"]}),
                         ("frozen_lstm.pb", {"x:0": t["x"], "lens:0": t["lens"]},
                          {"out:0": t["lstm_out"], "h:0": t["lstm_h"]})]:
    with tf.Graph().as_default(), tf.Session() as s:
        tf.import_graph_def(tf.GraphDef.FromString(open(os.path.join(D, "again_" + name), "rb").read()), name="")
        for k, v in want.items():
            assert np.allclose(s.run(k, feed), v, rtol=1e-5, atol=1e-6), (name, k)
    print(f"{name} written by TF, imported and written again by jitflow: TF's outputs")
with tf.Graph().as_default(), tf.Session() as s:
    saver = tf.train.import_meta_graph(os.path.join(D, "model.ckpt.meta"))
    saver.restore(s, os.path.join(D, "model.ckpt"))
    feed = {"x:0": e["x"], "y:0": e["y"]}
    assert np.allclose(s.run("loss:0", feed), e["loss1"], rtol=1e-5)
    assert np.allclose(s.run("dx:0", feed), e["dx"], rtol=1e-4, atol=1e-6), "gradient through the loop differs"
    s.run(tf.get_collection("train_op")[0], feed)
    assert np.allclose(s.run("loss:0", feed), e["loss2"], rtol=1e-5), "training step differs"
    print("RNN training meta graph: imported, restored, gradient and one more step match jitflow")
with tf.Graph().as_default() as g, tf.Session() as s:
    saver = tf.train.import_meta_graph(os.path.join(D, "infer.ckpt.meta"))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(g.get_tensor_by_name("loss:0"))
    saver.restore(s, os.path.join(D, "infer.ckpt"))
    feed = {"x:0": e["x"], "y:0": e["y"]}
    s.run(train, feed)
    assert np.allclose(s.run("loss:0", feed), e["infer_loss_after_step"], rtol=1e-5), "new gradient differs"
    print("LSTM inference meta graph: TF builds gradients through the imported loop; step matches jitflow")
