"""Defining an elementwise op from its formula: one function gives the reference kernel and the lowering.

`define(op_type, formula, ...)` registers an OpDef whose NumPy kernel evaluates `formula` on the input
arrays and whose `lowering` is the same formula (`jitflow.ir.formula.Elementwise`), from which the
CPU and CUDA code generators render their kernels. A formula uses arithmetic, comparisons and the
functions of `jitflow.ir.expr` (`where`, `maximum`, `exp`, `sigmoid`, ...).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.ir import expr
from jitflow.ir.formula import Elementwise
from jitflow.ops.op_util import elementwise_infer, make_op, out


def define(op_type: str, formula: Callable[..., Any], dtypes: tuple[str, ...] = expr.FLOAT,
           attrs: tuple[str, ...] = (), grad: registry.GradFn | None = None,
           infer: registry.InferFn | None = None) -> registry.OpDef:
    """Registers elementwise `op_type` computing `formula(*inputs, **attrs)` (result in input 0's dtype).

    `dtypes`: the dtypes of input 0 the compiler lowers it for (others run interpreted);
    `grad(op, *output_grads)`: its gradient; `infer`: its shape function (default: broadcasting).
    """
    lowering = Elementwise(formula, dtypes, attrs)

    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        return lowering.evaluate(ins, op.attrs.get, np.asarray(ins[0]).dtype)

    return registry.register_op(op_type, infer or elementwise_infer(), kernel, registry.ELEMENTWISE, grad=grad,
                                lowering=lowering)


def apply(op_type: str, inputs: list[Tensor], attrs: dict[str, Any] | None = None) -> Tensor:
    """An `op_type` op on `inputs` (T is input 0's dtype), named after its type: for gradients."""
    return out(make_op(op_type, inputs, {"T": inputs[0].dtype, **(attrs or {})}, name=op_type))
