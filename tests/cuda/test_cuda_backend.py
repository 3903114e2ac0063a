"""The backend interface on CUDA (the simulator where no GPU exists): the same cluster as on the CPU."""
from __future__ import annotations

import numpy as np

import jitflow as tf
from jitflow.compiler.backend import backend
from tests.compiler.test_backend import run_cluster
from tests.cuda.helpers import needs_cuda

pytestmark = needs_cuda


def test_cuda_backend_runs_a_cluster() -> None:
    assert not backend("cuda").compiles_when_built
    with tf.Graph().as_default():
        xv = np.linspace(-2, 2, 48, dtype=np.float32).reshape(6, 8)
        np.testing.assert_allclose(run_cluster("cuda", xv), run_cluster("cpu", xv), rtol=1e-6)
