"""A seeded TF1 recurrent-network program that runs unchanged on TensorFlow (argument `tf`) and on jitflow.

It prints one JSON object: the trainable variables' names, their seeded initial values (sums), forward
outputs, gradients and the losses of a few SGD steps. tf_rnn.json holds what TensorFlow printed
(`TF_USE_LEGACY_KERAS=1 /path/to/tf/python rnn_program.py tf > tf_rnn.json`).
"""
import json
import sys

import numpy as np

if len(sys.argv) > 1 and sys.argv[1] == "tf":
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
else:
    import jitflow as tf

rnn_cell = tf.nn.rnn_cell
rng = np.random.RandomState(0)
B, T, D = 4, 5, 3
X = rng.randn(B, T, D).astype(np.float32)
SEQ = np.array([5, 3, 4, 2], np.int32)
Y = rng.randint(0, 2, B)
tf.set_random_seed(42)
x = tf.placeholder(tf.float32, [B, T, D], name="x")
seq = tf.placeholder(tf.int32, [B], name="seq")
y = tf.placeholder(tf.int64, [B], name="y")
steps = tf.unstack(x, T, 1)
with tf.variable_scope("a"):
    out_a, st_a = tf.nn.static_rnn(rnn_cell.BasicLSTMCell(6), steps, dtype=tf.float32, sequence_length=seq)
with tf.variable_scope("b"):
    cell_b = rnn_cell.MultiRNNCell([rnn_cell.LSTMCell(5, use_peepholes=True, cell_clip=0.8, num_proj=4),
                                    rnn_cell.ResidualWrapper(rnn_cell.GRUCell(4))])
    out_b, st_b = tf.nn.dynamic_rnn(cell_b, x, sequence_length=seq, dtype=tf.float32)
with tf.variable_scope("c"):
    (fw_c, bw_c), _ = tf.nn.bidirectional_dynamic_rnn(rnn_cell.BasicRNNCell(3), rnn_cell.LSTMCell(3), x,
                                                      sequence_length=seq, dtype=tf.float32)
with tf.variable_scope("d"):
    out_d, _, _ = tf.nn.static_bidirectional_rnn(rnn_cell.GRUCell(3), rnn_cell.BasicLSTMCell(2), steps,
                                                 dtype=tf.float32)
with tf.variable_scope("e"):
    out_e, st_e = tf.nn.dynamic_rnn(rnn_cell.BasicLSTMCell(4, state_is_tuple=False), tf.transpose(x, [1, 0, 2]),
                                    time_major=True, dtype=tf.float32)
with tf.variable_scope("f"):  # tf.scan and a raw tf.while_loop, both differentiated
    v = tf.get_variable("v", [D], initializer=tf.constant_initializer(0.3))
    sc = tf.scan(lambda a, xt: a * v + tf.tanh(xt), tf.transpose(x, [1, 0, 2]))
    _, wl = tf.while_loop(lambda i, h: i < T, lambda i, h: (i + 1, tf.sin(h * v) + x[:, i % T]),
                          [tf.constant(0), tf.zeros([B, D])])
feat = tf.concat([tf.reduce_mean(sc, 0), wl,
                  out_a[-1], st_b[0].h, st_b[1], tf.reduce_sum(out_b, 1), tf.reduce_mean(fw_c + 2 * bw_c, 1),
                  out_d[0], out_d[-1], st_e, tf.reduce_mean(out_e, 0)], 1)
w = tf.get_variable("w", [int(feat.shape[1]), 2])
logits = tf.matmul(feat, w)
loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
tvars = tf.trainable_variables()
grads = tf.gradients(loss, tvars)
with tf.control_dependencies(grads):  # TF updates in place: no update before every gradient is computed
    train = tf.train.GradientDescentOptimizer(0.5).apply_gradients(zip(grads, tvars))
feed = {x: X, seq: SEQ, y: Y}
res = {"names": [v.name for v in tvars]}
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    res["init"] = [float(np.sum(v)) for v in sess.run(tvars)]
    res["init_first"] = [float(np.ravel(v)[0]) for v in sess.run(tvars)]
    res["feat"] = sess.run(feat, feed).ravel().tolist()
    res["grads"] = [float(np.sum(g * np.cos(np.arange(g.size)).reshape(g.shape))) for g in sess.run(grads, feed)]
    res["losses"] = []
    for _ in range(6):  # loss and update in separate runs: TF's in-place update may race with the loss
        res["losses"].append(float(sess.run(loss, feed)))
        sess.run(train, feed)
    res["final"] = [float(np.sum(v)) for v in sess.run(tvars)]
print(json.dumps(res))
