"""W5: `Saver.save` then `Saver.restore` of 8 x [2048, 4096] float32 (256 MB), against raw file I/O.

    pytest bench/test_w5_saver.py                          # pytest-benchmark rows + the W5 ratio
    JITFLOW_BENCH_QUICK=1 pytest bench/test_w5_saver.py    # 8 x [256, 512], for CI
    python bench/test_w5_saver.py [ROUNDS]                 # just print the interleaved side-by-side ratio

The baseline is what the bytes cost without a checkpoint format: `ndarray.tofile` of each array to
its own file, then `np.fromfile` of each. The target (BENCH.md) is save + restore <= 3 x that. The
suite's summary (bench/conftest.py) reads the rows `raw_io`, `save` and `restore`; `test_w5_ratio`
also prints the ratio timed in turns (raw, save, restore, ...), which load from other processes hits
alike. Like the rest of the suite, nothing here asserts speed; the restore is checked for exact values.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import jitflow as tf

SHORT = os.environ.get("JITFLOW_BENCH_QUICK", "") not in ("", "0")
SHAPE = (256, 512) if SHORT else (2048, 4096)
COUNT = 8
ROUNDS = 3 if SHORT else 5
TARGET_RATIO = 3.0


class W5:
    """A session holding COUNT float32 variables of SHAPE, a Saver for them, and a scratch directory."""

    def __init__(self) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            # A random initializer keeps the graph small (values are set directly below, never computed).
            self.vars = [tf.Variable(tf.random_normal(SHAPE), name=f"v{i}") for i in range(COUNT)]
            self.saver = tf.train.Saver(max_to_keep=1)
        self.sess = tf.Session(graph=self.graph)
        rng = np.random.default_rng(0)
        self.values = {v.op.name: rng.standard_normal(SHAPE, dtype=np.float32) for v in self.vars}
        self.sess._write_variables(self.values)
        self.dir = tempfile.mkdtemp(prefix="w5_")
        self.prefix = os.path.join(self.dir, "model.ckpt")

    def save(self) -> None:
        self.saver.save(self.sess, self.prefix, write_meta_graph=True)

    def restore(self) -> None:
        self.saver.restore(self.sess, self.prefix)

    def raw_write(self) -> None:
        for name, arr in self.values.items():
            arr.tofile(os.path.join(self.dir, name + ".raw"))

    def raw_read(self) -> None:
        for name in self.values:
            np.fromfile(os.path.join(self.dir, name + ".raw"), dtype=np.float32)

    def close(self) -> None:
        self.sess.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(w: W5, rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds of raw write/read and of save/restore, rounds interleaved."""
    w.raw_write()
    w.raw_read()
    w.save()
    w.restore()  # warm-up: files exist, code paths loaded
    t: dict[str, list[float]] = {"raw_write": [], "raw_read": [], "save": [], "restore": []}
    for _ in range(rounds):
        t["raw_write"].append(_timed(w.raw_write))
        t["raw_read"].append(_timed(w.raw_read))
        t["save"].append(_timed(w.save))
        t["restore"].append(_timed(w.restore))
    med = {k: float(np.median(v)) for k, v in t.items()}
    med["raw"] = med["raw_write"] + med["raw_read"]
    med["ours"] = med["save"] + med["restore"]
    med["ratio"] = med["ours"] / med["raw"]
    return med


def report(m: dict[str, float]) -> str:
    mb = COUNT * int(np.prod(SHAPE)) * 4 / 2**20
    return (f"W5 {COUNT} x {list(SHAPE)} float32 ({mb:.0f} MB): save {m['save'] * 1e3:.0f} ms + restore "
            f"{m['restore'] * 1e3:.0f} ms = {m['ours'] * 1e3:.0f} ms; raw tofile {m['raw_write'] * 1e3:.0f} ms + "
            f"fromfile {m['raw_read'] * 1e3:.0f} ms = {m['raw'] * 1e3:.0f} ms; ratio {m['ratio']:.2f} "
            f"(target <= {TARGET_RATIO})")


@pytest.fixture(scope="module")
def w5() -> Iterator[W5]:
    w = W5()
    yield w
    w.close()


def test_w5_raw_io(benchmark, w5: W5) -> None:
    benchmark.pedantic(lambda: (w5.raw_write(), w5.raw_read()), rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_w5_save(benchmark, w5: W5) -> None:
    benchmark.pedantic(w5.save, rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_w5_restore(benchmark, w5: W5) -> None:
    w5.save()
    benchmark.pedantic(w5.restore, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    for v in w5.vars:
        np.testing.assert_array_equal(w5.sess.run(v), w5.values[v.op.name])


def test_w5_ratio(w5: W5) -> None:
    m = measure(w5)
    print("\n" + report(m))
    for v in w5.vars:  # what was timed really round-trips
        np.testing.assert_array_equal(w5.sess.run(v), w5.values[v.op.name])


if __name__ == "__main__":
    w = W5()
    try:
        print(report(measure(w, int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)))
    finally:
        w.close()
