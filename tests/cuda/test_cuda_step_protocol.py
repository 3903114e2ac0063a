"""Every CUDA step kind (and the host steps beside them) implements the `Step` protocol (`compiler/step.py`)."""
from __future__ import annotations

import numpy as np

import jitflow as tf
from tests.compiler.step_checks import check_plan
from tests.cuda.helpers import last_plan, needs_cuda

pytestmark = needs_cuda


def test_cuda_training_plan_steps() -> None:
    rng = np.random.default_rng(1)
    x = tf.placeholder(tf.float32, [None, 6])
    labels = tf.placeholder(tf.int32, [None])
    with tf.device("/gpu:0"):
        w1 = tf.Variable(rng.normal(0, 0.5, (6, 8)).astype(np.float32))
        b1 = tf.Variable(np.zeros(8, np.float32))
        w2 = tf.Variable(rng.normal(0, 0.5, (8, 3)).astype(np.float32))
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        probs = tf.matmul(x, w1)  # a MatMul fetched: not fused into an epilogue
    feed = {x: rng.normal(size=(5, 6)).astype(np.float32), labels: rng.integers(0, 3, 5).astype(np.int32)}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([train, probs], feed)
        seen = check_plan(last_plan(sess))
    cuda_kinds = {k for k, b in seen if b == "cuda"}
    assert {"cluster", "matmul", "fused_matmul", "sparse_xent", "unbroadcast", "reshape", "device_read"} \
        <= cuda_kinds, cuda_kinds
