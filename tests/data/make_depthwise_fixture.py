"""Records TensorFlow's depthwise/separable/transposed convolutions and their gradients (run with TF's Python).

    /work/tfvenv/bin/python tests/data/make_depthwise_fixture.py   # writes tests/data/depthwise_tf.npz
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
rng = np.random.default_rng(7)
CASES = {  # name: (x shape, filter shape, strides, padding, dilations)
    "same_s2": ((2, 7, 6, 3), (3, 3, 3, 2), [1, 2, 2, 1], "SAME", [1, 1]),
    "valid_d2": ((1, 8, 9, 2), (2, 3, 2, 3), [1, 1, 1, 1], "VALID", [2, 2]),
}
out: dict[str, np.ndarray] = {}
for name, (xs, fs, st, pad, dil) in CASES.items():
    x, f = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(fs).astype(np.float32)
    pw = rng.standard_normal((1, 1, fs[2] * fs[3], 4)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        xt, ft, pt = tf.constant(x), tf.constant(f), tf.constant(pw)
        y = tf.nn.depthwise_conv2d(xt, ft, st, pad, rate=dil)
        z = tf.nn.separable_conv2d(xt, ft, pt, st, pad, rate=dil)
        r = rng.standard_normal(z.shape.as_list()).astype(np.float32)
        grads = tf.gradients(z, [xt, ft, pt], grad_ys=tf.constant(r))
        vals = sess.run([y, z, *grads])
    for k, v in zip(("x", "f", "pw", "r", "y", "z", "dx", "df", "dpw"), (x, f, pw, r, *vals)):
        out[f"{name}/{k}"] = v
np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "depthwise_tf.npz"), **out)
print(sorted(out))
