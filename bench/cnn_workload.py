"""W7 / W7i of BENCH.md: the CNN of the public TF1 example `convolutional_network_raw`.

`build_cnn(tf, batch)` takes the TF1-style module (``jitflow`` or ``tensorflow.compat.v1``), so one
piece of code builds the graph for every framework compared. Run as a script, it times one framework
in this process and prints one JSON line (so TensorFlow can be timed from its own interpreter in the
same run window)::

    python bench/cnn_workload.py --framework jitflow --steps 20
    /work/tfvenv/bin/python bench/cnn_workload.py --framework tensorflow --steps 20
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

# (name, input HxW, kernel, in channels, out channels): the two convolutions of the network
CONV_SHAPES = (("conv1 5x5x1x32 @28x28", 28, 5, 1, 32), ("conv2 5x5x32x64 @14x14", 14, 5, 32, 64))


def conv_flops(batch: int, hw: int, k: int, cin: int, cout: int) -> float:
    """Multiply-adds x 2 of one SAME, stride-1 convolution's forward pass."""
    return 2.0 * batch * hw * hw * k * k * cin * cout


def step_flops(batch: int) -> float:
    """FLOPs of one training step: forward, input and filter gradients of each layer (3x forward).

    The first conv's input gradient is not needed (its input is the fed image), so it counts 2x.
    """
    c1 = conv_flops(batch, *CONV_SHAPES[0][1:])
    c2 = conv_flops(batch, *CONV_SHAPES[1][1:])
    dense = 2.0 * batch * (3136 * 1024 + 1024 * 10)
    return 2 * c1 + 3 * c2 + 3 * dense


def build_cnn(tf: Any, batch: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The example's graph: x/y/keep_prob placeholders, logits, loss, an Adam train op."""
    tf.set_random_seed(seed)
    x = tf.placeholder(tf.float32, [batch, 784], name="X")
    y = tf.placeholder(tf.float32, [batch, 10], name="Y")
    keep = tf.placeholder(tf.float32, name="keep_prob")
    w = {"wc1": tf.Variable(tf.random_normal([5, 5, 1, 32])), "wc2": tf.Variable(tf.random_normal([5, 5, 32, 64])),
         "wd1": tf.Variable(tf.random_normal([3136, 1024])), "out": tf.Variable(tf.random_normal([1024, 10]))}
    b = {"bc1": tf.Variable(tf.random_normal([32])), "bc2": tf.Variable(tf.random_normal([64])),
         "bd1": tf.Variable(tf.random_normal([1024])), "out": tf.Variable(tf.random_normal([10]))}

    def conv(v: Any, wt: Any, bias: Any) -> Any:
        return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(v, wt, strides=[1, 1, 1, 1], padding="SAME"), bias))

    def pool(v: Any) -> Any:
        return tf.nn.max_pool(v, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

    h = pool(conv(tf.reshape(x, [-1, 28, 28, 1]), w["wc1"], b["bc1"]))
    h = pool(conv(h, w["wc2"], b["bc2"]))
    h = tf.nn.relu(tf.add(tf.matmul(tf.reshape(h, [-1, 3136]), w["wd1"]), b["bd1"]))
    logits = tf.add(tf.matmul(tf.nn.dropout(h, keep), w["out"]), b["out"])
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=y))
    train = tf.train.AdamOptimizer(0.001).minimize(loss)
    return {"x": x, "y": y, "keep": keep, "logits": logits, "loss": loss, "train": train,
            "init": tf.global_variables_initializer()}


def cnn_batch(batch: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic MNIST-shaped batch (pixels in [0, 1), one-hot labels)."""
    rng = np.random.default_rng(seed)
    xs = rng.random((batch, 784), dtype=np.float32)
    ys = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    return xs, ys


def _module(framework: str) -> Any:
    if framework == "tensorflow":
        import tensorflow.compat.v1 as tf

        tf.disable_v2_behavior()
        return tf
    import jitflow as tf

    return tf


def time_framework(framework: str, steps: int, batch: int = 128, infer_runs: int = 200) -> dict[str, Any]:
    """Median seconds of a training step (batch `batch`) and of a batch-1 inference, warm."""
    tf = _module(framework)
    res: dict[str, Any] = {"framework": framework}
    g = tf.Graph()
    with g.as_default():
        m = build_cnn(tf, None)
    xs, ys = cnn_batch(batch)
    with tf.Session(graph=g) as sess:
        sess.run(m["init"])
        feed = {m["x"]: xs, m["y"]: ys, m["keep"]: 0.75}
        for _ in range(3):
            sess.run(m["train"], feed)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            sess.run(m["train"], feed)
            times.append(time.perf_counter() - t0)
        res["w7_step_s"] = statistics.median(times)
        feed1 = {m["x"]: xs[:1], m["keep"]: 1.0}
        for _ in range(60):  # warm (jitflow: a plan becomes one compiled call at its 50th run)
            sess.run(m["logits"], feed1)
        times = []
        for _ in range(infer_runs):
            t0 = time.perf_counter()
            sess.run(m["logits"], feed1)
            times.append(time.perf_counter() - t0)
        res["w7i_s"] = statistics.median(times)
    res["w7_gflops"] = step_flops(batch) / res["w7_step_s"] / 1e9
    return res


def main() -> None:
    """Times one framework and prints a JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", default="jitflow", choices=("jitflow", "tensorflow"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    print(json.dumps(time_framework(a.framework, a.steps, a.batch)))


if __name__ == "__main__":
    main()
