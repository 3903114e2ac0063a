import tensorflow as tf

v = tf.get_variable("v", shape=(), initializer=tf.zeros_initializer())
assignment = v.assign_add(1)
with tf.control_dependencies([assignment]):
    w = v.read_value()
    w2 = tf.identity(v)
    w3 = v + 0
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    print(sess.run([w, v]))
    print(sess.run([w2, v]))
    print(sess.run([w3, v]))
    print(sess.run([w, w2, w3]))
    print(sess.run(v))

# a read the assign depends on sees the old value
x = tf.Variable(10.0, name="x")
before = x * 1.0
with tf.control_dependencies([before]):
    upd = tf.assign(x, x * 2.0)
with tf.control_dependencies([upd]):
    after = x + 1.0
with tf.Session() as sess:
    sess.run(x.initializer)
    print(sess.run([before, after]))
    print(sess.run([before, after, x]))
