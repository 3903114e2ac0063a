import tensorflow as tf

with tf.variable_scope("old"):
    a = tf.get_variable("a", initializer=tf.constant([1.0, 2.0, 3.0]))
    b = tf.get_variable("b", initializer=tf.constant([[4, 5]], dtype=tf.int32))
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    path = tf.train.Saver().save(sess, "ckpt/model")

tf.reset_default_graph()
with tf.variable_scope("new"):
    a2 = tf.get_variable("a", shape=[3])
    b2 = tf.get_variable("b", shape=[1, 2], dtype=tf.int32)
c = tf.get_variable("c", shape=[3])
tf.train.init_from_checkpoint("ckpt", {"old/": "new/"})
tf.train.init_from_checkpoint("ckpt", {"old/a": c})
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    print(sess.run([a2, b2, c]))
for bad in ({"old/zzz": "c"}, {"old/b": "c"}, {"old/": "new"}, {"old": "new/"}):
    try:
        tf.train.init_from_checkpoint("ckpt", bad)
    except ValueError as e:
        print("ValueError", str(e).split(" ")[:2])
