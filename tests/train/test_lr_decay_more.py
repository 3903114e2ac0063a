"""cosine_decay_restarts, linear_cosine_decay and piecewise_constant_decay against TensorFlow's values
(tests/data/lr_decay/tf_values.json, recorded by make_fixture.py there with the same calls)."""
from __future__ import annotations

import json
import os

import numpy as np

import jitflow as tf

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "lr_decay")


def test_schedules_match_tensorflow() -> None:
    with open(os.path.join(HERE, "tf_values.json")) as f:
        want = json.load(f)
    s = tf.placeholder(tf.int64, [])
    outs = [tf.train.cosine_decay_restarts(0.1, s, 10),
            tf.train.cosine_decay_restarts(0.1, s, 7, t_mul=1.0, m_mul=0.5, alpha=0.1),
            tf.train.cosine_decay_restarts(0.1, s, 5, t_mul=1.5, m_mul=0.9),
            tf.train.linear_cosine_decay(0.1, s, 20, num_periods=2.0, alpha=0.1),
            tf.train.piecewise_constant_decay(s, [5, 10], [1.0, 0.5, 0.1])]
    with tf.Session() as sess:
        got = [[sess.run(o, {s: k}) for k in range(0, 40, 3)] for o in outs]
    np.testing.assert_allclose(got, want, rtol=5e-6, atol=1e-8)  # float32 log/pow round differently
