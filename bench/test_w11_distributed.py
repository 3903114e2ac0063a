"""W11: the W4 MLP on 1 ps + 2 workers as separate processes (see w11_distributed.py), side by side with
TensorFlow's gRPC runtime where it is importable (or JITFLOW_BENCH_TF_PYTHON names its interpreter)."""
from __future__ import annotations

import sys
from typing import Any

import pytest
import w11_distributed as W11
import workloads as W

pytest.importorskip("ray", reason="W11 runs on Ray: pip install 'jitflow[distributed]'")


@pytest.mark.parametrize("backend", ["jitflow", "tensorflow"])
def test_W11_distributed(record: Any, backend: str) -> None:
    python = sys.executable if backend == "jitflow" else W11._tf_python()
    if python is None:
        pytest.skip("TensorFlow is not importable (set JITFLOW_BENCH_TF_PYTHON to its interpreter)")
    seconds = 2.0 if W.quick_mode() else 10.0
    r = W11.measure(backend, python, seconds, batch=64)
    source = f"{seconds:g} s windows, steps per worker {r['steps']}"
    record("W11", f"{backend} 2 workers", 1.0 / r["examples_per_s"], "example", source)
    record("W11", f"{backend} remote step", r["remote_step_ms"] / 1e3, "step", "1 ps + 1 worker")
    record("W11", f"{backend} local step", r["local_step_ms"] / 1e3, "step", "the same worker, local session")
