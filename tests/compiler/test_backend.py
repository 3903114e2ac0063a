"""The backend interface (`compiler/backend.py`) on the CPU: render, compile, launch, allocate, move."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from jitflow.codegen import cpu
from jitflow.compiler.arena import Arena
from jitflow.compiler.backend import backend, cluster_backend, devices_of
from jitflow.compiler.plan import ARENA_SLOT, FIRST_SLOT
from jitflow.compiler.steps import ClusterStep
from jitflow.ir.layout import compute_layout
from tests.compiler.helpers import last_plan


def _cluster_step() -> ClusterStep:
    x = tf.placeholder(tf.float32, [None, 8], name="x")
    y = tf.tanh(x * 2.0 + 1.0)
    with tf.Session() as sess:
        sess.run(y, {x: np.ones((2, 8), np.float32)})
        return next(st for st in last_plan(sess).steps if isinstance(st, ClusterStep))


def run_cluster(name: str, xv: np.ndarray) -> np.ndarray:
    """The cluster of tanh(2x + 1) through backend `name`'s render, compile, allocate, launch and move."""
    step = _cluster_step()
    b = backend(name)
    ins = [np.asarray(i.tensor.op.attrs["value"]) if i.tensor.op.type == "Const" else xv for i in step.c.inputs]
    shapes = [a.shape for a in ins]
    space, axes, out_shapes = step.output_shapes(tuple(shapes))
    layout, exts = compute_layout(shapes, space, axes)
    report: dict = {}
    kernel = b.compile(b.render(step.c, layout), {"cluster": step.c.signature(), "layout": layout.key(),
                                                  "codegen": cpu.CODEGEN_VERSION, "test": True},
                       [op.type for op in step.c.ops], report)
    assert report["source"] in ("compiled", "disk", "memory") and report["key"]
    vals: list = [None] * FIRST_SLOT
    vals[ARENA_SLOT] = Arena()
    out = b.allocate(vals, "out", out_shapes[0], np.dtype(np.float32))
    err = b.allocate(vals, "err", (1,), np.dtype(np.int64))
    b.launch(kernel, *[b.move(a.reshape(-1), False) for a in ins], out.reshape(-1), np.asarray(exts, np.int64), err)
    return np.asarray(b.move(out, True))


def test_cpu_backend_runs_a_cluster() -> None:
    with tf.Graph().as_default():
        xv = np.linspace(-2, 2, 48, dtype=np.float32).reshape(6, 8)
        np.testing.assert_allclose(run_cluster("cpu", xv), np.tanh(xv * 2 + 1), rtol=1e-6)


def test_backend_choice() -> None:
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32)
        with tf.device("/gpu:1"):
            b = a + 1.0
        assert cluster_backend([b.op], 0) == "cpu"
        assert cluster_backend([b.op], 1) == "cpu"  # /gpu:1 does not exist on a one-GPU machine
        assert cluster_backend([b.op], 2) == "cuda"
        assert cluster_backend([a.op, b.op], 2) == "cpu"  # not all on one GPU
        assert devices_of([a.op]) == [] and devices_of([a.op, b.op]) == ["cuda"]
    assert backend("cpu").compiles_when_built
    with pytest.raises(ValueError, match="unknown backend"):
        backend("tpu")
