"""W9: the W4 MLP trained from a tf.data pipeline; W9r: TFRecord Examples read into parsed batches.

W9 times `sess.run(train)` fed by `from_tensor_slices(60000x784).shuffle(10000).map(scale).batch(256)
.prefetch(2)` and, in turns with it, W4's feed_dict step on the same weights and batch size: the
pipeline keeps the step fed when the two are close. W9r writes TFRecord files of Examples (784 floats
and a label each; 1 GB in full mode) and times reading them all through `TFRecordDataset -> batch ->
parse_example -> prefetch`. TensorFlow runs the same code when it is installed.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import input_pipeline as P
import pytest
import workloads as W

import jitflow as tf

QUICK = W.quick_mode()
BATCH = 32 if QUICK else 256
ROUNDS = 5 if QUICK else 30
W9R_MB = 8.0 if QUICK else 1000.0


def _frameworks() -> dict[str, Any]:
    out: dict[str, Any] = {"jitflow": tf}
    tf1 = W.tensorflow_v1()
    if tf1 is not None:
        out["tensorflow"] = tf1
    return out


@pytest.mark.parametrize("name", ["jitflow", "tensorflow"])
def test_W9_pipeline_step(record: Any, name: str) -> None:
    mod = _frameworks().get(name)
    if mod is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    med = P.w9_step_times(mod, lambda g: mod.Session(graph=g), BATCH, ROUNDS)
    source = f"interleaved median of {ROUNDS}, batch {BATCH}"
    record("W9", f"{name} pipeline", med["w9"], "step", source, examples_per_s=BATCH / med["w9"])
    record("W9", f"{name} fed (W4)", med["w4"], "step", source)
    if "w9_thread" in med:
        record("W9", f"{name} pipeline, prefetch thread", med["w9_thread"], "step", source)
    assert med["w9"] > 0 and med["w4"] > 0


@pytest.fixture(scope="module")
def w9r_files() -> Any:
    with tempfile.TemporaryDirectory() as d:
        paths, size = P.write_w9r_files(tf, d, W9R_MB)
        yield paths, size


@pytest.mark.parametrize("name", ["jitflow", "tensorflow"])
def test_W9r_read_parse(record: Any, w9r_files: Any, name: str) -> None:
    mod = _frameworks().get(name)
    if mod is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    paths, size = w9r_files
    P.w9r_warm_up(mod, lambda g: mod.Session(graph=g), paths)
    secs = P.w9r_seconds(mod, lambda g: mod.Session(graph=g), paths)
    record("W9r", name, secs / (size / 1e6), "MB", f"one pass over {size / 1e6:.0f} MB in {len(paths)} files",
           mb_per_s=size / 1e6 / secs)
    assert all(os.path.getsize(p) > 0 for p in paths)
