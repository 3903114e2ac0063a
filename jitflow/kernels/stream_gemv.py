"""Vector-matrix products streamed over the matrix's rows: ``y[0:n] = x[k0:k1] @ B[k0:k1, 0:n]``.

A batch-1 dense layer (W7i's 1 x 3136 x 1024) reads 12.8 MB of weights for 3.2 M multiply-adds: it is
bound by how fast one core streams memory, so two cores must each stream their own part. Splitting the
columns gives each thread a short run of every row (1 KB in 4 KB rows, a page each: measured 170 us per
half on one core, as slow as the whole); splitting the rows gives each thread whole contiguous rows, and
each a partial sum of the full width that the caller adds up in a fixed order (`packed_gemm.gemv`). Per
block of rows, `block` runs `_rows` over 4 rows at a time: y = ((y + x0 B0) + x1 B1) + ... in vector
registers along the row, one load and store of y per 4 rows (LLVM IR written here: Numba's own loop kept
y in memory per row and ran scalar, 660 us). Measured on the 2-core AVX-512 host: one half of the rows
78 us, both halves on two threads 82 us, against OpenBLAS's 170 us on one thread and 106 us on two.

Every output is the same sum in the same order of rows within a block, whichever thread computes it.
Imports nothing from jitflow but `llvm_kit`: `packed_gemm` (which generated loops import) compiles it in.
"""
from __future__ import annotations

from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from jitflow.kernels.llvm_kit import njit_named, pointer_to, splat, vector_kit

# Rows of B per pass along y: four row streams plus y's own stay within the prefetchers' reach.
UNROLL = 4


def _rows(double: bool, bits: int, unroll: int) -> Any:
    """``rows(x, b, ldb, y, n, first)``: ``y[0:n] (=, when first, else +=) sum over u < unroll of x[u] *
    B[u * ldb + 0:n]``, on addresses (n a multiple of the vector width, strides in elements)."""

    @intrinsic
    def rows(typingctx, x, b, ldb, y, n, first):  # type: ignore[no-untyped-def]
        sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            x_i, b_i, ldb_v, y_i, n_v, first_v = args
            elt, vt, width, align, fma = vector_kit(builder, double, bits)
            i64 = ir.IntType(64)
            x_p, b_p, y_p = (builder.inttoptr(v, elt.as_pointer()) for v in (x_i, b_i, y_i))
            splats, starts = [], []
            for u in range(unroll):
                splats.append(splat(builder, vt, builder.load(builder.gep(x_p, [ir.Constant(i64, u)]))))
                starts.append(builder.gep(b_p, [builder.mul(ldb_v, ir.Constant(i64, u))]))
            overwrite = builder.icmp_signed("!=", first_v, ir.Constant(i64, 0))
            pre = builder.block
            loop = builder.append_basic_block("rows_loop")
            done = builder.append_basic_block("rows_done")
            builder.cbranch(builder.icmp_signed(">", n_v, ir.Constant(i64, 0)), loop, done)
            builder.position_at_end(loop)
            j = builder.phi(i64)
            j.add_incoming(ir.Constant(i64, 0), pre)
            yp = builder.bitcast(builder.gep(y_p, [j]), vt.as_pointer())
            acc = builder.select(overwrite, ir.Constant(vt, [0.0] * width), builder.load(yp, align=align))
            for u in range(unroll):
                bv = builder.load(builder.bitcast(builder.gep(starts[u], [j]), vt.as_pointer()), align=align)
                acc = builder.call(fma, [splats[u], bv, acc])
            builder.store(acc, yp, align=align)
            nxt = builder.add(j, ir.Constant(i64, width))
            j.add_incoming(nxt, builder.block)
            builder.cbranch(builder.icmp_signed("<", nxt, n_v), loop, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return sig, codegen

    return rows


def _by_width(double: bool, scalar: Any) -> Any:
    """``block(x, b, ldb, y, n, k, wide)``: y[0:n] = x[0:k] @ B[0:k, 0:n] on addresses (k >= 1), with 512-bit
    vectors when `wide` (else 256); the columns past the last whole vector through `scalar`."""
    many = {bits: _rows(double, bits, UNROLL) for bits in (512, 256)}
    one = {bits: _rows(double, bits, 1) for bits in (512, 256)}
    many512, many256, one512, one256 = many[512], many[256], one[512], one[256]
    size = 8 if double else 4

    def block(x, b, ldb, y, n, k, wide):  # type: ignore[no-untyped-def]
        width = (512 if wide else 256) // (8 * size)
        nv = n - n % width
        kk = 0
        while kk + UNROLL <= k:
            if wide:
                many512(x + kk * size, b + kk * ldb * size, ldb, y, nv, kk == 0)
            else:
                many256(x + kk * size, b + kk * ldb * size, ldb, y, nv, kk == 0)
            kk += UNROLL
        while kk < k:
            if wide:
                one512(x + kk * size, b + kk * ldb * size, ldb, y, nv, kk == 0)
            else:
                one256(x + kk * size, b + kk * ldb * size, ldb, y, nv, kk == 0)
            kk += 1
        if nv < n:
            scalar(x, b + nv * size, ldb, y + nv * size, n - nv, k)

    return njit_named(block, f"gemv_block{8 * size}")


def _scalar(dtype: Any) -> Any:
    as_pointer = pointer_to(dtype)

    def scalar(x, b, ldb, y, w, k):  # type: ignore[no-untyped-def]
        """y[0:w] = x[0:k] @ B[0:k, 0:w] one column at a time, rows in order."""
        xs = numba.carray(as_pointer(x), (k,))
        ys = numba.carray(as_pointer(y), (w,))
        bs = numba.carray(as_pointer(b), ((k - 1) * ldb + w,))
        for j in range(w):
            s = xs[0] * bs[j]
            for kk in range(1, k):
                s += xs[kk] * bs[kk * ldb + j]
            ys[j] = s

    return njit_named(scalar, f"gemv_scalar_{dtype}")


block32, block64 = _by_width(False, _scalar(types.float32)), _by_width(True, _scalar(types.float64))
