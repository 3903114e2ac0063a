"""The gradient of a 2 x 2, stride-2 max pool over whole vectors of channels, ReLU's mask and the bias
gradient fused in (the backward pass of a conv + bias + ReLU + pool layer).

Each window's four input pixels are read as vectors of channels; the first maximum of the four (row-major
order, a NaN counting as the maximum: `pool.py`'s rule) is tracked by selects, the window's gradient goes to
it and zeros to the other three, and with `relu` the gradient is zero where that maximum is not > 0 (ReLU's
mask: its input there is the pool's input). The values written are summed into the bias gradient in
registers across a row of windows (`_microkernel`, LLVM IR written here). Every input element is read
once and every gradient element written once, as whole vectors; the generic kernel in `pool.py` kept the
maxima and their positions in memory per window, which took 2-3x as long on W7's first layer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from jitflow.codegen.cache.library import njit
from jitflow.kernels import read_only, threads
from jitflow.kernels.lincomb import address
from jitflow.kernels.llvm_kit import for_dtype, tap_loop, vector_kit

# The kernels compile in these modules' microkernels and helpers: their cached code must follow their edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.llvm_kit", "jitflow.kernels.lincomb")

# Channel vectors per call, at most: wider inputs run as several column groups.
MAX_VECTORS = 4  # (the variants `llvm_kit.by_width` compiles)


def _microkernel(double: bool, bits: int, vectors: int) -> Any:
    """``row(x0, x1, dy, d0, d1, ow, ch, relu, db)``, on addresses: for the windows j < ow of one output row
    (input rows x0 and x1, pixel 2j and 2j + 1 of each, pixels `ch` elements apart), the gradient dy[j * ch:]
    to each channel's first maximum in d0/d1 and zeros elsewhere; db[0:V*W] += what went in."""

    @intrinsic
    def row(typingctx, x0, x1, dy, d0, d1, ow, ch, relu, db):  # type: ignore[no-untyped-def]
        sig = types.void(*([types.int64] * 9))

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            x0_i, x1_i, dy_i, d0_i, d1_i, ow_v, ch_v, relu_v, db_i = args
            elt, vt, width, align, _ = vector_kit(builder, double, bits)
            i64 = ir.IntType(64)
            x0_p, x1_p, dy_p, d0_p, d1_p, db_p = (builder.inttoptr(v, elt.as_pointer())
                                                  for v in (x0_i, x1_i, dy_i, d0_i, d1_i, db_i))
            zero = ir.Constant(vt, [0.0] * width)
            masked = builder.icmp_signed("!=", relu_v, ir.Constant(i64, 0))
            none = ir.Constant(ir.VectorType(ir.IntType(1), width), [0] * width)

            def vec(base: Any, at: Any, v: int) -> Any:
                return builder.bitcast(builder.gep(base, [builder.add(at, ir.Constant(i64, v * width))]),
                                       vt.as_pointer())

            sums = [builder.load(vec(db_p, ir.Constant(i64, 0), v), align=align) for v in range(vectors)]

            def window(j, acc):  # type: ignore[no-untyped-def]
                left = builder.mul(builder.mul(j, ir.Constant(i64, 2)), ch_v)  # pixel 2j
                right = builder.add(left, ch_v)
                out = []
                for v in range(vectors):
                    cands = [builder.load(vec(p, at, v), align=align)
                             for p, at in ((x0_p, left), (x0_p, right), (x1_p, left), (x1_p, right))]
                    best = cands[0]
                    picks = []  # picks[k]: candidate k + 1 replaced the maximum so far
                    for cand in cands[1:]:
                        take = builder.and_(builder.fcmp_ordered("==", best, best),
                                            builder.or_(builder.fcmp_ordered(">", cand, best),
                                                        builder.fcmp_unordered("uno", cand, cand)))
                        best = builder.select(take, cand, best)
                        picks.append(take)
                    g = builder.load(vec(dy_p, builder.mul(j, ch_v), v), align=align)
                    off = builder.select(masked, builder.not_(builder.fcmp_ordered(">", best, zero)), none)
                    g = builder.select(off, zero, g)
                    out.append(builder.fadd(acc[0][v], g))
                    # candidate k is the first maximum when it was taken and no later one was
                    later = picks[2]
                    winners = [None, None, None, picks[2]]
                    for k in (1, 0):
                        winners[k + 1] = builder.and_(picks[k], builder.not_(later))
                        later = builder.or_(later, picks[k])
                    winners[0] = builder.not_(later)
                    for (p, at), won in zip(((d0_p, left), (d0_p, right), (d1_p, left), (d1_p, right)), winners):
                        builder.store(builder.select(won, g, zero), vec(p, at, v), align=align)
                return [out]

            final = tap_loop(builder, ow_v, [sums], window)
            for v in range(vectors):
                builder.store(final[0][v], vec(db_p, ir.Constant(i64, 0), v), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return row


# the microkernels by dtype, width and channel vectors: `_rows(double)`, and `_row_for(like, wide, vectors, ...)`
# (the arguments after `vectors` are `_microkernel`'s) for compiled code
_rows, _row_for = for_dtype(_microkernel, "pool_grad_row")


@njit(nogil=True, error_model="numpy")
def _parts(x, dy, relu, wide, dx, db_parts, lo, hi):  # type: ignore[no-untyped-def]
    """`max_pool_2x2_grad` for the parts p in [lo, hi): images p, p + P, ..., their bias sum in db_parts[p]."""
    size = x.itemsize
    width = (64 if wide else 32) // size
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    nvec = ch // width
    xa, ya, da, ba = address(x), address(dy), address(dx), address(db_parts)
    for p in range(lo, hi):
        db = db_parts[p]
        for c in range(ch):
            db[c] = 0
        for n in range(p, x.shape[0], db_parts.shape[0]):
            for i in range(oh):
                r0 = ((n * h + 2 * i) * w) * ch * size
                r1 = r0 + w * ch * size
                g = ((n * oh + i) * ow) * ch * size
                for g0 in range(0, nvec, MAX_VECTORS):
                    v = min(MAX_VECTORS, nvec - g0)
                    c0 = g0 * width * size
                    _row_for(x, wide, v, xa + r0 + c0, xa + r1 + c0, ya + g + c0, da + r0 + c0, da + r1 + c0, ow, ch,
                             relu, ba + (p * ch) * size + c0)


def applies(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, bits: int = 0) -> bool:
    """True for 2 x 2 windows at stride 2 over an even-sized input without padding, its channels whole
    vectors at `bits` (default the host's)."""
    from jitflow.kernels.packed_gemm import VECTOR_BITS  # (its dispatchers start Numba: not at import)

    width = (bits or VECTOR_BITS) // (8 * x.dtype.itemsize)
    return (kh, kw, sh, sw, pt, pl) == (2, 2, 2, 2, 0, 0) and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0 \
        and x.shape[3] % width == 0 and x.shape[3] > 0


def max_pool_2x2_grad(x: np.ndarray, dy: np.ndarray, relu: bool, dx: np.ndarray, db_parts: np.ndarray,
                      bits: int = 0) -> None:
    """dx = MaxPoolGrad(x, dy) for 2 x 2 windows at stride 2 (`applies`), with `relu` ReluGrad(., x) fused in;
    db_parts[p] = the sum over images p, p + P, ... of what went into dx (the bias gradient). x, dy and dx are
    C-contiguous NHWC."""
    from jitflow.kernels.packed_gemm import VECTOR_BITS

    threads.parallel_range(_parts, db_parts.shape[0], read_only(np.ascontiguousarray(x)),
                           read_only(np.ascontiguousarray(dy)), relu,
                           (bits or VECTOR_BITS) == 512, dx, db_parts)
