"""Depthwise convolutions on /gpu:0 (CUDA simulator) against the interpreter on the same graph.

The graphs are those of the CPU depthwise tests (random shapes, multipliers, strides, dilations,
SAME/VALID/explicit padding, NHWC and NCHW, float32 and float64, differentiated by tf.gradients), built
under a GPU device scope. The simulator runs a Python thread per CUDA thread: examples stay few.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import jitflow as tf
from jitflow.codegen import cuda_depthwise as cdw
from jitflow.compiler.gpu.conv import CudaWindowStep
from tests.compiler.test_depthwise_steps import DEPTHWISE, _graph, depthwise_cases
from tests.compiler.test_window_steps import _compare
from tests.cuda.helpers import needs_cuda, run_both

pytestmark = needs_cuda


def _device_steps(plan: Any) -> dict[str, str]:
    """op type -> the kernel its CUDA step reports."""
    return {s.op.type: s.report["source"] for s in plan.steps if isinstance(s, CudaWindowStep)}


def _on_gpu(case: dict[str, Any]) -> Any:
    """The plan of the case's graph placed on /gpu:0, compared with the interpreter (None: no graph)."""
    with tf.device("/gpu:0"):  # the op, its gradient ops and the constants they read
        fetches = _graph(case)
    return None if fetches is None else _compare(fetches)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depthwise_cases())
def test_depthwise_and_its_gradients_on_the_device_match_the_interpreter(case: dict[str, Any]) -> None:
    with tf.Graph().as_default():
        plan = _on_gpu(case)
    assume(plan is not None)
    kernels = _device_steps(plan)
    assert sorted(kernels) == DEPTHWISE
    assert all(k.startswith("codegen/cuda_depthwise: ") for k in kernels.values()), kernels


@pytest.mark.parametrize("fmt,dtype", [("NHWC", np.float32), ("NCHW", np.float64)])
def test_filter_gradient_summed_over_row_slices(monkeypatch: pytest.MonkeyPatch, fmt: str, dtype: Any) -> None:
    """The filter gradient's partial filters (one per slice of the rows, uneven slices) sum to the gradient."""
    asked: list[str] = []

    def three(op_type: str, g: Any, batch: int, target: Any) -> int:
        asked.append(op_type)
        return 3 if op_type == cdw.BACKPROP_FILTER else 1

    monkeypatch.setattr(cdw, "depthwise_splits", three)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 4, 3)).astype(dtype)
    case = {"x": x if fmt == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
            "f": rng.standard_normal((2, 3, 3, 2)).astype(dtype), "strides": 1, "dilations": (2, 1),
            "padding": "SAME", "fmt": fmt, "rng": rng}
    with tf.Graph().as_default():
        plan = _on_gpu(case)
    assert sorted(_device_steps(plan)) == DEPTHWISE
    assert asked == [cdw.BACKPROP_FILTER]  # 2 * 5 * 4 = 40 rows in slices of 14, 14 and 12


def test_separable_conv_gradients_and_explain_name_the_device_kernels() -> None:
    rng = np.random.default_rng(3)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 6, 6, 3])
        with tf.device("/gpu:0"):
            dw = tf.constant(rng.standard_normal((3, 3, 3, 2)).astype(np.float32))
            pw = tf.constant(rng.standard_normal((1, 1, 6, 4)).astype(np.float32))
            y = tf.nn.separable_conv2d(x, dw, pw, [1, 2, 2, 1], "SAME")
            fetches = [y, *tf.gradients(tf.reduce_sum(y * y), [x, dw, pw])]
        feed = {x: rng.standard_normal((2, 6, 6, 3)).astype(np.float32)}
        got, want, _ = run_both(fetches, feed)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * float(np.max(np.abs(b))))
        text = str(tf.explain(fetches, feed))
    for how in ("per output", "gather per input", "tap x channel sums"):
        assert f"codegen/cuda_depthwise: {how}" in text, text
    assert "kernels/depthwise" not in text


def test_bad_inputs_give_the_interpreters_errors_then_good_ones_run_on_the_device() -> None:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32)
        f = tf.placeholder(tf.float32)
        with tf.device("/gpu:0"):
            y = tf.nn.depthwise_conv2d_native(x, f, [1, 1, 1, 1], "VALID")
        errors = []
        for jit in (True, False):
            with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
                with pytest.raises(tf.errors.InvalidArgumentError, match="same depth") as e:
                    sess.run(y, {x: np.ones((1, 4, 4, 2), np.float32), f: np.ones((3, 3, 3, 1), np.float32)})
                errors.append(str(e.value).splitlines()[0])
        assert errors[0] == errors[1]
        with tf.Session() as sess:  # the same step runs good inputs on the device afterwards
            good = sess.run(y, {x: np.ones((1, 4, 4, 2), np.float32), f: np.ones((3, 3, 2, 2), np.float32)})
            plan = list(sess._plans.values())[-1]
    np.testing.assert_array_equal(good, np.full((1, 2, 2, 4), 9.0, np.float32))
    assert _device_steps(plan) == {cdw.FORWARD: "codegen/cuda_depthwise: per output (compiled)"}
