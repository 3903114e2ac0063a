"""Helpers for CUDA tests: run a graph placed on /gpu:0 through CUDA and through the interpreter."""
from __future__ import annotations

from typing import Any

import pytest

import jitflow as tf
from jitflow.compiler import gpu
from jitflow.compiler.placement import gpu_count
from jitflow.compiler.plan import Plan

# numba.cuda imports and sees a device (a real GPU, or the simulator chosen in conftest.py)
needs_cuda = pytest.mark.skipif(gpu_count() == 0, reason="numba.cuda with a GPU or the simulator is needed")


def run_gpu(fetches: Any, feed: dict | None = None, init: bool = False) -> tuple[Any, Any, Plan]:
    """(compiled results, interpreted results, compiled plan) of one run in fresh sessions."""
    res = []
    plan = None
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            if init:
                sess.run(tf.global_variables_initializer())
            res.append(sess.run(fetches, feed))
            if jit:
                plan = last_plan(sess)
    assert plan is not None
    return res[0], res[1], plan


def last_plan(sess: tf.Session) -> Plan:
    """The plan the session built most recently."""
    return list(sess._plans.values())[-1]


def cuda_steps(plan: Plan) -> list[Any]:
    """The CUDA steps of a plan."""
    return [s for s in plan.steps if isinstance(s, (gpu.CudaClusterStep, gpu.CudaMatMulStep))]


def backends(plan: Plan) -> list[str]:
    """The backend of every cluster the plan reports."""
    return [c["backend"] for c in plan.report["clusters"]]
