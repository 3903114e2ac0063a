"""W7 feeds probe: a training step fed one batch every time against a new batch each step, one framework per process.

Usage::

    python bench/probes/w7_feeds_probe.py jitflow
    PYTHONPATH=$PWD TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python bench/probes/w7_feeds_probe.py tensorflow

The graph is W7's (`bench/cnn_workload.py`, the `convolutional_network_raw` example's CNN, batch 128,
dropout 0.8 as the example trains); prints the median of 30 steps each way, twice, alternating.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import cnn_workload as c  # noqa: E402 - the bench directory is put on the path just above


def main(name: str) -> None:
    tf = c._module(name)
    g = tf.Graph()
    with g.as_default():
        m = c.build_cnn(tf, None)
    rng = np.random.default_rng(0)
    batches = [(rng.random((128, 784), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)])
               for _ in range(8)]
    with tf.Session(graph=g) as sess:
        sess.run(m["init"])
        for k in range(12):
            sess.run(m["train"], {m["x"]: batches[k % 8][0], m["y"]: batches[k % 8][1], m["keep"]: 0.8})
        for same in (True, False, True, False):
            ts = []
            for k in range(30):
                xs, ys = batches[0 if same else k % 8]
                t = time.perf_counter()
                sess.run(m["train"], {m["x"]: xs, m["y"]: ys, m["keep"]: 0.8})
                ts.append(time.perf_counter() - t)
            print(f"{name}: {'one batch' if same else 'new batches'} {np.median(ts) * 1e3:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "jitflow")
