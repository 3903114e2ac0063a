"""W1: ``a*b + 1`` on two scalar float32 placeholders, time per ``sess.run`` on a cached plan."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import workloads as W

import jitflow as tf

S = W.sizes()
EXPECTED = W.w1_numpy(np.float32(W.W1_A), np.float32(W.W1_B))


@contextmanager
def _jitflow(variant: str) -> Iterator[tuple[Callable[[], Any], str]]:
    g = tf.Graph()
    with g.as_default():
        a, b, c = W.build_w1(tf)
    with W.jitflow_session(tf, g, variant) as sess:
        feed = {a: W.W1_A, b: W.W1_B}
        _, first = W.first_run(lambda: sess.run(c, feed))  # builds (and compiles) the plan
        yield (lambda: sess.run(c, feed)), f"{W.jit_state(sess, variant)}; {first}"


@contextmanager
def _tensorflow() -> Iterator[tuple[Callable[[], Any], str]]:
    tf1 = W.tensorflow_v1()
    if tf1 is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    g = tf1.Graph()
    with g.as_default():
        a, b, c = W.build_w1(tf1)
    with tf1.Session(graph=g) as sess:
        feed = {a: W.W1_A, b: W.W1_B}
        yield (lambda: sess.run(c, feed)), "TensorFlow graph mode"


@contextmanager
def _pytensor() -> Iterator[tuple[Callable[[], Any], str]]:
    pt = pytest.importorskip("pytensor", reason="PyTensor is not installed (optional baseline)")
    a, b = pt.tensor.scalar("a", dtype="float32"), pt.tensor.scalar("b", dtype="float32")
    fn = pt.function([a, b], a * b + np.float32(1.0), mode="NUMBA")
    a_val, b_val = np.float32(W.W1_A), np.float32(W.W1_B)
    yield (lambda: fn(a_val, b_val)), "PyTensor mode=NUMBA"


@contextmanager
def _numpy() -> Iterator[tuple[Callable[[], Any], str]]:
    a_val, b_val = np.float32(W.W1_A), np.float32(W.W1_B)
    yield (lambda: W.w1_numpy(a_val, b_val)), "numpy"


CASES = {"numpy": _numpy, "interpreted": lambda: _jitflow("interpreted"),
         "compiled": lambda: _jitflow("compiled"), "tensorflow": _tensorflow, "pytensor": _pytensor}


@pytest.mark.parametrize("variant", list(CASES))
def test_W1_tiny(measure: Any, variant: str) -> None:
    with CASES[variant]() as (fn, jit):
        first = fn()
        assert np.asarray(first).dtype == np.float32 and np.asarray(first).shape == ()
        assert first == EXPECTED, (first, EXPECTED)
        measure(fn, workload="W1", variant=variant, rounds=S.w1_rounds, iterations=S.w1_iterations,
                jit=jit)
        assert fn() == EXPECTED
