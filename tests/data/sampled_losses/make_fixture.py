"""Records tf.nn.nce_loss and tf.nn.sampled_softmax_loss (with and without accidental-hit removal, num_true 1
and 2) for given sampled_values, with gradients, into tf_values.npz.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

rng = np.random.RandomState(11)
W = rng.randn(20, 6).astype(np.float32)
B = rng.randn(20).astype(np.float32)
X = rng.randn(4, 6).astype(np.float32)
LABELS1 = np.array([[3], [7], [0], [12]], np.int64)
LABELS2 = np.array([[3, 5], [7, 1], [0, 19], [12, 3]], np.int64)
SAMPLED = np.array([3, 9, 0, 15, 1], np.int64)  # 3, 0 and 1 are accidental hits in some rows
TRUE_EXP1 = rng.rand(4, 1).astype(np.float32) + 0.1
TRUE_EXP2 = rng.rand(4, 2).astype(np.float32) + 0.1
SAMPLED_EXP = rng.rand(5).astype(np.float32) + 0.1


def build(tf, w, b, x):  # the same calls build jitflow's losses in tests/ops/test_sampled_losses.py
    out = {}
    for tag, labels, true_exp, nt in (("1", LABELS1, TRUE_EXP1, 1), ("2", LABELS2, TRUE_EXP2, 2)):
        sv = (SAMPLED, true_exp, SAMPLED_EXP)
        out["nce" + tag] = tf.nn.nce_loss(w, b, labels, x, 5, 20, num_true=nt, sampled_values=sv)
        out["nce_hits" + tag] = tf.nn.nce_loss(w, b, labels, x, 5, 20, num_true=nt, sampled_values=sv,
                                               remove_accidental_hits=True)
        out["ssm" + tag] = tf.nn.sampled_softmax_loss(w, b, labels, x, 5, 20, num_true=nt, sampled_values=sv)
        out["ssm_keep" + tag] = tf.nn.sampled_softmax_loss(w, b, labels, x, 5, 20, num_true=nt, sampled_values=sv,
                                                           remove_accidental_hits=False)
    total = tf.add_n([tf.reduce_sum(v) for v in out.values()])
    # convert_to_tensor densifies TF's IndexedSlices gradients of the gathers
    out["grad_w"], out["grad_b"], out["grad_x"] = (tf.convert_to_tensor(g) for g in tf.gradients(total, [w, b, x]))
    return out


def main() -> None:
    tf.disable_v2_behavior()
    w, b, x = tf.constant(W), tf.constant(B), tf.constant(X)
    with tf.Session() as sess:
        vals = sess.run(build(tf, w, b, x))
    np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.npz"), **vals)


if __name__ == "__main__":
    main()
