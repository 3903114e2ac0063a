import tensorflow as tf

x = tf.placeholder(tf.int32, [])
y = tf.placeholder(tf.int32, [])
f1 = lambda: tf.constant(17)
f2 = lambda: tf.constant(23)
r1 = tf.case([(tf.less(x, y), f1)], default=f2)
r2 = tf.case({tf.less(x, y): f1, tf.greater(x, y): f2}, default=lambda: tf.constant(-1), exclusive=True)
r3 = tf.case([(tf.equal(x, 0), lambda: x * 10), (tf.equal(x, 1), lambda: x * 100)])
with tf.Session() as sess:
    for xv, yv in ((1, 2), (3, 2), (2, 2), (0, 5)):
        print(xv, yv, sess.run([r1, r2], {x: xv, y: yv}))
    for xv in (0, 1, 2):
        try:
            print(xv, sess.run(r3, {x: xv}))
        except tf.errors.InvalidArgumentError as e:
            print("InvalidArgumentError", "None of conditions evaluated as True" in e.message)
    c = tf.case([(tf.less(x, 5), f1), (tf.less(x, 9), f2)], exclusive=True)
    print(sess.run(c, {x: 7}))
try:
    tf.case([(x, f1)])
except TypeError:
    print("TypeError")
