"""Learning-rate schedules at steps 0, 3, ..., 39: `python make_fixture.py tf > tf_values.json` records
TensorFlow's (TF_CPP_MIN_LOG_LEVEL=3); `python make_fixture.py jf` prints jitflow's (the test builds the same)."""
import sys, json
import numpy as np
if sys.argv[1] == "tf":
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
else:
    import jitflow as tf
s = tf.placeholder(tf.int64, [])
outs = [tf.train.cosine_decay_restarts(0.1, s, 10), tf.train.cosine_decay_restarts(0.1, s, 7, t_mul=1.0, m_mul=0.5, alpha=0.1),
        tf.train.cosine_decay_restarts(0.1, s, 5, t_mul=1.5, m_mul=0.9), tf.train.linear_cosine_decay(0.1, s, 20, num_periods=2.0, alpha=0.1),
        tf.train.piecewise_constant_decay(s, [5, 10], [1.0, 0.5, 0.1])]
with tf.Session() as sess:
    print(json.dumps([[float(sess.run(o, {s: k})) for k in range(0, 40, 3)] for o in outs]))
