import os
import tensorflow as tf

v1 = tf.get_variable("v1", shape=[3], initializer=tf.zeros_initializer)
inc_v1 = v1.assign(v1 + 1)
saver = tf.train.Saver()
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    sess.run(inc_v1)
    save_path = saver.save(sess, "log/model.ckpt", global_step=7)
    print("Model saved in path: %s" % save_path)
print(sorted(os.listdir("log")))
print(tf.train.latest_checkpoint("log"))
with tf.Session() as sess:
    saver.restore(sess, tf.train.latest_checkpoint("log"))
    print(sess.run(v1))
