"""The small-tensor path: a cluster on rank-0 values as one generated Python function.

A Numba call costs a microsecond or more before any work; on scalars (W1, W3) NumPy's scalar
arithmetic costs tens of nanoseconds. For a cluster whose inputs are all rank 0, `build` generates a
Python function that runs every member in order on NumPy scalars: float arithmetic and comparisons
use Python operators on NumPy scalars (same IEEE result as the ufuncs), every other op calls its
reference kernel, so the semantics (and errors, wrapped as the interpreter wraps them) are the
interpreter's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow.compiler.interp import op_error
from jitflow.framework.graph import Operation, Tensor

_FLOAT = ("float32", "float64")
_BINARY = {"AddV2": "+", "Add": "+", "Sub": "-", "Mul": "*", "RealDiv": "/"}
_COMPARE = {"Equal": "==", "NotEqual": "!=", "Less": "<", "LessEqual": "<=", "Greater": ">",
            "GreaterEqual": ">="}
_NUMERIC = _FLOAT + ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _operator_expr(op: Operation, args: list[str]) -> str | None:
    """A Python-operator expression for `op` on NumPy scalars, when it equals the ufunc's result."""
    dts = [np.dtype(t.dtype.np).name for t in op.inputs]
    if not dts or any(d != dts[0] for d in dts):
        return None
    if op.type in _BINARY and dts[0] in _FLOAT:
        return f"{args[0]} {_BINARY[op.type]} {args[1]}"
    if op.type == "Div" and dts[0] in _FLOAT:
        return f"{args[0]} / {args[1]}"
    if op.type == "Neg" and dts[0] in _FLOAT:
        return f"-{args[0]}"
    if op.type == "Square" and dts[0] in _FLOAT:
        return f"{args[0]} * {args[0]}"
    if op.type in _COMPARE and dts[0] in _NUMERIC:
        return f"{args[0]} {_COMPARE[op.type]} {args[1]}"
    return None


def build(members: list[Operation], inputs: list[Tensor], outputs: list[Tensor | None],
          fed: set[Tensor]) -> Callable[..., tuple]:
    """`f(ctx, *input_scalars) -> tuple of output values` running `members` in order.

    `inputs` are the external tensors in argument order; `outputs` the tensors to return (None
    entries return None).
    """
    names: dict[Tensor, str] = {t: f"x{i}" for i, t in enumerate(inputs)}
    glb: dict[str, Any] = {"_op_error": op_error}
    lines = [f"def run(ctx, {', '.join(names[t] for t in inputs)}):" if inputs else "def run(ctx):"]
    for k, op in enumerate(members):
        refs = op.opdef.ref_inputs
        args = ["None" if i in refs else (names[t] if t in names else "None") for i, t in enumerate(op.inputs)]
        res = f"v{k}"
        expr = _operator_expr(op, args) if not refs else None
        if expr is not None:
            lines.append(f"    {res} = {expr}")
        else:
            glb[f"K{k}"] = op.opdef.kernel
            glb[f"OP{k}"] = op
            lines.append(f"    ins = [{', '.join(args)}]")
            lines.append("    try:")
            lines.append(f"        {res} = K{k}(ctx, OP{k}, ins)")
            lines.append("    except Exception as e:")
            lines.append(f"        raise _op_error(OP{k}, ins, e) from e")
        outs = op.outputs
        if len(outs) == 1:
            if outs[0] not in fed:
                names[outs[0]] = res
        else:
            for j, t in enumerate(outs):
                if t not in fed:
                    lines.append(f"    {res}_{j} = {res}[{j}]")
                    names[t] = f"{res}_{j}"
    rets = [names[t] if t is not None else "None" for t in outputs]
    lines.append(f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    exec(compile("\n".join(lines) + "\n", "<jitflow scalar cluster>", "exec"), glb)  # noqa: S102 - generated from op types only
    fn: Callable[..., tuple] = glb["run"]
    return fn
