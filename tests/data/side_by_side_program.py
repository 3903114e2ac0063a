"""A TF1 training program that runs unchanged on TensorFlow (argument `tf`) and on jitflow.

tf_side_by_side.txt holds what TensorFlow printed: 30 losses, the accuracy and five weights.
"""
import sys

import numpy as np

if len(sys.argv) > 1 and sys.argv[1] == "tf":
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
else:
    import jitflow as tf
rng = np.random.RandomState(0)
X = rng.rand(64, 8, 8, 1).astype(np.float32)
Y = rng.randint(0, 3, 64)
tf.set_random_seed(123)
x = tf.placeholder(tf.float32, [None, 8, 8, 1], name="x")
y = tf.placeholder(tf.int64, [None], name="y")
keep = tf.placeholder_with_default(1.0, [], name="keep")
w1 = tf.get_variable("w1", [3, 3, 1, 4], initializer=tf.truncated_normal_initializer(stddev=0.3))
b1 = tf.Variable(tf.zeros([4]), name="b1")
h = tf.nn.relu(tf.nn.conv2d(x, w1, strides=[1, 1, 1, 1], padding="SAME") + b1)
h = tf.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
h = tf.reshape(h, [-1, 4 * 4 * 4])
h = tf.nn.dropout(h, keep_prob=keep, seed=7)
w2 = tf.get_variable("w2", [64, 3])
b2 = tf.get_variable("b2", [3], initializer=tf.zeros_initializer())
logits = tf.matmul(h, w2) + b2
loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
gs = tf.train.get_or_create_global_step()
lr = tf.train.exponential_decay(0.05, gs, 10, 0.9, staircase=True)
train = tf.train.AdamOptimizer(lr).minimize(loss, global_step=gs)
mom = tf.train.MomentumOptimizer(0.01, 0.9, use_nesterov=True).minimize(loss, var_list=[w2])
out = []
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for _ in range(30):
        l, _ = sess.run([loss, train], {x: X, y: Y, keep: 0.8})
        sess.run(mom, {x: X, y: Y})
        out.append(l)
    out.append(sess.run(acc, {x: X, y: Y}))
    out.extend(sess.run(w2).ravel()[:5])
print(" ".join(f"{v:.6g}" for v in out))
