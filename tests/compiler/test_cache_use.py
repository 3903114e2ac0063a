"""Kernels are shared by identical clusters and loaded from disk by a second process: counted."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

import jitflow as tf
from jitflow.codegen.cache import cache_stats

_PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jitflow as tf
    from jitflow.compiler import steps
    steps.SMALL_SIZE = 0
    x = tf.placeholder(tf.float64, [None, 3])
    y = tf.reduce_sum(tf.sqrt(x * 4.0 + 1.5), axis=1)
    with tf.Session() as sess:
        out = sess.run(y, {x: np.ones((5, 3))})
    print(json.dumps({"stats": tf.cache_stats(), "out": out.tolist()}))
""")


def _graph(scale: float) -> tuple[tf.Tensor, tf.Tensor]:
    x = tf.placeholder(tf.float32, [None, 4])
    return x, tf.nn.relu(x * scale - 1.0)


def test_identical_clusters_share_one_kernel() -> None:
    x1, y1 = _graph(2.0)
    x2, y2 = _graph(3.0)  # same structure, different constant: constants are arguments
    feed = np.ones((8, 4), np.float32)
    with tf.Session() as sess:
        sess.run(y1, {x1: feed})
        before = cache_stats()
        r2 = sess.run(y2, {x2: feed})
        after = cache_stats()
    assert after["compiled"] == before["compiled"]
    assert after["disk_hits"] == before["disk_hits"]
    assert after["memory_hits"] > before["memory_hits"]
    np.testing.assert_array_equal(r2, np.full((8, 4), 2.0, np.float32))


def test_second_session_and_plan_compile_nothing() -> None:
    x, y = _graph(5.0)
    feed = np.ones((3, 4), np.float32)
    with tf.Session() as sess:
        sess.run(y, {x: feed})
    before = cache_stats()["compiled"]
    with tf.Session() as sess:
        assert sess.run(y, {x: feed}).sum() == 48.0
        assert sess.run([y, x], {x: feed})[0].sum() == 48.0  # another plan, same cluster
    assert cache_stats()["compiled"] == before


def test_second_process_loads_from_disk(tmp_path: os.PathLike) -> None:
    env = dict(os.environ, JITFLOW_CACHE_DIR=str(tmp_path))
    runs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True,
                           timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        assert p.returncode == 0, p.stderr
        import json

        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["stats"]["compiled"] >= 1
    assert second["stats"]["compiled"] == 0
    assert second["stats"]["disk_hits"] == first["stats"]["compiled"]
    assert first["out"] == second["out"] == [float(np.sqrt(5.5) * 3)] * 5
