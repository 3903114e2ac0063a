"""W4: MLP 784→512→10, ReLU, sparse softmax cross-entropy, SGD; time per ``sess.run(train_op, feed)``.

Batch 256 (32 in quick mode), four fixed batches cycled. The baseline is a hand-written NumPy step
(forward, backward, update; preallocated buffers, BLAS GEMMs). Every variant first takes three steps
from the same weights and its weight updates must match plain float64 NumPy.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import workloads as W

import jitflow as tf

S = W.sizes()
CHECK_STEPS = 3
MAX_UPDATE_ERR = 1e-3  # float32 GEMMs vs float64, relative to the size of the update


@dataclass
class Case:
    """One variant, ready to train: a step on the first batch (for the check), a step on the next batch
    of the cycle (for the timing), the current parameters, and what the JIT did."""

    check_step: Callable[[], None]
    step: Callable[[], None]
    params: Callable[[], dict[str, np.ndarray]]
    jit: str = ""


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    """Initial weights, the batches, and the float64 result of CHECK_STEPS steps on the first batch."""
    params, batches = W.w4_params(), W.w4_batches(S.w4_batch)
    ref, _ = W.w4_reference(params, *batches[0], CHECK_STEPS)
    return {"params": params, "batches": batches, "ref": ref}


@contextmanager
def _session(tf_mod: Any, sess_factory: Callable[[Any], Any], jit: Callable[[Any], str],
             params: dict[str, np.ndarray], batches: list[Any]) -> Iterator[Case]:
    missing = W.missing_api(tf_mod, "nn.relu", "nn.sparse_softmax_cross_entropy_with_logits",
                            "train.GradientDescentOptimizer", "matmul")
    if missing:
        pytest.skip(f"API not available yet: {', '.join(missing)}")
    g = tf_mod.Graph()
    with g.as_default():
        m = W.build_w4(tf_mod, params)
    with sess_factory(g) as sess:
        sess.run(m["init"])
        train, x, labels = m["train"], m["x"], m["labels"]
        feeds = [{x: xb, labels: yb} for xb, yb in batches]
        first, cycle = feeds[0], itertools.cycle(feeds)
        case = Case(check_step=lambda: sess.run(train, feed_dict=first),
                    step=lambda: sess.run(train, feed_dict=next(cycle)),
                    params=lambda: sess.run(m["vars"]))
        _, first_run = W.first_run(case.check_step)  # builds (and compiles) the plan
        case.jit = f"{jit(sess)}; {first_run}" if tf_mod is tf else jit(sess)
        sess.run(m["init"])
        yield case


def _jitflow(variant: str, params: dict[str, np.ndarray], batches: list[Any]) -> Any:
    return _session(tf, lambda g: W.jitflow_session(tf, g, variant), lambda s: W.jit_state(s, variant),
                    params, batches)


def _tensorflow(params: dict[str, np.ndarray], batches: list[Any]) -> Any:
    tf1 = W.tensorflow_v1()
    if tf1 is None:
        pytest.skip("TensorFlow is not installed (optional baseline)")
    return _session(tf1, lambda g: tf1.Session(graph=g), lambda s: "TensorFlow graph mode", params, batches)


@contextmanager
def _numpy(params: dict[str, np.ndarray], batches: list[Any]) -> Iterator[Case]:
    mlp = W.NumpyMLP(params, S.w4_batch)
    cycle = itertools.cycle(batches)
    yield Case(check_step=lambda: mlp.step(*batches[0]), step=lambda: mlp.step(*next(cycle)),
               params=mlp.params, jit="numpy")


CASES: dict[str, Callable[..., Any]] = {
    "numpy": _numpy, "interpreted": lambda p, b: _jitflow("interpreted", p, b),
    "compiled": lambda p, b: _jitflow("compiled", p, b), "tensorflow": _tensorflow}


@pytest.mark.parametrize("variant", list(CASES))
def test_W4_mlp(measure: Any, setup: dict[str, Any], variant: str) -> None:
    with CASES[variant](setup["params"], setup["batches"]) as case:
        for _ in range(CHECK_STEPS):
            case.check_step()
        err = W.w4_update_error(setup["params"], case.params(), setup["ref"])
        assert err <= MAX_UPDATE_ERR, f"{variant}: weight updates off by {err:.3g} (relative)"
        measure(case.step, workload="W4", variant=variant, rounds=S.w4_rounds, unit="step", jit=case.jit,
                batch=S.w4_batch, update_err=err)
        assert all(np.all(np.isfinite(v)) for v in case.params().values())


def test_W4_interleaved(record: Any, setup: dict[str, Any]) -> None:
    """The compiled/numpy ratio again, the two timed in turns (robust to load from other processes)."""
    with _jitflow("compiled", setup["params"], setup["batches"]) as comp, \
            _numpy(setup["params"], setup["batches"]) as ref:
        for case in (comp, ref):
            for _ in range(CHECK_STEPS):
                case.check_step()
        assert W.w4_update_error(setup["params"], comp.params(), ref.params()) <= MAX_UPDATE_ERR
        med = W.interleaved_medians({"compiled": comp.step, "numpy": ref.step}, S.w4_rounds)
        source = f"interleaved median of {S.w4_rounds}"
        record("W4", "compiled (interleaved)", med["compiled"], "step", source, comp.jit)
        record("W4", "numpy (interleaved)", med["numpy"], "step", source, "numpy")
