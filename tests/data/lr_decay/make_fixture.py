"""Learning-rate schedules at steps 0, 3, ..., 39, recorded from TensorFlow into tf_values.json.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py
"""
import json
import os

import tensorflow.compat.v1 as tf


def schedules(tf, s):  # the same calls build jitflow's schedules in tests/train/test_lr_decay_more.py
    return [tf.train.cosine_decay_restarts(0.1, s, 10),
            tf.train.cosine_decay_restarts(0.1, s, 7, t_mul=1.0, m_mul=0.5, alpha=0.1),
            tf.train.cosine_decay_restarts(0.1, s, 5, t_mul=1.5, m_mul=0.9),
            tf.train.linear_cosine_decay(0.1, s, 20, num_periods=2.0, alpha=0.1),
            tf.train.piecewise_constant_decay(s, [5, 10], [1.0, 0.5, 0.1])]


def main() -> None:
    tf.disable_v2_behavior()
    s = tf.placeholder(tf.int64, [])
    outs = schedules(tf, s)
    with tf.Session() as sess:
        vals = [[float(sess.run(o, {s: k})) for k in range(0, 40, 3)] for o in outs]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.json"), "w") as f:
        json.dump(vals, f)


if __name__ == "__main__":
    main()
