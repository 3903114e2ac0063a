"""Writes, with jitflow, the loop graphs that tests/data/tf_reads_jitflow_loops.py checks with TensorFlow:

    python tests/data/jitflow_loops_for_tf.py DIR && /path/to/tf/python tests/data/tf_reads_jitflow_loops.py DIR

- frozen.pb: while_loops (maximum_iterations, a cond in the body, a loop in a loop), map_fn, scan and a
  dynamic_rnn LSTM with sequence_length, frozen; fetches f_a, f_collatz, f_nested, f_sq, f_cum, f_out, f_h;
- again_nested.pb, again_frozen_lstm.pb: tests/data/tf_loops' TF-written graphs imported and written back;
- infer.ckpt + .meta: a dynamic_rnn LSTM inference graph (with its `while_context`), on which both
  sides build an SGD step after import_meta_graph;
- model.ckpt + .meta: a dynamic_rnn GRU trained one step with SGD, with `train_op` and `dx` (a second
  tf.gradients of the same loop); one more step's loss in expected.npz.
"""
import os
import sys

import numpy as np

import jitflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from tests.framework.test_loop_graph_def import E, _build_loops, _train_graph  # noqa: E402

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
res = {"x": E["x"], "y": E["y"], "k": np.int32(3)}
with tf.Graph().as_default() as g:
    fetch, _ = _build_loops()
    names = sorted(fetch)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        for n, v in zip(names, s.run([fetch[n] for n in names], {"x:0": res["x"], "k:0": res["k"]})):
            res["f_" + n] = v
        gd = tf.graph_util.convert_variables_to_constants(s, g.as_graph_def(), [f"f_{n}" for n in names])
with open(os.path.join(OUT, "frozen.pb"), "wb") as f:
    f.write(gd.SerializeToString())

TF_LOOPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_loops")
for name in ("nested.pb", "frozen_lstm.pb"):  # TF-written loops, imported here and written back
    gd = tf.GraphDef()
    with open(os.path.join(TF_LOOPS, name), "rb") as f:
        gd.ParseFromString(f.read())
    with tf.Graph().as_default() as g:
        tf.import_graph_def(gd, name="")
        with open(os.path.join(OUT, "again_" + name), "wb") as f:
            f.write(g.as_graph_def().SerializeToString())

feed = {"x:0": res["x"], "y:0": res["y"]}
with tf.Graph().as_default():
    t = _train_graph(lambda: tf.nn.rnn_cell.GRUCell(4))
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        s.run(t["train"], feed)
        tf.train.Saver().save(s, os.path.join(OUT, "model.ckpt"))
        res["loss1"], res["dx"] = s.run(["loss:0", "dx:0"], feed)
        s.run(t["train"], feed)
        res["loss2"] = s.run(t["loss"], feed)
with tf.Graph().as_default():  # an inference graph: TF builds its training step on the imported loop
    x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 4], name="y")
    _, state = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(4), x, dtype=tf.float32)
    tf.reduce_mean(tf.square(state.h - y), name="loss")
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        tf.train.Saver().save(s, os.path.join(OUT, "infer.ckpt"))
with tf.Graph().as_default() as g:
    saver = tf.train.import_meta_graph(os.path.join(OUT, "infer.ckpt.meta"))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(g.get_tensor_by_name("loss:0"))
    with tf.Session() as s:
        saver.restore(s, os.path.join(OUT, "infer.ckpt"))
        s.run(train, feed)
        res["infer_loss_after_step"] = s.run("loss:0", feed)
np.savez(os.path.join(OUT, "expected.npz"), **res)
print("wrote", OUT)
