"""Records tests/data/tf_loops with TensorFlow (run once, with TF installed; TF_USE_LEGACY_KERAS=1):
graphs with TF 1.x control-flow frames (Enter/Merge/Switch/LoopCond/NextIteration/Exit) and TensorArrays.

- frozen_lstm.pb: a dynamic_rnn LSTM inference graph with its variables frozen (TF's
  convert_variables_to_constants), output `out`;
- frozen_bidi.pb: a frozen bidirectional_dynamic_rnn (2-layer GRU forward, LSTM backward), output `out`;
- while.pb: a plain tf.while_loop with a loop invariant and maximum_iterations (`x` -> `r_i`, `r_a`);
- nested.pb: a tf.cond in a loop body and a loop inside a loop (`n` -> `acc`);
- functional.pb: map_fn, scan, foldl and a dynamic_size TensorArray (`x` -> `squares`, `cum`, `fold`, `grown`);
- rnn.ckpt.*: a tiny BasicRNNCell dynamic_rnn trained 2 steps with SGD, its .meta and checkpoint (the
  gradient loop with its stacks included); collection `train_op`;
- expected.npz: the inputs and the values TF computed (outputs, loss after one more step, weights).
"""
import os
import shutil

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
tf.disable_resource_variables()
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_loops")
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
rng = np.random.RandomState(0)
xs = rng.randn(2, 5, 3).astype(np.float32)  # batch 2, 5 steps, 3 features
ys = rng.randn(2, 4).astype(np.float32)
lens = np.array([5, 3], np.int32)
wx = rng.randn(2, 3).astype(np.float32)
res = {"x": xs, "y": ys, "lens": lens, "wx": wx}

with tf.Graph().as_default():  # frozen LSTM inference graph
    x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
    seq = tf.placeholder(tf.int32, [None], name="lens")
    cell = tf.nn.rnn_cell.LSTMCell(4, initializer=tf.random_normal_initializer(seed=1))
    outs, st = tf.nn.dynamic_rnn(cell, x, sequence_length=seq, dtype=tf.float32)
    out = tf.identity(outs, name="out")
    h = tf.identity(st.h, name="h")
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        res["lstm_out"], res["lstm_h"] = s.run([out, h], {x: xs, seq: lens})
        frozen = tf.graph_util.convert_variables_to_constants(s, s.graph.as_graph_def(), ["out", "h"])
with open(os.path.join(OUT, "frozen_lstm.pb"), "wb") as f:
    f.write(frozen.SerializeToString())

with tf.Graph().as_default():  # frozen bidirectional_dynamic_rnn: 2-layer GRU forward, LSTM backward
    x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
    seq = tf.placeholder(tf.int32, [None], name="lens")
    fw = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.GRUCell(4), tf.nn.rnn_cell.GRUCell(3)])
    (of, ob), _ = tf.nn.bidirectional_dynamic_rnn(fw, tf.nn.rnn_cell.BasicLSTMCell(4), x, sequence_length=seq,
                                                  dtype=tf.float32)
    tf.concat([of, ob], 2, name="out")
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        res["bidi_out"] = s.run("out:0", {x: xs, seq: lens})
        frozen = tf.graph_util.convert_variables_to_constants(s, s.graph.as_graph_def(), ["out"])
with open(os.path.join(OUT, "frozen_bidi.pb"), "wb") as f:
    f.write(frozen.SerializeToString())

with tf.Graph().as_default():  # a plain while_loop
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    w = tf.constant(wx.T @ wx * 0.1, name="w")
    i0 = tf.constant(0, name="i0")
    r = tf.while_loop(lambda i, a: tf.reduce_sum(a) < 100.0, lambda i, a: [i + 1, tf.tanh(a @ w) * 2 + a],
                      [i0, x], maximum_iterations=7, name="loop")
    tf.identity(r[0], name="r_i")
    tf.identity(r[1], name="r_a")
    with tf.Session() as s:
        res["while_i"], res["while_a"] = s.run(["r_i:0", "r_a:0"], {x: wx})
    tf.train.write_graph(tf.get_default_graph(), OUT, "while.pb", as_text=False)

with tf.Graph().as_default():  # a tf.cond inside a loop body, and a loop inside a loop
    n = tf.placeholder(tf.int32, [], name="n")

    def outer(i, acc):
        inner = tf.while_loop(lambda j, b: j < i, lambda j, b: [j + 1, b + tf.cast(j, tf.float32)],
                              [0, tf.constant(0.0)], name="inner")[1]
        step = tf.cond(tf.equal(i % 2, 0), lambda: inner * 2.0, lambda: -inner)
        return [i + 1, acc + step]

    tf.identity(tf.while_loop(lambda i, acc: i < n, outer, [0, tf.constant(0.0)], name="outer")[1], name="acc")
    with tf.Session() as s:
        res["nested_acc"] = s.run("acc:0", {n: 6})
    tf.train.write_graph(tf.get_default_graph(), OUT, "nested.pb", as_text=False)

with tf.Graph().as_default():  # map_fn, scan, foldl and a dynamically sized TensorArray
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    tf.identity(tf.map_fn(lambda r: tf.reduce_sum(r * r), x), name="squares")
    tf.identity(tf.scan(lambda c, r: c * 0.5 + r, x), name="cum")
    tf.identity(tf.foldl(lambda c, r: c + tf.reduce_max(r), x, initializer=tf.constant(0.0)), name="fold")
    ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
    _, ta = tf.while_loop(lambda i, t: i < 4, lambda i, t: [i + 1, t.write(i, tf.cast(i, tf.float32) * 2.0)],
                          [0, ta])
    tf.identity(ta.stack(), name="grown")
    with tf.Session() as s:
        for k, v in zip(["squares", "cum", "fold", "grown"],
                        s.run(["squares:0", "cum:0", "fold:0", "grown:0"], {x: xs[0]})):
            res["fn_" + k] = v
    tf.train.write_graph(tf.get_default_graph(), OUT, "functional.pb", as_text=False)

with tf.Graph().as_default():  # a tiny RNN training graph, saved as .meta + checkpoint
    tf.set_random_seed(3)
    x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 4], name="y")
    cell = tf.nn.rnn_cell.BasicRNNCell(4)
    outs, st = tf.nn.dynamic_rnn(cell, x, dtype=tf.float32)
    pred = tf.identity(st, name="pred")
    loss = tf.reduce_mean(tf.square(pred - y), name="loss")
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
    grads = tf.gradients(loss, x, name="gradients_dx")
    tf.identity(grads[0], name="dloss_dx")
    tf.add_to_collection("train_op", train)
    saver = tf.train.Saver()
    feed = {x: xs, y: ys}
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        for _ in range(2):
            s.run(train, feed)
        saver.save(s, os.path.join(OUT, "rnn.ckpt"))
        res["rnn_pred"], res["rnn_dx"] = s.run([pred, "dloss_dx:0"], feed)
        s.run(train, feed)
        res["rnn_loss3"] = s.run(loss, feed)
        res["rnn_kernel3"] = s.run(tf.trainable_variables()[0])
np.savez(os.path.join(OUT, "expected.npz"), **res)
print(sorted(res))
with open(os.path.join(OUT, "checkpoint"), "w") as f:  # relative paths: the folder may move
    f.write('model_checkpoint_path: "rnn.ckpt"\nall_model_checkpoint_paths: "rnn.ckpt"\n')
