"""Records TensorFlow's conv2d and its gradients on shapes that jitflow runs through Winograd (run with TF's Python).

    /work/tfvenv/bin/python tests/data/make_winograd_fixture.py   # writes tests/data/winograd_tf.npz
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
rng = np.random.default_rng(11)
CASES = {  # name: (x shape, filter shape, padding): stride 1, 2..5 taps, >= 8 channels each way
    "same_5x5": ((3, 14, 14, 8), (5, 5, 8, 16), "SAME"),
    "valid_3x3": ((2, 11, 9, 12), (3, 3, 12, 8), "VALID"),
    "explicit_4x2": ((2, 10, 7, 9), (4, 2, 9, 10), [[0, 0], [3, 0], [1, 1], [0, 0]]),
}
out: dict[str, np.ndarray] = {}
for name, (xs, fs, pad) in CASES.items():
    x, f = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(fs).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        xt, ft = tf.constant(x), tf.constant(f)
        y = tf.nn.conv2d(xt, ft, [1, 1, 1, 1], pad)
        r = rng.standard_normal(y.shape.as_list()).astype(np.float32)
        vals = sess.run([y, *tf.gradients(y, [xt, ft], grad_ys=tf.constant(r))])
    for k, v in zip(("x", "f", "r", "y", "dx", "df"), (x, f, r, *vals)):
        out[f"{name}/{k}"] = v
np.savez_compressed(os.path.join(os.path.dirname(os.path.abspath(__file__)), "winograd_tf.npz"), **out)
print(sorted(out))
