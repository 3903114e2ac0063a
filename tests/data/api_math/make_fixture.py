"""Records TensorFlow's values (and gradients) of special math, segment and sort ops into tf_values.npz.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

X = np.array([0.0, -1.0, -2.5, 0.5, 1e-8, 3.0, 30.0, -0.0, np.inf, -np.inf, np.nan, 0.999, 1.5, -0.3], np.float32)
Y = np.array([0.0, np.nan, 2.0, -1.0, 0.0, 3.0, 0.5, 1.0, 2.0, -3.0, 1.0, 0.0, -0.7, 4.0], np.float32)
D = np.arange(15, dtype=np.float32).reshape(5, 3) - 6.0
D[1, 1] = 0.0
SORTED = np.array([0, 0, 2, 2, 3], np.int32)
UNSORTED = np.array([1, -1, 1, 0, 3], np.int32)
UNARY = ["asinh", "acosh", "atanh", "rint", "erf", "erfc", "lgamma", "digamma", "softsign", "log_sigmoid",
         "reciprocal_no_nan"]
BINARY = ["atan2", "xlogy", "xlog1py", "xdivy", "divide_no_nan", "multiply_no_nan"]
SEG = ["segment_sum", "segment_mean", "segment_max", "segment_min", "segment_prod"]
USEG = ["unsorted_segment_sum", "unsorted_segment_max", "unsorted_segment_min", "unsorted_segment_prod",
        "unsorted_segment_mean", "unsorted_segment_sqrt_n"]


def main() -> None:
    tf.disable_v2_behavior()
    x, y, d = tf.constant(X), tf.constant(Y), tf.constant(D)
    fetch = {}
    for n in UNARY:
        fetch[n] = getattr(tf.math, n)(x)
    for n in BINARY:
        fetch[n] = getattr(tf.math, n)(x, y)
    fetch["selu"] = tf.nn.selu(x)
    fetch["swish"] = tf.nn.swish(x)
    for n in SEG:
        fetch[n] = r = getattr(tf.math, n)(d, SORTED)
        fetch[n + "/grad"] = tf.gradients(tf.reduce_sum(r * r), d)[0]
    for n in USEG:
        fetch[n] = r = getattr(tf.math, n)(d, UNSORTED, 5)
        fetch[n + "/grad"] = tf.gradients(tf.reduce_sum(r * r), d)[0]
    fetch["sort"] = tf.sort(d, axis=0, direction="DESCENDING")
    fetch["argsort"] = tf.argsort(tf.constant([3, 1, 3, -5, 1]), stable=True)
    with tf.Session() as sess:
        vals = sess.run(fetch)
    np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.npz"), **vals)


if __name__ == "__main__":
    main()
