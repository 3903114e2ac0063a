"""Every formula lowering (`OpDef.lowering`) rendered for CUDA, against the interpreter (simulator)."""
from __future__ import annotations

import pytest

import jitflow as tf
from tests.compiler.helpers import assert_same
from tests.compiler.test_registry_walk import FORMULA_OPS, formula_cases
from tests.cuda.helpers import backends, needs_cuda, run_gpu

pytestmark = needs_cuda


@pytest.mark.parametrize("op_type", FORMULA_OPS)
def test_formula_lowering_on_cuda_agrees_with_the_interpreter(op_type: str) -> None:
    with tf.device("/gpu:0"):
        cases = formula_cases(op_type)
    for dt, y, feed in cases:
        got, want, plan = run_gpu(y, feed)
        assert backends(plan) == ["cuda"] and plan.report["fallbacks"] == [], plan.report
        assert_same(got, want, what=f"{op_type} on {dt}")
