"""A classifier's cross-entropy gradient in one pass: the backward ``Mul`` (and the logits bias's gradient)
computed from the forward pass's exponentials, instead of its gradient stored and read back twice.

``tf.gradients`` of ``sparse_softmax_cross_entropy_with_logits`` scales the op's second output, the
gradient ``softmax - onehot(label)``, row by row: ``Mul(ExpandDims(g, -1), backprop)``; a dense layer's
logits bias then takes the column sums of that product (``UnbroadcastTo``, ``Sum`` over axis 0 or
``BiasAddGrad``). Run as written, the forward pass writes the whole ``[n, k]`` gradient, the ``Mul``
reads and writes it again and the bias gradient reads it once more: for W8's 700 x 10,000 logits, four
28 MB passes. `find_xent_grads` finds that chain where nothing else reads the gradient or the product
is fed; the cross-entropy step then computes the loss, the exponentials and their sum per row, and
`XentGradStep`, at the ``Mul``'s place, turns the exponentials into the product in place, with the bias
gradient in the same pass: two passes that each read and write the logits' size once. Each value is
computed with the reference kernels' formulas and roundings, so the product is bit for bit the unfused
one; the column sums add per chunk of rows, then the chunks in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jitflow.compiler.arena import Arena
from jitflow.compiler.placement import requested_gpu
from jitflow.compiler.step import ARENA_SLOT, CPU, Chain, Step, value_slots
from jitflow.compiler.steps import DEFERRED, _row_kernel, _run_rows
from jitflow.framework.graph import Operation, Tensor
from jitflow.kernels.adaptive import ALL, ThreadChoice

# Chunks of rows whose column sums add up separately (fixed, so results do not depend on thread counts).
CHUNKS = 16


@dataclass(frozen=True)
class XentGrad:
    """The backward chain of one cross-entropy op (`find_xent_grads`)."""

    xent: Operation
    mul: Operation  # Mul(row gradient [n, 1], backprop [n, k]) in either order
    scale: Tensor  # the [n, 1] row gradient
    colsum: Operation | None  # the product's column sums (the logits bias's gradient), if fused


def find_xent_grads(ops: list[Operation], readers: dict[Tensor, set[Operation]], fetched: set[Tensor],
                    fed: set[Tensor], row_kernel: Any) -> dict[Operation, XentGrad]:
    """Cross-entropy op -> its backward chain, where it can run as one step (see the module doc).

    `row_kernel(op)` is True when the cross-entropy op itself runs as a row kernel.
    """
    controls = {c for op in ops for c in op.control_inputs}
    found: dict[Operation, XentGrad] = {}
    for op in ops:
        if op.type != "SparseSoftmaxCrossEntropyWithLogits" or not row_kernel(op):
            continue
        bp = op.outputs[1]
        mul = next(iter(readers.get(bp, ())), None)
        if mul is None or readers[bp] != {mul} or bp in fetched or bp in fed or mul.type != "Mul" \
                or mul in controls or mul.control_inputs or mul.outputs[0] in fed or requested_gpu(mul) is not None:
            continue
        a, b = mul.inputs
        scale = b if a is bp else a
        shape = scale.shape.as_tuple()
        if scale is bp or shape is None or len(shape) != 2 or shape[1] != 1 or scale.dtype != bp.dtype:
            continue
        found[op] = XentGrad(op, mul, scale, _column_sum(mul.outputs[0], readers, controls, fed))
    return found


def _column_sum(t: Tensor, readers: dict[Tensor, set[Operation]], controls: set, fed: set) -> Operation | None:
    """The op that sums [n, k] `t` over its rows into [k] (a bias gradient), if one reads it."""
    k = t.shape.as_tuple()
    for r in sorted(readers.get(t, ()), key=lambda o: o.name):
        out = r.outputs[0] if r.outputs else None
        if out is None or r in controls or r.control_inputs or out in fed or r.inputs[0] is not t \
                or requested_gpu(r) is not None or k is None or len(k) != 2 or out.shape.as_tuple() != k[1:]:
            continue
        if r.type == "UnbroadcastTo" or (r.type == "BiasAddGrad" and r.attrs.get("data_format", "NHWC") == "NHWC"):
            return r
        if r.type == "Sum" and tuple(r.attrs.get("axis") or ()) in ((0,), (-2,)) and not r.attrs.get("keep_dims"):
            return r
    return None


class XentGradStep:
    """The product ``scale * backprop`` (and its column sums) of an `XentGrad`, from the logits; when the
    cross-entropy step ran interpreted (it stored the gradient), its ops run as they would have."""

    kind = "xent_grad"
    backend = CPU
    stateful = False

    def __init__(self, forward: Any, pattern: XentGrad, slots: dict[Tensor, int], op_steps: dict[Operation, Step],
                 report: dict[str, Any]) -> None:
        self.fwd = forward  # the SparseXentStep, in its split form
        self.bp_slot = slots[pattern.xent.outputs[1]]
        self.scale_slot = slots[pattern.scale]
        self.out_slot = slots[pattern.mul.outputs[0]]
        red = pattern.colsum
        self.sum_slot = slots[red.outputs[0]] if red is not None else -1
        members = [pattern.mul] + ([red] if red is not None else [])
        self.fallback = Chain([op_steps[m] for m in members])
        self.ops = tuple(members)
        self.reads = value_slots([forward.sf, forward.sb, forward.sl, self.scale_slot, self.bp_slot])
        self.writes = value_slots([self.out_slot, self.sum_slot])
        self.report = report
        self.key = id(self)
        self.kernel: Any = None
        self.threads = ThreadChoice(ALL)

    def _compile(self) -> Any:
        from jitflow.codegen import rows

        colsum = self.sum_slot >= 0
        src = rows.xent_grad_source(self.fwd.dtype.name, self.fwd.ldtype.name, colsum)
        parts = {"rows": "xent_grad", "dtype": self.fwd.dtype.name, "labels": self.fwd.ldtype.name,
                 "version": rows.ROWS_VERSION, "colsum": colsum}
        return _row_kernel(src, parts, self.ops[0], self.report)

    def __call__(self, ctx: Any, vals: list) -> None:
        if vals[self.bp_slot] is not DEFERRED:
            return self.fallback(ctx, vals)  # the cross-entropy ran interpreted: its gradient is stored
        fwd = self.fwd
        f, lab, g = vals[fwd.sf], vals[fwd.sl], vals[self.scale_slot]
        n, k = f.shape
        if type(g) is not np.ndarray or g.shape != (n, 1) or g.dtype != fwd.dtype:
            return self._unfused(ctx, vals)  # Mul broadcasts another way, or raises its error
        arena: Arena = vals[ARENA_SLOT]
        sums = fwd.sums(arena, n)
        if self.kernel is None:
            self.kernel = self._compile()
        exps = fwd.exps(arena, n * k)  # the product overwrites the exponentials
        nch = max(1, min(n, CHUNKS))
        # (both results are arena buffers: a fetched one is copied for the caller, as every arena value is)
        colsum = arena.buffer((self.key, 1), k, fwd.dtype) if self.sum_slot >= 0 else exps[:0]
        parts = arena.buffer((self.key, 2), nch * k if self.sum_slot >= 0 else 0, np.dtype(np.float64))
        err = arena.buffer((self.key, -1), 1, np.dtype(np.int64))
        err[0] = 0
        ll = lab if lab.flags.c_contiguous else np.ascontiguousarray(lab)
        gl = g.reshape(-1) if g.flags.c_contiguous else np.ascontiguousarray(g).reshape(-1)
        _run_rows(self.threads, n * k, self.kernel, exps, ll, sums, gl, parts, colsum,
                  np.array((n, k, nch), np.int64), err)
        if err[0]:
            return self._unfused(ctx, vals)
        vals[self.out_slot] = exps.reshape(n, k)
        if self.sum_slot >= 0:
            vals[self.sum_slot] = colsum
        return None

    def _unfused(self, ctx: Any, vals: list) -> None:
        """The cross-entropy op again, interpreted (it stores its gradient), then this step's ops."""
        self.fwd.fallback(ctx, vals)
        self.fallback(ctx, vals)
