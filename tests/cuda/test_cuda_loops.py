"""A while_loop placed on /gpu:0 (CUDA simulator): the body's clusters are CUDA clusters; values and
gradients equal the interpreter's. (Loop state crosses to the host between iterations.)"""
from __future__ import annotations

import numpy as np

import jitflow as tf
from jitflow.ops.while_loop import body_of
from tests.cuda.helpers import backends, needs_cuda

pytestmark = needs_cuda


def test_loop_on_gpu_matches_interpreter():
    x0 = np.linspace(-1, 1, 6).astype(np.float32).reshape(2, 3)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 3])
        with tf.device("/gpu:0"):
            w = tf.Variable(np.full((3, 3), 0.3, np.float32))
            _, h = tf.while_loop(lambda i, h: i < 4, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w) + x)), [0, x])
            loss = tf.reduce_sum(h * h)
            grads = tf.gradients(loss, [x, w])
        results = []
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
                s.run(tf.global_variables_initializer())
                results.append(s.run([h, *grads], {x: x0}))
                if jit:
                    body_plan = body_of(h.op).plan(s, "body")
                    assert "cuda" in backends(body_plan)
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
