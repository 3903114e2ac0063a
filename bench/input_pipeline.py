"""W9 and W9r of BENCH.md: training from a tf.data pipeline, and reading TFRecord Examples.

Framework-neutral: every function takes the TF1-style module as ``tf`` (jitflow, or
``tensorflow.compat.v1``), so the same code measures both. Run as a script for one framework::

    python bench/input_pipeline.py jitflow|tensorflow [--steps 60] [--w9r-mb 64]

which prints one JSON object: W9 seconds per step (pipeline-fed and, for comparison, feed_dict-fed
W4 steps timed in turns), and W9r MB/s.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import workloads as W  # noqa: E402

W9_EXAMPLES = 60_000
W9_SHUFFLE = 10_000


def w9_data(n: int = W9_EXAMPLES, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-sized uint8-valued images (as float32 0..255) and int32 labels."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, W.W4_IN)).astype(np.float32), rng.integers(0, W.W4_OUT, n).astype(np.int32))


def build_w9(tf: Any, params: dict[str, np.ndarray], data: tuple[np.ndarray, np.ndarray], batch: int) -> dict:
    """W4's MLP trained from `from_tensor_slices(...).shuffle(10000).map(scale).batch(b).prefetch(2)`."""
    ds = tf.data.Dataset.from_tensor_slices(data).repeat().shuffle(W9_SHUFFLE, seed=1)
    ds = ds.map(lambda x, y: (x * (1.0 / 255.0), y)).batch(batch).prefetch(2)
    x, labels = ds.make_one_shot_iterator().get_next()
    return W.build_w4(tf, params, inputs=(x, labels))


def w9_step_times(tf: Any, make_session: Any, batch: int, steps: int) -> dict[str, float]:
    """Median seconds per training step: pipeline-fed (W9) and feed_dict-fed (W4), timed in turns."""
    params, data = W.w4_params(), w9_data()
    feeds = W.w4_batches(batch)
    g9, g4 = tf.Graph(), tf.Graph()
    with g9.as_default():
        m9 = build_w9(tf, params, data, batch)
    with g4.as_default():
        m4 = W.build_w4(tf, params)
    s9, s4 = make_session(g9), make_session(g4)
    s9.run(m9["init"])
    s4.run(m4["init"])
    f = {m4["x"]: feeds[0][0], m4["labels"]: feeds[0][1]}
    for _ in range(5):  # warm-up: compile, fill the prefetch buffer
        s9.run(m9["train"])
        s4.run(m4["train"], f)
    med = W.interleaved_medians({"w9": lambda: s9.run(m9["train"]), "w4": lambda: s4.run(m4["train"], f)}, steps)
    s9.close()
    s4.close()
    return med


def write_w9r_files(tf: Any, directory: str, megabytes: float, files: int = 4) -> tuple[list[str], int]:
    """TFRecord files of Examples (784 floats + a label each) totalling about `megabytes`."""
    x, y = w9_data(2_000)
    per = len(tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[0])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[0])]))})).SerializeToString()) + 16
    n = int(megabytes * 1e6 / per)
    recs = [tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])]))})).SerializeToString()
        for i in range(len(x))]
    paths = [os.path.join(directory, f"w9r-{k}.tfrecord") for k in range(files)]
    for k, p in enumerate(paths):
        with tf.python_io.TFRecordWriter(p) as w:
            for i in range(k, n, files):
                w.write(recs[i % len(recs)])
    return paths, sum(os.path.getsize(p) for p in paths)


def w9r_seconds(tf: Any, make_session: Any, paths: list[str], batch: int = 256) -> float:
    """Seconds to read every record of `paths` into parsed batches of `batch` Examples."""
    g = tf.Graph()
    with g.as_default():
        ds = tf.data.TFRecordDataset(paths).batch(batch).map(lambda s: tf.parse_example(s, {
            "x": tf.FixedLenFeature([W.W4_IN], tf.float32), "y": tf.FixedLenFeature([], tf.int64)})).prefetch(2)
        el = ds.make_one_shot_iterator().get_next()
    sess = make_session(g)
    t0 = time.perf_counter()
    try:
        while True:
            sess.run(el)
    except tf.errors.OutOfRangeError:
        pass
    dt = time.perf_counter() - t0
    sess.close()
    return dt


def main(argv: list[str]) -> dict[str, Any]:
    backend = argv[0]
    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else 60
    mb = float(argv[argv.index("--w9r-mb") + 1]) if "--w9r-mb" in argv else 64.0
    if backend == "tensorflow":
        import tensorflow.compat.v1 as tf  # type: ignore[import-not-found]

        tf.disable_v2_behavior()
    else:
        import jitflow as tf  # type: ignore[no-redef]
    med = w9_step_times(tf, lambda g: tf.Session(graph=g), 256, steps)
    with tempfile.TemporaryDirectory() as d:
        paths, size = write_w9r_files(tf, d, mb)
        secs = w9r_seconds(tf, lambda g: tf.Session(graph=g), paths)
    return {"backend": backend, "w9_step_s": med["w9"], "w4_fed_step_s": med["w4"],
            "w9_examples_per_s": 256 / med["w9"], "w9r_mb": size / 1e6, "w9r_s": secs,
            "w9r_mb_per_s": size / 1e6 / secs}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
