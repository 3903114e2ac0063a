"""The main job: a TF1 program trained under MonitoredTrainingSession, with checkpoints and the JIT.

A small MLP learns a synthetic two-class problem. Checkpoints go to ./train_ckpt (or argv[1]);
running the script again resumes from the latest checkpoint and trains further.
Run with `import tensorflow.compat.v1 as tf` instead of jitflow and it behaves the same.
"""
import os
import sys
import time

import numpy as np

import jitflow as tf

ckpt_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.getcwd(), "train_ckpt")
steps_per_run = 600

# Data: two interleaved spirals, fed through placeholders in batches.
rng = np.random.RandomState(0)
n = 2000
t = rng.uniform(0.25, 3.0, n) * np.pi
label = rng.randint(0, 2, n)
r = t / (3.0 * np.pi)
data = np.stack([r * np.cos(t + np.pi * label), r * np.sin(t + np.pi * label)], 1).astype(np.float32)
data += rng.normal(0, 0.02, data.shape).astype(np.float32)

tf.set_random_seed(1)
x = tf.placeholder(tf.float32, [None, 2], name="x")
y = tf.placeholder(tf.int32, [None], name="y")
with tf.variable_scope("mlp"):
    h = tf.nn.relu(tf.matmul(x, tf.get_variable("w1", [2, 64])) +
                   tf.get_variable("b1", [64], initializer=tf.zeros_initializer()))
    h = tf.nn.relu(tf.matmul(h, tf.get_variable("w2", [64, 64])) +
                   tf.get_variable("b2", [64], initializer=tf.zeros_initializer()))
    logits = tf.matmul(h, tf.get_variable("w3", [64, 2])) + \
        tf.get_variable("b3", [2], initializer=tf.zeros_initializer())
loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32))
global_step = tf.train.get_or_create_global_step()
train_op = tf.train.AdamOptimizer(0.01).minimize(loss, global_step=global_step)

start = time.time()
with tf.train.MonitoredTrainingSession(
        checkpoint_dir=ckpt_dir, save_checkpoint_steps=200, save_checkpoint_secs=None,
        hooks=[tf.train.StopAtStepHook(num_steps=steps_per_run)]) as sess:
    first = sess.run(global_step)
    print(f"starting at step {first} (checkpoints in {ckpt_dir})")
    while not sess.should_stop():
        idx = rng.randint(0, n, 128)
        _, step, l = sess.run([train_op, global_step, loss], {x: data[idx], y: label[idx]})
        if step % 100 == 0:
            acc = sess.run(accuracy, {x: data, y: label})
            print(f"step {step:5d}  loss {l:.4f}  accuracy {acc:.3f}")
    final_acc = sess.run(accuracy, {x: data, y: label})
print(f"trained {steps_per_run} steps in {time.time() - start:.2f} s; accuracy {final_acc:.3f}; "
      f"latest checkpoint {tf.train.latest_checkpoint(ckpt_dir)}")
