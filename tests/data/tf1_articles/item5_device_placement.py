import tensorflow as tf

with tf.device("/gpu:7"):
    a = tf.constant([1.0, 2.0], name="a")
    b = tf.multiply(a, 3.0, name="b")
with tf.Session(config=tf.ConfigProto(allow_soft_placement=False)) as sess:
    try:
        print(sess.run(b))
    except tf.errors.InvalidArgumentError as e:
        msg = e.message
        print("InvalidArgumentError", "'b'" in msg or " b:" in msg or "operation b" in msg or "{{node b}}" in msg,
              "/gpu:7" in msg or "GPU:7" in msg)
with tf.Session() as sess:
    try:
        print(sess.run(b))
    except tf.errors.InvalidArgumentError:
        print("InvalidArgumentError (default config)")
with tf.Session(config=tf.ConfigProto(allow_soft_placement=True, log_device_placement=True)) as sess:
    print(sess.run(b))

tf.reset_default_graph()
with tf.device("/job:ps/task:0"):
    v = tf.Variable(2.0, name="v")
with tf.Session() as sess:
    try:
        sess.run(v.initializer)
        print(sess.run(v))
    except tf.errors.InvalidArgumentError as e:
        print("InvalidArgumentError", "/job:ps" in e.message)
with tf.Session(config=tf.ConfigProto(allow_soft_placement=True)) as sess:
    try:
        sess.run(v.initializer)
        print(sess.run(v * 2))
    except tf.errors.InvalidArgumentError as e:
        print("InvalidArgumentError", "/job:ps" in e.message)
