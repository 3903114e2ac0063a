"""W7 / W7i: the CNN of the public TF1 example `convolutional_network_raw` (bench/cnn_workload.py).

W7 times one training step at batch 128 (16 in quick mode), W7i one batch-1 inference. TensorFlow is
timed in this process when importable; otherwise, when ``JITFLOW_BENCH_TF_PYTHON`` names a Python
that has it (e.g. ``/work/tfvenv/bin/python``), in a child process of that interpreter started from
this run, so both sides are measured in the same window. A third row times each conv op of the
network alone and reports its GFLOP/s. Before timing, the compiled and interpreted steps must agree.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cnn_workload as C
import numpy as np
import pytest
import workloads as W

import jitflow as tf
from jitflow import flags

QUICK = W.quick_mode()
BATCH = 16 if QUICK else 128
ROUNDS = 3 if QUICK else 15


def _session_step(jit: bool, batch: int) -> tuple[Any, Any, Any]:
    g = tf.Graph()
    with g.as_default():
        m = C.build_cnn(tf, None)
    sess = tf.Session(graph=g, config=tf.ConfigProto(jit=jit))
    sess.run(m["init"])
    xs, ys = C.cnn_batch(batch)
    return sess, m, {m["x"]: xs, m["y"]: ys, m["keep"]: 1.0}


def test_w7_compiled_matches_interpreted() -> None:
    """Two training steps from the same seeded weights: the same loss, compiled or interpreted."""
    losses = []
    for jit in (True, False):
        sess, m, feed = _session_step(jit, 8)
        for _ in range(2):
            sess.run(m["train"], feed)
        losses.append(sess.run(m["loss"], feed))
        sess.close()
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


@pytest.mark.parametrize("variant", ["compiled", "interpreted"])
def test_w7_train_step(measure: Any, variant: str) -> None:
    sess, m, feed = _session_step(variant == "compiled", BATCH)
    feed[m["keep"]] = 0.75
    sess.run(m["train"], feed)
    sec = measure(lambda: sess.run(m["train"], feed), workload="W7", variant=variant,
                  rounds=ROUNDS if variant == "compiled" else 3, unit="step",
                  gflops=C.step_flops(BATCH) / 1e9)
    print(f"W7 {variant}: {sec * 1e3:.1f} ms/step, {C.step_flops(BATCH) / sec / 1e9:.0f} GFLOP/s")
    sess.close()


def test_w7i_inference(measure: Any) -> None:
    sess, m, feed = _session_step(True, 1)
    del feed[m["y"]]
    for _ in range(flags.native_plan_runs() + 1):  # warm: the plan has become one compiled call (if it can)
        sess.run(m["logits"], feed)
    native = list(sess._plans.values())[-1].report.get("native", {})
    measure(lambda: sess.run(m["logits"], feed), workload="W7i", variant="compiled", rounds=ROUNDS,
            iterations=20, unit="run", jit="one compiled call" if "steps" in native else "step by step")
    sess.close()


def _tf_child(python: str) -> dict[str, Any]:
    script = Path(__file__).with_name("cnn_workload.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([python, str(script), "--framework", "tensorflow", "--steps", str(ROUNDS),
                           "--batch", str(BATCH)], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"TensorFlow child failed: {proc.stderr[-300:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_w7_tensorflow(record: Any) -> None:
    """TensorFlow's step and batch-1 inference, in-process or from JITFLOW_BENCH_TF_PYTHON's child."""
    if W.tensorflow_v1() is not None:
        res, how = C.time_framework("tensorflow", ROUNDS, BATCH), "in-process median"
    elif os.environ.get("JITFLOW_BENCH_TF_PYTHON"):
        res, how = _tf_child(os.environ["JITFLOW_BENCH_TF_PYTHON"]), "median in a child TF process"
    else:
        pytest.skip("TensorFlow not importable and JITFLOW_BENCH_TF_PYTHON not set")
    record("W7", "tensorflow", res["w7_step_s"], "step", f"{how} of {ROUNDS} steps")
    record("W7i", "tensorflow", res["w7i_s"], "run", f"{how} of 200 runs")


def _conv_ops() -> list[tuple[str, Any, float]]:
    """(name, fn, flops) per conv op of the network, through the compiled steps' kernels."""
    from jitflow.kernels import conv

    rng = np.random.default_rng(0)
    cases = []
    for name, hw, k, cin, cout in C.CONV_SHAPES:
        x = rng.random((BATCH, hw, hw, cin), dtype=np.float32)
        f = rng.random((k, k, cin, cout), dtype=np.float32)
        dy = rng.random((BATCH, hw, hw, cout), dtype=np.float32)
        g = conv.ConvGeom(k, k, 1, 1, 1, 1, k // 2, k // 2, hw, hw)
        out, dx, df = np.empty_like(dy), np.empty_like(x), np.empty_like(f)
        bufs: dict[Any, np.ndarray] = {}

        def alloc(n: int, dt: np.dtype, key: str, bufs: dict = bufs) -> np.ndarray:
            if key not in bufs or bufs[key].size < n:
                bufs[key] = np.empty(n, dt)
            return bufs[key][:n]

        flops = C.conv_flops(BATCH, hw, k, cin, cout)
        cases += [
            (f"{name} forward", lambda x=x, f=f, g=g, out=out, a=alloc: conv.forward(
                x, f, g, out, lambda n, dt: a(n, dt, "f")), flops),
            (f"{name} filter grad", lambda x=x, dy=dy, g=g, df=df, a=alloc: conv.filter_grad(
                x, dy, g, df, lambda n, dt: a(n, dt, "w"), 2), flops),
            (f"{name} input grad", lambda dy=dy, f=f, g=g, dx=dx, a=alloc: conv.input_grad(
                dy, f, g, dx, lambda n, dt: a(n, dt, "i")), flops),
        ]
    return cases


def test_w7_conv_gflops(record: Any) -> None:
    """GFLOP/s of each conv op of W7 alone (median of several calls)."""
    for name, fn, flops in _conv_ops():
        how = fn()  # the method chosen for the shape (as `explain` shows it)
        name += f" [{how}]"
        times = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        record("W7", f"{name} ({flops / sec / 1e9:.0f} GFLOP/s)", sec, "call", f"median of {ROUNDS} calls")
    sys.stdout.flush()
