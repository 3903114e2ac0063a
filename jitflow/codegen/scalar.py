"""The one-element path: a cluster whose iteration space has a single element, in plain Python.

A Numba call costs a microsecond or more before any work; on one element (the scalars of W1 and W3)
NumPy's scalar arithmetic costs tens of nanoseconds. `generate` turns a cluster into a Python function
over NumPy scalars using the very expression templates of the kernels (`codegen/lowering.py`), so its
results are the compiled kernel's: each node is one statement, a reduction over one element is
``finish(combine(init, v))``. A failed check (integer division by zero, ...) raises `CheckFailed`
and the caller re-runs the cluster interpreted, which reports the op's error.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow.codegen import lowering as L
from jitflow.codegen import vmath
from jitflow.compiler.cluster import REDUCTION, Cluster


class CheckFailed(Exception):
    """A node's check failed: the cluster must run interpreted to raise the op's error."""


def generate(c: Cluster) -> str:
    """Source of ``run(x0, ..., xn) -> (output values...)`` on NumPy scalars."""
    from jitflow.codegen.cpu import node_expr

    nin = c.n_inputs
    names = [f"x{i}" for i in range(nin)] + [f"v{k}" for k in range(len(c.nodes))]
    lines = [f"def run({', '.join(names[:nin])}):"]
    red = c.reduction() if c.kind == REDUCTION else None
    last = len(c.nodes) - 1
    for k, node in enumerate(c.nodes):
        if red is not None and k == last:
            src = node.args[0]
            if c.value_dtype(src) == node.dtype:
                # one element: sum, mean, prod, max, min, all, any of it are the element itself
                lines.append(f"    v{k} = {names[src]}")
                continue
            rule = L.REDUCTIONS[node.op_type]
            in_dt = c.value_dtype(src)
            acc_dt = rule.acc_dtype(in_dt)
            acc = L.cast(rule.combine.format(acc=rule.init(acc_dt), v=L.cast(names[src], acc_dt)), acc_dt)
            lines.append(f"    v{k} = {L.finish_code(rule, acc, '1', in_dt, node.dtype)}")
            continue
        e = node_expr(c, k, names)
        for chk in e.checks:
            lines.append(f"    if {chk}:")
            lines.append("        raise CheckFailed()")
        lines.append(f"    v{k} = {_drop_outer_cast(c, k, e.code)}")
    outs = [f"v{o.node}" for o in c.outputs]
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    return "\n".join(lines) + "\n"


# Ops whose NumPy-scalar evaluation already has the operands' dtype (numpy scalar arithmetic on equal
# dtypes stays in that dtype; selects return an operand), so the outer cast of the template is a no-op.
_PRESERVING = frozenset({"AddV2", "Add", "Sub", "Mul", "RealDiv", "Neg", "Abs", "Square", "Maximum",
                         "Minimum", "SquaredDifference", "Select", "SelectV2", "BiasAdd", "Relu", "ReluGrad"})


def _drop_outer_cast(c: Cluster, k: int, code: str) -> str:
    """`code` without its outer ``np.<dtype>(...)`` when that cast cannot change the value's dtype."""
    node = c.nodes[k]
    prefix = f"np.{node.dtype}("
    if (node.op_type in _PRESERVING and node.dtype in L.FLOAT and code.startswith(prefix)
            and all(c.value_dtype(a) == node.dtype for a in node.args[-2:])):
        return code[len(prefix):-1]
    return code


def build(c: Cluster) -> Callable[..., tuple]:
    """The compiled Python function of `generate(c)`."""
    glb: dict[str, Any] = {"np": np, "V": vmath, "CheckFailed": CheckFailed}
    # generated from op types and dtypes only (no user data), like the Numba kernels
    exec(compile(generate(c), "<jitflow one-element cluster>", "exec"), glb)  # noqa: S102
    fn: Callable[..., tuple] = glb["run"]
    return fn
