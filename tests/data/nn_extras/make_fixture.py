"""Records tf.nn's zero_fraction, relu_layer, crelu, weighted_cross_entropy_with_logits, sufficient_statistics +
normalize_moments, lrn, space_to_depth / depth_to_space (values, and gradients of lrn and the loss).

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py  (writes tf_values.npz)
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

rng = np.random.RandomState(7)
X = rng.randn(2, 4, 6, 8).astype(np.float32)
X[0, 0, 0, :3] = 0.0
W = rng.randn(8, 5).astype(np.float32)
B = rng.randn(5).astype(np.float32)
LOGITS = rng.randn(4, 5).astype(np.float32) * 3
LABELS = (rng.rand(4, 5) > 0.5).astype(np.float32)


def build(tf, x, logits):  # the same calls build jitflow's values in tests/ops/test_nn_extras.py
    out = {"zero_fraction": tf.nn.zero_fraction(x),
           "relu_layer": tf.nn.relu_layer(tf.reshape(x, [-1, 8]), W, B),
           "crelu": tf.nn.crelu(x[:, :, :, :3]),
           "wce": tf.nn.weighted_cross_entropy_with_logits(labels=LABELS, logits=logits, pos_weight=2.5),
           "lrn": tf.nn.lrn(x, depth_radius=2, bias=1.5, alpha=0.3, beta=0.75),
           "lrn_default": tf.nn.local_response_normalization(x),
           "s2d": tf.nn.space_to_depth(x, 2),
           "d2s": tf.nn.depth_to_space(x, 2)}
    counts, m_ss, v_ss, shift = tf.nn.sufficient_statistics(x, [0, 1, 2], shift=0.5)
    out["mean"], out["variance"] = tf.nn.normalize_moments(counts, m_ss, v_ss, shift)
    out["count"] = counts
    out["lrn_grad"] = tf.gradients(tf.reduce_sum(out["lrn"] * x), x)[0]
    out["wce_grad"] = tf.gradients(tf.reduce_sum(out["wce"]), logits)[0]
    return out


def main() -> None:
    tf.disable_v2_behavior()
    x, logits = tf.constant(X), tf.constant(LOGITS)
    with tf.Session() as sess:
        vals = sess.run(build(tf, x, logits))
    np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.npz"), **vals)


if __name__ == "__main__":
    main()
