"""Records tf.nn.max_pool_with_argmax (SAME/VALID, ties, batch index) and its gradient into tf_values.npz.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

rng = np.random.RandomState(2)
X = rng.randint(0, 4, (2, 5, 6, 3)).astype(np.float32)  # small integers: many ties
G = rng.randn(2, 3, 3, 3).astype(np.float32)


def build(tf, x):  # also builds jitflow's in tests/ops/test_pool_argmax.py
    same, same_i = tf.nn.max_pool_with_argmax(x, [1, 3, 2, 1], [1, 2, 2, 1], "SAME")
    valid, valid_i = tf.nn.max_pool_with_argmax(x, [1, 2, 2, 1], [1, 1, 2, 1], "VALID", include_batch_in_index=True)
    return {"same": same, "same_i": same_i, "valid": valid, "valid_i": valid_i,
            "grad": tf.gradients(tf.reduce_sum(same * G), x)[0],
            "grad_valid": tf.gradients(tf.reduce_sum(valid * valid), x)[0]}


def main() -> None:
    tf.disable_v2_behavior()
    with tf.Session() as sess:
        vals = sess.run(build(tf, tf.constant(X)))
    np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.npz"), **vals)


if __name__ == "__main__":
    main()
