"""W8: one training step of TF1's PTB word-level LM, "small" configuration.

2-layer LSTMCell (200 units, forget_bias 0), 35 steps, batch 20, vocabulary 10,000, dynamic_rnn,
sparse softmax cross-entropy, clip_by_global_norm(5), SGD (quick mode: vocabulary 1,000, 10 steps).
Timed: ``sess.run([cost, train_op])`` warm, for jitflow (compiled and, for reference, interpreted) and
TensorFlow when importable, side by side in one run; plus the first step of a fresh process with an
empty compile cache (cold) and with the cache the cold run left (warm).

What this measures: the forward and backward loops each run as one compiled loop (`jitflow/ops/while_native.py`:
all time steps in one generated Numba function, the LSTM cell's fused kernels inlined into it, the gate GEMMs
through OpenBLAS, TensorArrays in row buffers), from the second step on (the first replays the loop and learns
its shapes). The backward loop sums the weight and bias gradients after the loop (one GEMM / column sum over
all steps, `jitflow/ops/while_hoist.py`) and multiplies by a row-major copy of the transposed kernel made once
per loop run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import pytest
import workloads as W

import jitflow as tf

QUICK = W.quick_mode()
VOCAB, STEPS, BATCH, HIDDEN, LAYERS = (1000, 10, 20, 200, 2) if QUICK else (10_000, 35, 20, 200, 2)
ROUNDS = 3 if QUICK else 5


def build_w8(tfm: Any) -> dict[str, Any]:
    """The PTB small training graph in the default graph of `tfm` (jitflow or tensorflow.compat.v1)."""
    tfm.set_random_seed(1)
    x = tfm.placeholder(tfm.int32, [BATCH, STEPS], name="x")
    y = tfm.placeholder(tfm.int32, [BATCH, STEPS], name="y")
    with tfm.variable_scope("Model", initializer=tfm.random_uniform_initializer(-0.1, 0.1)):
        emb = tfm.get_variable("embedding", [VOCAB, HIDDEN])
        inputs = tfm.nn.embedding_lookup(emb, x)
        cell = tfm.nn.rnn_cell.MultiRNNCell([tfm.nn.rnn_cell.LSTMCell(HIDDEN, forget_bias=0.0)
                                             for _ in range(LAYERS)])
        state0 = cell.zero_state(BATCH, tfm.float32)
        outputs, _ = tfm.nn.dynamic_rnn(cell, inputs, initial_state=state0)
        out = tfm.reshape(outputs, [-1, HIDDEN])
        sw = tfm.get_variable("softmax_w", [HIDDEN, VOCAB])
        sb = tfm.get_variable("softmax_b", [VOCAB])
        logits = tfm.matmul(out, sw) + sb
        loss = tfm.nn.sparse_softmax_cross_entropy_with_logits(labels=tfm.reshape(y, [-1]), logits=logits)
        cost = tfm.reduce_sum(loss) / BATCH
    tvars = tfm.trainable_variables()
    grads, _ = tfm.clip_by_global_norm(tfm.gradients(cost, tvars), 5.0)
    train = tfm.train.GradientDescentOptimizer(1.0).apply_gradients(zip(grads, tvars))
    rng = np.random.RandomState(0)
    feed = {x: rng.randint(0, VOCAB, (BATCH, STEPS)), y: rng.randint(0, VOCAB, (BATCH, STEPS))}
    return {"cost": cost, "train": train, "feed": feed, "init": tfm.global_variables_initializer()}


def _bench(tfm: Any, session: Any, measure: Any, variant: str, jit: str) -> float:
    g = tfm.Graph()
    with g.as_default():
        m = build_w8(tfm)
    with session(g) as sess:
        sess.run(m["init"])
        first = sess.run(m["cost"], m["feed"])
        assert np.isfinite(first) and abs(first - np.log(VOCAB) * STEPS) < 0.2 * STEPS
        return measure(lambda: sess.run([m["cost"], m["train"]], m["feed"]), workload="W8", variant=variant,
                       rounds=ROUNDS, unit="step", jit=jit)


def test_w8_jitflow_compiled(measure: Any) -> None:
    _bench(tf, lambda g: tf.Session(graph=g), measure, "compiled", "JIT; compiled native loops")


def test_w8_jitflow_interpreted(measure: Any) -> None:
    _bench(tf, lambda g: tf.Session(graph=g, config=tf.ConfigProto(jit=False)), measure, "interpreted",
           "interpreted")


def test_w8_tensorflow(measure: Any) -> None:
    tf1 = W.tensorflow_v1()
    if tf1 is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    if not hasattr(tf1.nn, "rnn_cell") or not hasattr(tf1.nn.rnn_cell, "LSTMCell"):
        pytest.skip("tf.nn.rnn_cell needs TF_USE_LEGACY_KERAS=1 with tf-keras installed")
    _bench(tf1, lambda g: tf1.Session(graph=g), measure, "tensorflow", "TensorFlow graph mode")


def _first_step(cache: str) -> float:
    env = {**os.environ, "JITFLOW_CACHE_DIR": cache, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    return float(r.stdout.split()[-1])


def test_w8_first_step(record: Any) -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold = _first_step(cache)
        warm = _first_step(cache)
    record("W8", "first step cold", cold, "first step", "fresh process, empty compile cache (build + compile + run)")
    record("W8", "first step warm", warm, "first step", "fresh process, compile cache left by the cold run")


if __name__ == "__main__":  # one first step in this process, for test_w8_first_step
    import time

    t0 = time.perf_counter()
    with tf.Graph().as_default():
        m = build_w8(tf)
        with tf.Session() as s:
            s.run(m["init"])
            s.run([m["cost"], m["train"]], m["feed"])
    print(time.perf_counter() - t0)
