"""W3: the linear regression of acceptance/a03_linear_regression.py, time per ``sess.run(train_op)``.

One timed call is one epoch: 100 runs of the SGD step, each fed one scalar sample; the table shows the
time per step. Each variant first trains two epochs from its initial values and must land where the
same SGD in float64 NumPy lands.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import pytest
import workloads as W

import jitflow as tf

S = W.sizes()
CHECK_EPOCHS = 2
TRAIN_X, TRAIN_Y = W.w3_data()
SAMPLES = list(zip(TRAIN_X.tolist(), TRAIN_Y.tolist()))

# A case yields (one epoch, current (w, b), initial (w, b), JIT state).
Item = tuple[Callable[[], None], Callable[[], tuple[float, float]], tuple[float, float], str]
Case = Iterator[Item]


@contextmanager
def _session(tf_mod: Any, sess_factory: Callable[[Any], Any], jit: Callable[[Any], str]) -> Case:
    missing = W.missing_api(tf_mod, "train.GradientDescentOptimizer", "random_normal", "reduce_mean")
    if missing:
        pytest.skip(f"API not available yet: {', '.join(missing)}")
    g = tf_mod.Graph()
    with g.as_default():
        m = W.build_w3(tf_mod)
    with sess_factory(g) as sess:
        train, x, y = m["train"], m["x"], m["y"]
        sess.run(m["init"])
        _, first = W.first_run(lambda: sess.run(train, feed_dict={x: SAMPLES[0][0], y: SAMPLES[0][1]}))
        sess.run(m["init"])  # the check below starts from freshly initialized values
        w0, b0 = (float(v[0]) for v in sess.run([m["w"], m["b"]]))

        def epoch() -> None:
            for xs, ys in SAMPLES:
                sess.run(train, feed_dict={x: xs, y: ys})

        def params() -> tuple[float, float]:
            w, b = sess.run([m["w"], m["b"]])
            return float(w[0]), float(b[0])

        yield epoch, params, (w0, b0), f"{jit(sess)}; {first}" if tf_mod is tf else jit(sess)


def _jitflow(variant: str) -> AbstractContextManager[Item]:
    return _session(tf, lambda g: W.jitflow_session(tf, g, variant), lambda s: W.jit_state(s, variant))


def _tensorflow() -> AbstractContextManager[Item]:
    tf1 = W.tensorflow_v1()
    if tf1 is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    return _session(tf1, lambda g: tf1.Session(graph=g), lambda s: "TensorFlow graph mode")


@contextmanager
def _numpy() -> Case:
    w0, b0 = 0.5, -0.2
    sgd = W.NumpyW3(np.array([w0]), np.array([b0]))

    def epoch() -> None:
        for xs, ys in SAMPLES:
            sgd.step(xs, ys)

    yield epoch, (lambda: (float(sgd.w[0]), float(sgd.b[0]))), (w0, b0), "numpy"


CASES: dict[str, Callable[[], Any]] = {
    "numpy": _numpy, "interpreted": lambda: _jitflow("interpreted"),
    "compiled": lambda: _jitflow("compiled"), "tensorflow": _tensorflow}


@pytest.mark.parametrize("variant", list(CASES))
def test_W3_linreg(measure: Any, variant: str) -> None:
    with CASES[variant]() as (epoch, params, start, jit):
        for _ in range(CHECK_EPOCHS):
            epoch()
        got, want = params(), W.w3_reference(start[0], start[1], CHECK_EPOCHS)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{variant} after SGD")
        measure(epoch, workload="W3", variant=variant, rounds=S.w3_rounds, per=len(SAMPLES), unit="step",
                jit=jit)
        assert all(np.isfinite(params()))
