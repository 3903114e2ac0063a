"""A seeded TF1 training program gives TensorFlow's numbers: same random initial values, same dropout
masks, same updates (conv2d, pooling, Adam with a decayed rate, Nesterov momentum)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("jit", ["1", "0"])
def test_training_matches_tensorflow(jit):
    env = {**os.environ, "JITFLOW_JIT": jit}
    r = subprocess.run([sys.executable, os.path.join(DATA, "side_by_side_program.py")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = np.array(r.stdout.split(), dtype=float)
    want = np.array(open(os.path.join(DATA, "tf_side_by_side.txt")).read().split(), dtype=float)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
