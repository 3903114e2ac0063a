import numpy as np
import tensorflow as tf

def my_func(x):
    return np.sinh(x)

inp = tf.placeholder(tf.float32)
y = tf.py_func(my_func, [inp], tf.float32)
z = tf.exp(y) * 2.0 + 1.0
pair = tf.py_func(lambda a, b: (a + b, (a * b).astype(np.int64)), [tf.constant([1, 2]), tf.constant([3, 4])],
                  [tf.int32, tf.int64])
nf = tf.numpy_function(lambda a: np.cumsum(a), [tf.constant([1.0, 2.0, 3.0], tf.float64)], tf.float64)
s = tf.py_func(lambda: b"hi", [], tf.string)
bad_type = tf.py_func(lambda: np.float64(1.0), [], tf.int32)
def boom(x):
    raise RuntimeError("no good")
raises = tf.py_func(boom, [inp], tf.float32)
def bad_value(x):
    raise ValueError("bad value")
raises_value = tf.py_func(bad_value, [inp], tf.float32)
with tf.Session() as sess:
    print(sess.run(y, {inp: [0.0, 1.0]}).round(5), sess.run(z, {inp: [0.5]}).round(4))
    print(sess.run(pair), sess.run(nf), sess.run(s))
    print(y.shape, y.dtype, [t.dtype for t in pair])
    try:
        sess.run(bad_type)
    except tf.errors.InvalidArgumentError:
        print("InvalidArgumentError")
    try:
        sess.run(raises, {inp: 1.0})
    except tf.errors.UnknownError as e:
        print("UnknownError", "no good" in e.message, "Traceback" in e.message)
    try:
        sess.run(raises_value, {inp: 1.0})
    except tf.errors.OpError as e:
        print(type(e).__name__, "bad value" in e.message)
