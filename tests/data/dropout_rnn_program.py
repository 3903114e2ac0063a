"""DropoutWrapper in dynamic_rnn (random ops inside a while loop) and static_rnn, on TensorFlow (argument
`tf`) or jitflow: prints the outputs of two runs as JSON. tf_dropout_rnn.json holds TensorFlow's."""
import json
import os
import sys

import numpy as np

if len(sys.argv) > 1 and sys.argv[1] == "tf":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
else:
    import jitflow as tf
tf.set_random_seed(5)
x = tf.constant(np.random.RandomState(0).rand(3, 4, 2).astype(np.float32))
cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.GRUCell(3), input_keep_prob=0.7, output_keep_prob=0.5, seed=3)
out, st = tf.nn.dynamic_rnn(cell, x, dtype=tf.float32)
s_cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicRNNCell(2), output_keep_prob=0.6)
s_out, _ = tf.nn.static_rnn(s_cell, tf.unstack(x, 4, 1), dtype=tf.float32)
with tf.Session() as s:
    s.run(tf.global_variables_initializer())
    res = {"run1": s.run(out).ravel().tolist(), "run2": s.run(out).ravel().tolist(),
           "static": np.array(s.run(s_out)).ravel().tolist()}
print(json.dumps(res))
