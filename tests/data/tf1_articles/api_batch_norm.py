import numpy as np
import tensorflow as tf

rng = np.random.RandomState(0)
images = rng.randn(8, 5, 5, 3).astype(np.float32) * 2.0 + 1.0
labels = rng.randint(0, 4, 8)
x = tf.placeholder(tf.float32, [None, 5, 5, 3])
y_ = tf.placeholder(tf.int64, [None])
training = tf.placeholder(tf.bool, [])
h = tf.layers.batch_normalization(x, training=training)
flat = tf.reshape(tf.nn.relu(h), [-1, 75])
w = tf.get_variable("w", [75, 4], initializer=tf.constant_initializer(0.01))
h2 = tf.layers.batch_normalization(tf.matmul(flat, w), training=True, momentum=0.9)
loss = tf.losses.sparse_softmax_cross_entropy(labels=y_, logits=h2)
update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
with tf.control_dependencies(update_ops):
    train_op = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
print(sorted(v.name for v in tf.global_variables()))
print(sorted(v.name for v in tf.trainable_variables()))
print(len(update_ops))
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for step in range(3):
        print(step, round(float(sess.run([train_op, loss], {x: images, y_: labels, training: True})[1]), 5))
    mm, mv = sess.run(["batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"])
    print(mm.round(5), mv.round(5))
    print(sess.run(h, {x: images[:1], training: False})[0, 0, 0].round(4))
    print(sess.run(h, {x: images[:2], training: True})[1, 2, 2].round(4))

a = tf.constant(images[:2])
m, v = tf.nn.moments(a, [0, 1, 2])
bn = tf.nn.batch_normalization(a, m, v, tf.constant([0.1, 0.2, 0.3]), tf.constant([1.0, 2.0, 3.0]), 1e-3)
fy, fm, fv = tf.nn.fused_batch_norm(a, tf.constant([1.0, 2.0, 3.0]), tf.constant([0.1, 0.2, 0.3]))
iy, _, _ = tf.nn.fused_batch_norm(a, tf.constant([1.0, 2.0, 3.0]), tf.constant([0.1, 0.2, 0.3]), mean=m,
                                  variance=v, is_training=False)
scale = tf.constant([1.0, 2.0, 3.0])
g = tf.gradients(tf.reduce_sum(tf.nn.fused_batch_norm(a * 1.0, scale, tf.zeros([3]))[0] ** 2), [scale])[0]
with tf.Session() as sess:
    r = sess.run([bn, fy, fm, fv, iy, g])
    print(r[0][0, 0, 0].round(4), r[1][1, 4, 4].round(4), r[2].round(4), r[3].round(4), r[4][0, 1, 2].round(4))
    print(r[5].round(3))
