"""Records tf.losses.hinge_loss and cosine_distance (with weights and reductions) into tf_values.npz.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

rng = np.random.RandomState(5)
LOGITS = rng.randn(4, 3).astype(np.float32) * 2
LABELS = (rng.rand(4, 3) > 0.5).astype(np.float32)
WEIGHTS = np.array([[1.0], [0.0], [2.0], [0.5]], np.float32)
A = rng.randn(4, 3).astype(np.float32)
B = rng.randn(4, 3).astype(np.float32)
A /= np.linalg.norm(A, axis=1, keepdims=True)
B /= np.linalg.norm(B, axis=1, keepdims=True)


def build(tf):  # also builds jitflow's losses in tests/test_losses_more.py
    r = tf.losses.Reduction
    return {"hinge": tf.losses.hinge_loss(LABELS, LOGITS),
            "hinge_w": tf.losses.hinge_loss(LABELS, LOGITS, weights=WEIGHTS),
            "hinge_none": tf.losses.hinge_loss(LABELS, LOGITS, reduction=r.NONE),
            "cos": tf.losses.cosine_distance(A, B, axis=1),
            "cos_w": tf.losses.cosine_distance(A, B, axis=1, weights=WEIGHTS, reduction=r.SUM),
            "cos_none": tf.losses.cosine_distance(A, B, dim=1, reduction=r.NONE)}


def main() -> None:
    tf.disable_v2_behavior()
    fetch = build(tf)
    fetch["collection"] = tf.constant(len(tf.losses.get_losses()))
    with tf.Session() as sess:
        vals = sess.run(fetch)
    np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.npz"), **vals)


if __name__ == "__main__":
    main()
