"""Helpers for compiler tests: run a graph compiled and interpreted, compare, count clusters."""
from __future__ import annotations

from typing import Any

import numpy as np

import jitflow as tf
from jitflow.compiler.plan import Plan


def run_both(fetches: Any, feed: dict | None = None, init: bool = False) -> tuple[Any, Any, Plan]:
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


def counts(plan: Plan) -> tuple[int, int]:
    """(number of clusters, number of fallbacks) of a compiled plan."""
    return len(plan.report["clusters"]), len(plan.report["fallbacks"])


def assert_same(got: Any, want: Any, rtol: float | None = None, what: str = "", atol: float = 0.0) -> None:
    """Exact for integers and bools; a few ulps for floats (NaNs in the same places)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    if rtol is None:
        rtol = 4e-6 if got.dtype == np.float32 else 1e-14
    tiny = max(np.finfo(got.dtype).tiny * 1e3, atol)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=tiny, equal_nan=True, err_msg=what)


def until_helpers_join(call: Any) -> None:
    """Arms the packed GEMMs' helpers and runs `call()` (which checks its own result) until a helper has
    taken a block of it (at most 20 s); fails when none ever does."""
    import time

    from jitflow.kernels import packed_gemm, packed_helpers

    helpers = packed_helpers.HELPERS
    helpers.arm()
    try:
        helped = helpers.ctrl[packed_gemm.HELPED]
        deadline = time.monotonic() + 20
        while helpers.ctrl[packed_gemm.HELPED] == helped and time.monotonic() < deadline:
            call()
        assert helpers.ctrl[packed_gemm.HELPED] > helped
    finally:
        helpers.disarm()
