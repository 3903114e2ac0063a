"""The one-element path: a cluster whose iteration space has a single element, in plain Python.

A Numba call costs a microsecond or more before any work; on one element (the scalars of W1 and W3)
NumPy's scalar arithmetic costs tens of nanoseconds. `generate` turns a cluster into a Python function
over NumPy scalars using the expressions of the CPU kernels (rendered from the ops' formulas by
`codegen/lowering.py`), with the formulas' functions (exp, tanh, pow, ...) computed as the interpreter
computes them (`cpu.NUMPY_SCALAR`: NumPy's, not the kernels' vectorizable vmath, which would start Numba
in programs that otherwise never need it): each node is one statement, a reduction over one element is
``finish(combine(init, v))``. A failed check (integer division by zero,
...) raises `CheckFailed` and the caller re-runs the cluster interpreted, which reports the op's error.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow.codegen import lowering as L
from jitflow.ir import expr
from jitflow.ir.cluster import REDUCTION, Cluster


class CheckFailed(Exception):
    """A node's check failed: the cluster must run interpreted to raise the op's error."""


def generate(c: Cluster) -> str:
    """Source of ``run(x0, ..., xn) -> (output values...)`` on NumPy scalars."""
    from jitflow.codegen.cpu import NUMPY_SCALAR

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
            rule = L.reduction(node.op_type)
            in_dt = c.value_dtype(src)
            acc_dt = rule.acc_dtype(in_dt)
            acc = L.cast(rule.combine.format(acc=rule.init(acc_dt), v=L.cast(names[src], acc_dt)), acc_dt)
            lines.append(f"    v{k} = {L.finish_code(rule, acc, '1', in_dt, node.dtype)}")
            continue
        e = L.node_expr(c, k, names, NUMPY_SCALAR)
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
    glb: dict[str, Any] = {"np": np, "F": expr.FUNCTIONS, "CheckFailed": CheckFailed}
    # generated from op types and dtypes only (no user data), like the Numba kernels
    exec(compile(generate(c), "<jitflow one-element cluster>", "exec"), glb)  # noqa: S102
    fn: Callable[..., tuple] = glb["run"]
    return fn


def step_source(c: Cluster, in_slots: list[int], shapes: tuple, out_slots: list[int],
                out_shapes: list[tuple[int, ...]], need_array: list[bool]) -> str:
    """Source of ``step(ctx, vals) -> bool``: the whole one-element step for exactly these input shapes.

    It reads its inputs from the slots (variables from ``ctx.variables``), checks type, dtype and shape
    of each, computes the nodes, and writes the outputs; it returns False, having written nothing,
    when an input is not as expected or a check fails (the caller then takes the general path).
    """
    from jitflow.codegen.cpu import NUMPY_SCALAR

    nin = c.n_inputs
    names = [f"x{i}" for i in range(nin)] + [f"v{k}" for k in range(len(c.nodes))]
    lines = ["def step(ctx, vals):"]
    if any(i.var is not None for i in c.inputs) or any(o.var is not None for o in c.outputs):
        lines.append("    variables = ctx.variables")
    for i, inp in enumerate(c.inputs):
        src = f"variables.get({inp.var!r})" if inp.var is not None else f"vals[{in_slots[i]}]"
        shp = tuple(shapes[i])
        lines.append(f"    a{i} = {src}")
        lines.append(f"    t = type(a{i})")
        index = "()" if not shp else ", ".join("0" for _ in shp)
        if not shp:
            lines.append(f"    if t is S{i}:")
            lines.append(f"        x{i} = a{i}")
            lines.append(f"    elif t is ndarray and a{i}.shape == () and a{i}.dtype is D{i}:")
        else:
            lines.append(f"    if t is ndarray and a{i}.shape == {shp!r} and a{i}.dtype is D{i}:")
        lines.append(f"        x{i} = a{i}[{index}]")
        lines.append("    else:")
        lines.append("        return False")
    red = c.reduction() if c.kind == REDUCTION else None
    for k, node in enumerate(c.nodes):
        if red is not None and k == len(c.nodes) - 1:
            src_v = node.args[0]
            if c.value_dtype(src_v) != node.dtype:
                return ""  # a converting one-element reduction: the general path handles it
            lines.append(f"    v{k} = {names[src_v]}")
            continue
        e = L.node_expr(c, k, names, NUMPY_SCALAR)
        for chk in e.checks:
            lines.append(f"    if {chk}:")
            lines.append("        return False")
        lines.append(f"    v{k} = {_drop_outer_cast(c, k, e.code)}")
    for j, o in enumerate(c.outputs):
        v = f"v{o.node}"
        shape = out_shapes[j]
        if o.var is not None or shape or need_array[j]:
            # one element: nested brackets give the (1, ..., 1) shape in one call
            lines.append(f"    {v} = np.array({'[' * len(shape)}{v}{']' * len(shape)}, O{j})")
        if o.var is not None:
            lines.append(f"    {v}.flags.writeable = False")
            lines.append(f"    variables[{o.var!r}] = {v}")
        if out_slots[j] >= 0:
            lines.append(f"    vals[{out_slots[j]}] = {v}")
    lines.append("    return True")
    return "\n".join(lines) + "\n"


def build_step(c: Cluster, in_slots: list[int], shapes: tuple, out_slots: list[int],
               out_shapes: list[tuple[int, ...]], need_array: list[bool]) -> Callable[..., bool] | None:
    """The compiled `step_source` function, or None when this cluster has no such fast step."""
    src = step_source(c, in_slots, shapes, out_slots, out_shapes, need_array)
    if not src:
        return None
    glb: dict[str, Any] = {"np": np, "F": expr.FUNCTIONS, "ndarray": np.ndarray}
    for i, inp in enumerate(c.inputs):
        dt = np.dtype(inp.dtype)
        glb[f"D{i}"] = dt
        glb[f"S{i}"] = dt.type
    for j, o in enumerate(c.outputs):
        glb[f"O{j}"] = np.dtype(c.nodes[o.node].dtype)
    # generated from op types, dtypes, shapes and slot numbers only (no user data)
    exec(compile(src, "<jitflow one-element step>", "exec"), glb)  # noqa: S102
    fn: Callable[..., bool] = glb["step"]
    return fn
