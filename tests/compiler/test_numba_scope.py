"""jitflow's Numba settings stay with jitflow's kernels: a user's own Numba function compiled after
importing jitflow and running a graph is compiled exactly as in a process without jitflow."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_USER = """
import re, sys
import numpy as np
from numba import njit, types
from numba.core import config
if sys.argv[1] == "jitflow":
    import jitflow as tf
    from jitflow.compiler.steps import ClusterStep
    x = tf.placeholder(tf.float32, [None, 256])
    y = tf.tanh(x * 2.0) + 1.0
    with tf.Session() as sess:
        sess.run(y, {x: np.ones((64, 256), np.float32)})
        step = next(s for s in list(sess._plans.values())[-1].steps if isinstance(s, ClusterStep))
    kernel = next(e.kernel for e in step.entries.values() if e.kernel is not None)
    assert '"prefer-vector-width"="512"' in "".join(kernel.inspect_llvm().values()), "jitflow's kernel is not wide"
@njit(types.void(types.float32[::1], types.float32[::1]))
def user(a, out):
    for i in range(a.size):
        out[i] = a[i] * 2.0 + 1.0
ir = "".join(user.inspect_llvm().values())
widths = sorted({int(n) for n in re.findall(r"<(\\\\d+) x float>", ir)})
print(getattr(config, "CPU_FEATURES", None), widths,
      "prefer-vector-width" in ir)
"""


def _host_has_avx512() -> bool:
    from llvmlite import binding as llvm

    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


def test_user_numba_code_keeps_numba_defaults(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    env["JITFLOW_CACHE_DIR"] = str(tmp_path)  # jitflow's kernel compiles here (its LLVM IR is inspected)
    if _host_has_avx512():
        env["NUMBA_CPU_NAME"] = "skylake-avx512"  # whose tuning prefers 256-bit vectors: a change would show
    out = []
    for mode in ("jitflow", "plain"):
        res = subprocess.run([sys.executable, "-c", _USER, mode], capture_output=True, text=True, env=env,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        out.append(res.stdout.strip())
    assert out[0] == out[1]
    assert out[0].startswith("None ") and out[0].endswith("False")


_OMP = """
import ctypes, os
import numpy as np
import numba
import jitflow as tf
before = os.environ.get("OMP_WAIT_POLICY")
x = tf.placeholder(tf.float32, [None, 4])
with tf.Session() as sess:
    sess.run(tf.exp(x) + 1.0, {x: np.ones((2, 4), np.float32)})
print(before, os.environ.get("OMP_WAIT_POLICY"), numba.threading_layer(), flush=True)
if numba.threading_layer() == "omp":
    gomp = ctypes.CDLL("libgomp.so.1")
    if hasattr(gomp, "omp_display_env"):
        gomp.omp_display_env(0)  # the runtime's settings, on stderr
"""


def test_omp_wait_policy_does_not_stay_in_the_environment() -> None:
    for user_policy in (None, "ACTIVE"):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if user_policy:
            env["OMP_WAIT_POLICY"] = user_policy
        res = subprocess.run([sys.executable, "-c", _OMP], capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        before, after, layer = res.stdout.split()
        assert before == after == str(user_policy)  # jitflow leaves the environment as the user gave it
        if "OMP_WAIT_POLICY" in res.stderr:  # libgomp's own report: the policy its threads use
            assert f"OMP_WAIT_POLICY = '{user_policy or 'PASSIVE'}'" in res.stderr, res.stderr
