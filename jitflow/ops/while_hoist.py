"""Loop-invariant gradient sums taken out of a backward loop (compiled plans only).

The gradient of a loop-invariant tensor captured by a loop body (an RNN's weights) is the sum, over
the iterations, of that iteration's gradient. When that gradient is a `MatMul` (the weights of
``x @ W``: ``x_t^T @ dy_t``), T small GEMMs and T additions equal one GEMM over the operands of all
iterations stacked along the contraction axis::

    sum_t op_a(a_t) @ op_b(b_t) = [op_a(a_1) ... op_a(a_T)] @ [op_b(b_1); ...; op_b(b_T)]

and a `Sum` over axis 0 of a matrix (a bias: ``sum_t colsum(dy_t)``) equals the column sum of the
stacked rows. The backward loop then fetches the operands each iteration instead of the product
(`grad_fetches`), keeps them (`Stash`), and computes each sum once after the loop (`Stash.finish`):
on W8 this replaces 70 GEMMs of 400x20x800 (27 GF/s, too small for BLAS to be efficient) and their
additions by two 400x700x800 GEMMs. The result differs from the per-iteration sum only in the order of
floating-point additions. The interpreter keeps the per-iteration sum (`explain` lists what a compiled
backward loop hoisted under ``hoisted``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from jitflow.errors import InvalidArgumentError
from jitflow.framework.graph import Operation, Tensor
from jitflow.kernels.adaptive import ALL, ThreadChoice, run_with
from jitflow.kernels.threads import _SET_BLAS_LOCAL as SET_BLAS_LOCAL
from jitflow.kernels.threads import PARALLEL_MACS, blas_threads_for

_FLOATS = ("float32", "float64")
# One thread-count choice per hoisted GEMM, kept across runs as a step keeps its own.
_THREADS: weakref.WeakKeyDictionary[Operation, ThreadChoice] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Hoisted:
    """One capture gradient computed after the loop: `index` into `LoopBody.grad_outs`, and its op."""

    index: int
    op: Operation

    @property
    def operands(self) -> list[Tensor]:
        """The tensors the backward loop fetches each iteration instead of the op's output."""
        return list(self.op.inputs[:2]) if self.op.type == "MatMul" else [self.op.inputs[0]]

    def describe(self, capture: Tensor) -> dict[str, Any]:
        """The plan-report entry (for `explain`)."""
        how = "one GEMM over all iterations" if self.op.type == "MatMul" else "one column sum over all iterations"
        return {"op": self.op.name, "type": self.op.type, "capture": capture.name, "as": how}


def _is_matrix(t: Tensor) -> bool:
    dims = t.shape.as_tuple()
    return dims is not None and len(dims) == 2 and np.dtype(t.dtype.np).name in _FLOATS


def _hoistable_op(t: Tensor, inside: Any) -> bool:
    """True when `t`, one iteration's gradient of a capture, is a sum we can take over all iterations."""
    op = t.op
    if not inside(op) or op.control_inputs:
        return False
    if op.type == "MatMul":
        return all(_is_matrix(x) for x in op.inputs)
    if op.type == "Sum":
        axes = op.attrs.get("axis")
        return _is_matrix(op.inputs[0]) and axes is not None and [a % 2 for a in axes] == [0] \
            and not op.attrs.get("keep_dims")
    return False


def find_hoisted(grad_outs: list[Tensor | None], n: int, grad_ops: set[Operation]) -> list[Hoisted]:
    """The capture gradients (entries from `n` on) of `grad_outs` that `Stash` can sum after the loop.

    Only ops of the gradient sub-graph (`grad_ops`) qualify; a tensor fetched twice is left alone."""
    seen: dict[Tensor, int] = {}
    for t in grad_outs:
        if t is not None:
            seen[t] = seen.get(t, 0) + 1
    return [Hoisted(k, t.op) for k, t in enumerate(grad_outs)
            if k >= n and t is not None and seen[t] == 1 and _hoistable_op(t, grad_ops.__contains__)]


def grad_fetches(grad_outs: list[Tensor | None], hoisted: list[Hoisted]) -> tuple[list[Tensor], list[int]]:
    """(what the backward plan fetches, the `grad_outs` index of each of its leading results).

    The hoisted gradients' operands follow the plain results, in `hoisted` order."""
    skip = {h.index for h in hoisted}
    idx = [k for k, t in enumerate(grad_outs) if t is not None and k not in skip]
    fetch = [grad_outs[k] for k in idx]
    for h in hoisted:
        fetch.extend(h.operands)
    return fetch, idx  # type: ignore[return-value]


class Stash:
    """The hoisted gradients' operands of every iteration, and their sums once the loop is done."""

    def __init__(self, hoisted: list[Hoisted]) -> None:
        self.hoisted = hoisted
        self.parts: list[list[list[Any]]] = [[[] for _ in h.operands] for h in hoisted]

    def add(self, values: list[Any]) -> None:
        """Keeps one iteration's operands (`values`: the plan's results after the plain ones)."""
        i = 0
        for parts in self.parts:
            for p in parts:
                p.append(values[i])
                i += 1

    def finish(self) -> dict[int, Any]:
        """`grad_outs` index -> the sum over all iterations (none when the loop did not run)."""
        out: dict[int, Any] = {}
        for h, parts in zip(self.hoisted, self.parts):
            if parts[0]:
                out[h.index] = _matmul_sum(h.op, *parts) if h.op.type == "MatMul" else _colsum(h.op, parts[0])
        return out


def _matrices(op: Operation, xs: list[Any]) -> list[np.ndarray]:
    dt = np.dtype(op.outputs[0].dtype.np)
    arrs = [np.asarray(x) for x in xs]
    for a in arrs:
        if a.ndim != 2 or a.dtype != dt:
            raise InvalidArgumentError(op.node_def, op, f"{op.type} '{op.name}' expects {dt.name} matrices, got "
                                                        f"{a.dtype.name} of shape {list(a.shape)}")
    return arrs


def _matmul_sum(op: Operation, a_parts: list[Any], b_parts: list[Any]) -> np.ndarray:
    """sum_t op_a(a_t) @ op_b(b_t) as one GEMM over operands stacked along the contraction axis."""
    ta, tb = bool(op.attrs.get("transpose_a")), bool(op.attrs.get("transpose_b"))
    a_list, b_list = _matrices(op, a_parts), _matrices(op, b_parts)
    for a, b in zip(a_list, b_list):  # the check each iteration's MatMul would have made
        ka, kb = a.shape[0 if ta else 1], b.shape[1 if tb else 0]
        if ka != kb:
            raise InvalidArgumentError(op.node_def, op, "Matrix size-incompatible: In[0]: "
                                                        f"{list(a.T.shape if ta else a.shape)}, In[1]: "
                                                        f"{list(b.T.shape if tb else b.shape)}")
    a_all = a_list[0] if len(a_list) == 1 else np.concatenate(a_list, axis=0 if ta else 1)  # (one: pre-stacked)
    b_all = b_list[0] if len(b_list) == 1 else np.concatenate(b_list, axis=1 if tb else 0)
    a_op = a_all.T if ta else a_all
    b_op = b_all.T if tb else b_all
    macs = a_op.shape[0] * a_op.shape[1] * b_op.shape[1]
    if macs < PARALLEL_MACS:
        with blas_threads_for(macs):
            return np.matmul(a_op, b_op)
    choice = _THREADS.get(op)
    if choice is None:
        choice = _THREADS[op] = ThreadChoice(ALL)
    return run_with(choice, macs, SET_BLAS_LOCAL, np.matmul, a_op, b_op)  # the load decides (adaptive.py)


def _colsum(op: Operation, parts: list[Any]) -> np.ndarray:
    """sum_t Sum(x_t, axis=0) as the column sum of the stacked rows."""
    xs = _matrices(op, parts)
    if len({x.shape[1] for x in xs}) != 1:
        raise InvalidArgumentError(op.node_def, op, f"The gradient '{op.name}' changes shape across iterations: "
                                                    f"{sorted({x.shape for x in xs})}")
    return np.add.reduce(xs[0] if len(xs) == 1 else np.concatenate(xs, axis=0), axis=0)
