import tensorflow as tf

def model(x):
    with tf.variable_scope("model3", reuse=tf.AUTO_REUSE):
        with tf.variable_scope("conv2"):
            w = tf.get_variable("w", [3, 3], initializer=tf.ones_initializer())
            return tf.nn.relu(tf.matmul(x, w))

x = tf.placeholder(tf.float32, [None, 3])
print(model(x).op.name)
print(model(x).op.name)
print(model(x).op.name)
with tf.variable_scope("model3", reuse=True):
    print(tf.get_variable("conv2/w").name)

labels = tf.placeholder(tf.int32, [None])
logits = tf.placeholder(tf.float32, [None, 4])
l1 = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
print(l1.op.name)
l2 = tf.losses.mean_squared_error(logits, logits)
print(l2.op.name)
l3 = tf.losses.softmax_cross_entropy(tf.one_hot(labels, 4), logits)
print(l3.op.name)
print([t.name for t in tf.get_collection(tf.GraphKeys.LOSSES)])

v = tf.Variable(1.0, name="v")
print(v.dtype, v.dtype.base_dtype, v.dtype == tf.float32, v.dtype.base_dtype == tf.float32)
print(repr(tf.float32), str(tf.float32), tf.float32)
print(v.value().dtype, v.read_value().dtype)
try:
    tf.train.Saver({"a": v, "b": v})
except ValueError as e:
    print("ValueError", str(e))
