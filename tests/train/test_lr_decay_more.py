"""cosine_decay_restarts, linear_cosine_decay and piecewise_constant_decay against TensorFlow's values
(tests/data/lr_decay/, recorded by make_fixture.py there)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "lr_decay")


def test_schedules_match_tensorflow() -> None:
    with open(os.path.join(HERE, "tf_values.json")) as f:
        want = json.load(f)
    env = {**os.environ, "JITFLOW_JIT": "0"}
    res = subprocess.run([sys.executable, os.path.join(HERE, "make_fixture.py"), "jf"], capture_output=True,
                         text=True, env=env, check=True)
    np.testing.assert_allclose(json.loads(res.stdout.strip().splitlines()[-1]), want, rtol=1e-6, atol=1e-8)
