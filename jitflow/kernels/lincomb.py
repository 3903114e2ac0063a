"""Linear combinations of strided rows: ``dst[o] = sum over t < k of c[o, t] * src[t]`` for a few outputs o, each
row a contiguous run of n elements.

Winograd's transforms are made of these: the input transform combines 8 input rows into 8 transformed
rows, the output transform 8 into 4, each with a small constant matrix. Written as one multiply-add pass
per (output, tap) over the row (`axpy`), every pass loads and stores its output row again: two loads and a
store per multiply-add, three times what the multiply-adds themselves take (W7i's second conv spent 31 + 32
us in its two transforms). Here a block of up to 4 outputs x 2 vectors of columns stays in registers
through all the taps (`_microkernel`, LLVM IR written here), reading each source vector once for all the
block's outputs and writing each output once.

Coefficients are used as given, zeros included: a zero times a finite value adds nothing (not even the
sign of a zero, as the sums start from +0), and Winograd runs only on finite inputs (`winograd.safe`).
Sums run over the taps in order, with fused multiply-adds, whichever thread computes a row.
"""
from __future__ import annotations

import functools
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from jitflow.codegen.cache.library import njit
from jitflow.kernels.llvm_kit import njit_named, pointer_to, splat, tap_loop, vector_kit

# The kernels that call these compile them in: their cached code must follow this module's edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.llvm_kit",)

# Outputs per block, at most: 4 outputs x 2 vectors of accumulators, the source vectors and a broadcast fit
# in AVX2's 16 registers.
OUTPUTS = 4


def _microkernel(double: bool, bits: int, outputs: int, vectors: int) -> Any:
    """``block(dst, dstride, src, sstride, c, cstride, k)`` on addresses (strides in elements): for o < outputs,
    dst[o * dstride + 0:V*W] = sum over t < k of c[o * cstride + t] * src[t * sstride + 0:V*W]."""

    @intrinsic
    def block(typingctx, dst, dstride, src, sstride, c, cstride, k):  # type: ignore[no-untyped-def]
        sig = types.void(*([types.int64] * 7))

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            dst_i, dstride_v, src_i, sstride_v, c_i, cstride_v, k_v = args
            elt, vt, width, align, fma = vector_kit(builder, double, bits)
            i64 = ir.IntType(64)
            dst_p, src_p, c_p = (builder.inttoptr(v, elt.as_pointer()) for v in (dst_i, src_i, c_i))
            rows = [builder.gep(c_p, [builder.mul(cstride_v, ir.Constant(i64, o))]) for o in range(outputs)]
            zero = ir.Constant(vt, [0.0] * width)

            def step(t, accs):  # type: ignore[no-untyped-def]
                srow = builder.gep(src_p, [builder.mul(t, sstride_v)])
                sv = [builder.load(builder.bitcast(builder.gep(srow, [ir.Constant(i64, v * width)]),
                                                   vt.as_pointer()), align=align) for v in range(vectors)]
                return [[builder.call(fma, [splat(builder, vt, builder.load(builder.gep(rows[o], [t]))), sv[v],
                                            accs[o][v]]) for v in range(vectors)] for o in range(outputs)]

            final = tap_loop(builder, k_v, [[zero] * vectors for _ in range(outputs)], step)
            for o in range(outputs):
                out = builder.gep(dst_p, [builder.mul(dstride_v, ir.Constant(i64, o))])
                for v in range(vectors):
                    builder.store(final[o][v], builder.bitcast(builder.gep(out, [ir.Constant(i64, v * width)]),
                                                               vt.as_pointer()), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return block


def _blocks(double: bool) -> Any:
    """``block(wide, outs, vecs, dst, dstride, src, sstride, c, cstride, k)``: the microkernel for `outs` (1, 2
    or 4) outputs and `vecs` (1 or 2) vectors, at 512 bits when `wide` (else 256)."""
    kernels = {(bits, o, v): _microkernel(double, bits, o, v) for bits in (512, 256) for o in (1, 2, 4)
               for v in (1, 2)}
    w11, w12, w21, w22, w41, w42 = (kernels[512, o, v] for o in (1, 2, 4) for v in (1, 2))
    n11, n12, n21, n22, n41, n42 = (kernels[256, o, v] for o in (1, 2, 4) for v in (1, 2))

    def block(wide, outs, vecs, dst, dstride, src, sstride, c, cstride, k):  # type: ignore[no-untyped-def]
        a = (dst, dstride, src, sstride, c, cstride, k)
        if wide:
            if outs == 4:
                if vecs == 2:
                    w42(*a)
                else:
                    w41(*a)
            elif outs == 2:
                if vecs == 2:
                    w22(*a)
                else:
                    w21(*a)
            elif vecs == 2:
                w12(*a)
            else:
                w11(*a)
        elif outs == 4:
            if vecs == 2:
                n42(*a)
            else:
                n41(*a)
        elif outs == 2:
            if vecs == 2:
                n22(*a)
            else:
                n21(*a)
        elif vecs == 2:
            n12(*a)
        else:
            n11(*a)

    return njit_named(block, f"lincomb_block{64 if double else 32}")


@functools.cache
def _rows(double: bool) -> Any:
    """``rows(wide, dst, dstride, src, sstride, c, cstride, k, n, outputs)``, on addresses (k >= 1): for o < outputs,
    dst[o * dstride + 0:n] = sum over t < k of c[o * cstride + t] * src[t * sstride + 0:n] (512-bit vectors
    when `wide`, else 256), blocks of up to OUTPUTS outputs at a time, the columns past the last whole vector
    one at a time."""
    size = 8 if double else 4
    block = _blocks(double)
    as_pointer = pointer_to(types.float64 if double else types.float32)

    def rows(wide, dst, dstride, src, sstride, c, cstride, k, n, outputs):  # type: ignore[no-untyped-def]
        width = (64 if wide else 32) // size
        o = 0
        while o < outputs:
            outs = 4 if outputs - o >= 4 else (2 if outputs - o >= 2 else 1)
            d, co = dst + o * dstride * size, c + o * cstride * size
            j = 0
            while j + 2 * width <= n:
                block(wide, outs, 2, d + j * size, dstride, src + j * size, sstride, co, cstride, k)
                j += 2 * width
            if j + width <= n:
                block(wide, outs, 1, d + j * size, dstride, src + j * size, sstride, co, cstride, k)
                j += width
            for jj in range(j, n):  # the columns past the last whole vector (k >= 1)
                for oo in range(outs):
                    cs = numba.carray(as_pointer(co + oo * cstride * size), (k,))
                    acc = cs[0] * numba.carray(as_pointer(src + jj * size), (1,))[0]
                    for t in range(1, k):
                        acc += cs[t] * numba.carray(as_pointer(src + (t * sstride + jj) * size), (1,))[0]
                    numba.carray(as_pointer(d + (oo * dstride + jj) * size), (1,))[0] = acc
            o += outs

    return njit_named(rows, f"lincomb_rows{8 * size}")


@njit(nogil=True)
def address(a):  # type: ignore[no-untyped-def]
    """The address of array `a`'s data as an int64 (uintp plus int64 would be a float in Numba)."""
    return numba.int64(a.ctypes.data)


def lincomb(like, wide, dst, dstride, src, sstride, c, cstride, k, n, outputs):  # type: ignore[no-untyped-def]
    """`_rows` for the dtype of array `like` (picked as Numba compiles the caller: one dtype's kernels)."""
    raise NotImplementedError("called only from Numba-compiled code")


@overload(lincomb, jit_options={"nogil": True})
def _lincomb_dtype(like, wide, dst, dstride, src, sstride, c, cstride, k, n, outputs):  # type: ignore[no-untyped-def]
    run = _rows(like.dtype == types.float64)  # (made here, as a caller compiles: no dispatcher at import)

    def impl(like, wide, dst, dstride, src, sstride, c, cstride, k, n, outputs):  # type: ignore[no-untyped-def]
        run(wide, dst, dstride, src, sstride, c, cstride, k, n, outputs)

    return impl
