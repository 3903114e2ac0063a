"""W2: the elementwise chain of BENCH.md on 10M float32 (100k in quick mode) fed through a placeholder.

Each variant's result is checked against NumPy float32; the max relative error is reported (target
1e-6) and asserted below 5e-5, a floor that any wrong op breaks: near x = ±10, |y| ≈ 51 makes
exp(-|y|) amplify y's rounding error about 50-fold, so even NumPy float32 is 4e-6 off float64 there.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import workloads as W

import jitflow as tf

S = W.sizes()
MAX_REL_ERR = 5e-5


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """The input, NumPy float32's result (the baseline) and the float64 result (the yardstick)."""
    x = W.w2_input(S.w2_n)
    return {"x": x, "f32": W.NumpyW2(S.w2_n)(x).copy(), "f64": W.w2_reference64(x)}


Case = Iterator[tuple[Callable[[], Any], str]]


@contextmanager
def _jitflow(x_val: np.ndarray, variant: str) -> Case:
    g = tf.Graph()
    with g.as_default():
        x, out = W.build_w2(tf)
    with W.jitflow_session(tf, g, variant) as sess:
        _, first = W.first_run(lambda: sess.run(out, {x: x_val}))  # builds (and compiles) the plan
        yield (lambda: sess.run(out, {x: x_val})), f"{W.jit_state(sess, variant)}; {first}"


@contextmanager
def _tensorflow(x_val: np.ndarray) -> Case:
    tf1 = W.tensorflow_v1()
    if tf1 is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    g = tf1.Graph()
    with g.as_default():
        x, out = W.build_w2(tf1)
    with tf1.Session(graph=g) as sess:
        yield (lambda: sess.run(out, {x: x_val})), "TensorFlow graph mode"


@contextmanager
def _xla(x_val: np.ndarray) -> Case:
    if W.tensorflow_v1() is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    import tensorflow as real_tf  # type: ignore[import-not-found]

    @real_tf.function(jit_compile=True)
    def chain(x: Any) -> Any:
        y = real_tf.tanh(1.5 * x + 0.3) * real_tf.sigmoid(x) - 0.5 * real_tf.square(x)
        return real_tf.exp(-real_tf.abs(y)) + real_tf.maximum(y, 0.0)

    x_t = real_tf.constant(x_val)
    yield (lambda: chain(x_t).numpy()), "tf.function(jit_compile=True)"


@contextmanager
def _pytensor(x_val: np.ndarray) -> Case:
    pt = pytest.importorskip("pytensor", reason="PyTensor is not installed (optional baseline)")
    x = pt.tensor.vector("x", dtype="float32")
    # tensors on the left: a NumPy scalar on the left would try to broadcast the symbolic variable
    y = pt.tensor.tanh(x * np.float32(1.5) + np.float32(0.3)) * pt.tensor.sigmoid(x) \
        - pt.tensor.sqr(x) * np.float32(0.5)
    fn = pt.function([x], pt.tensor.exp(-abs(y)) + pt.tensor.maximum(y, np.float32(0.0)), mode="NUMBA")
    yield (lambda: fn(x_val)), "PyTensor mode=NUMBA"


@contextmanager
def _numpy(x_val: np.ndarray) -> Case:
    chain = W.NumpyW2(x_val.size)
    yield (lambda: chain(x_val)), "numpy"


CASES: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": _numpy, "interpreted": lambda x: _jitflow(x, "interpreted"),
    "compiled": lambda x: _jitflow(x, "compiled"), "tensorflow": _tensorflow, "xla": _xla,
    "pytensor": _pytensor}


@pytest.mark.parametrize("variant", list(CASES))
def test_W2_elementwise(measure: Any, data: dict[str, np.ndarray], variant: str) -> None:
    with CASES[variant](data["x"]) as (fn, jit):
        got = np.asarray(fn())
        assert got.dtype == np.float32 and got.shape == data["x"].shape
        err = W.max_rel_err(got, data["f32"])
        err64 = W.max_rel_err(got, data["f64"])
        assert err <= MAX_REL_ERR, f"{variant}: max relative error {err:.3g} vs NumPy float32"
        measure(fn, workload="W2", variant=variant, rounds=S.w2_rounds, jit=jit, n=S.w2_n,
                max_rel_err=err, max_rel_err_vs_f64=err64)
        assert W.max_rel_err(np.asarray(fn()), data["f32"]) <= MAX_REL_ERR


def test_W2_interleaved(record: Any, data: dict[str, np.ndarray]) -> None:
    """The compiled/numpy ratio again, the two timed in turns (robust to load from other processes)."""
    with _jitflow(data["x"], "compiled") as (compiled, jit), _numpy(data["x"]) as (numpy_fn, _):
        assert W.max_rel_err(np.asarray(compiled()), data["f32"]) <= MAX_REL_ERR
        med = W.interleaved_medians({"compiled": compiled, "numpy": numpy_fn}, S.w2_rounds)
        source = f"interleaved median of {S.w2_rounds}"
        record("W2", "compiled (interleaved)", med["compiled"], "run", source, jit)
        record("W2", "numpy (interleaved)", med["numpy"], "run", source, "numpy")
