"""The filter gradient of a direct conv: blocks of taps x output channels held in vector registers.

For a stride-1 conv with few input channels (a network's first layer: W7's 28x28x1 -> 32, 5x5), entry
(t, o) of the filter gradient is a sum over the output pixels p of x[p + off[t]] * dy[p, o]. A block of T
taps x V vectors of output channels keeps its T x V accumulators in registers while it runs over every
output pixel of an image (`_microkernel`, LLVM IR written here): per pixel, V vector loads of dy, then for
each tap one broadcast input scalar and V fused multiply-adds. The taps are taken T at a time (the last
group padded with taps at offset 0, whose sums are dropped); wider outputs run as groups of at most
MAX_VECTORS channel vectors over the same pixels.

The input is padded as `pixel_conv` pads it (`_pad_image`: rows of WP pixels, zeros around), so tap t of
pixel (i, j) sits at (i * WP + j) * C + off[t] without bounds checks. Each pixel row runs only its OW real
pixels: no junk positions, so an inf in the input meets only real dy values (as in the GEMM path). dy is
read in place when its channels fill whole vectors; otherwise each image's dy is first copied into rows of
whole vectors, zeros after its channels.

Every thread sums a share of the images (p, p + P, ...) into its own partial gradient; the caller adds the
partials in order, so results do not depend on which thread ran which share.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from jitflow.codegen.cache.library import njit
from jitflow.kernels import pixel_conv, read_only, threads
from jitflow.kernels.lincomb import address
from jitflow.kernels.llvm_kit import for_dtype, splat, tap_loop, vector_kit

# The kernels compile in these modules' microkernels and helpers: their cached code must follow their edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.llvm_kit", "jitflow.kernels.lincomb", "jitflow.kernels.pixel_conv")

# Channel vectors per block, at most.
MAX_VECTORS = 4  # (the variants `llvm_kit.by_width` compiles)
# Taps per block for 1..MAX_VECTORS channel vectors, at 512 and 256 bits: T x V accumulators, V dy vectors
# and a broadcast within AVX-512's 32 and AVX2's 16 registers (9 taps: 5x5 windows in 3 groups, 3x3 in one).
TAPS_512 = (9, 9, 6, 5)
TAPS_256 = (9, 5, 3, 2)


def taps_per_block(vectors: int, bits: int) -> int:
    """Taps a block of `vectors` channel vectors holds at `bits`."""
    return (TAPS_512 if bits == 512 else TAPS_256)[vectors - 1]


def _microkernel(double: bool, bits: int, vectors: int) -> Any:
    """``block(x, off, xstep, xrow, dy, dystep, dyrow, npos, nrows, acc, ldacc)``, on addresses: for the T taps
    t at off[0:T] and every pixel q < npos of every row r < nrows,
    acc[t * ldacc + 0:V*W] += x[r * xrow + q * xstep + off[t]] * dy[r * dyrow + q * dystep + 0:V*W]."""
    taps = taps_per_block(vectors, bits)

    @intrinsic
    def block(typingctx, x, off, xstep, xrow, dy, dystep, dyrow, npos, nrows, acc, ldacc):  # type: ignore[no-untyped-def]
        sig = types.void(*([types.int64] * 11))

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            x_i, off_i, xstep_v, xrow_v, dy_i, dystep_v, dyrow_v, npos_v, nrows_v, acc_i, ldacc_v = args
            elt, vt, width, align, fma = vector_kit(builder, double, bits)
            i64 = ir.IntType(64)
            x_p, dy_p, acc_p = (builder.inttoptr(v, elt.as_pointer()) for v in (x_i, dy_i, acc_i))
            off_p = builder.inttoptr(off_i, i64.as_pointer())
            offs = [builder.load(builder.gep(off_p, [ir.Constant(i64, t)])) for t in range(taps)]

            def vec(base: Any, v: int) -> Any:
                return builder.bitcast(builder.gep(base, [ir.Constant(i64, v * width)]), vt.as_pointer())

            rows_acc = [builder.gep(acc_p, [builder.mul(ldacc_v, ir.Constant(i64, t))]) for t in range(taps)]
            zero = ir.Constant(vt, [0.0] * width)
            start = [[zero] * vectors for _ in range(taps)]  # (this call's own sums: fewer terms per rounding)

            def row(r, grid):  # type: ignore[no-untyped-def]
                xr = builder.gep(x_p, [builder.mul(r, xrow_v)])
                dr = builder.gep(dy_p, [builder.mul(r, dyrow_v)])

                def pixel(q, g):  # type: ignore[no-untyped-def]
                    xq = builder.gep(xr, [builder.mul(q, xstep_v)])
                    dq = builder.gep(dr, [builder.mul(q, dystep_v)])
                    dv = [builder.load(vec(dq, v), align=align) for v in range(vectors)]
                    new = []
                    for t in range(taps):
                        s = splat(builder, vt, builder.load(builder.gep(xq, [offs[t]])))
                        new.append([builder.call(fma, [s, dv[v], g[t][v]]) for v in range(vectors)])
                    return new

                return tap_loop(builder, npos_v, grid, pixel)

            final = tap_loop(builder, nrows_v, start, row)
            for t in range(taps):
                for v in range(vectors):
                    at = vec(rows_acc[t], v)
                    builder.store(builder.fadd(builder.load(at, align=align), final[t][v]), at, align=align)
            return context.get_dummy_value()

        return sig, codegen

    return block


# the microkernels by dtype, width and channel vectors: `_blocks(double)`, and `_block_for(like, wide, vectors, ...)`
# (the arguments after `vectors` are `_microkernel`'s) for compiled code
_blocks, _block_for = for_dtype(_microkernel, "filter_taps")


@njit(nogil=True, error_model="numpy")
def _image_dots(xp, n, dyn, opad, ow, oh, geo, offs, wide, acc):  # type: ignore[no-untyped-def]
    """acc[t, :] += the sums of image n's taps t against its (OH * OW, opad) output gradient `dyn`, every tap
    group of `offs` (rows of T offsets) against every group of channel vectors."""
    size = xp.itemsize
    width = (64 if wide else 32) // size
    ch = xp.shape[2] // geo[pixel_conv._WP]
    xa = address(xp) + n * xp.shape[1] * xp.shape[2] * size
    da, aa, oa = address(dyn), address(acc), address(offs)
    taps = offs.shape[1]
    nvec = opad // width
    for g0 in range(0, nvec, MAX_VECTORS):
        v = min(MAX_VECTORS, nvec - g0)
        if taps != (TAPS_512[v - 1] if wide else TAPS_256[v - 1]):
            continue  # (a group of another width: its own pass, with offsets cut to its tap count)
        for tg in range(offs.shape[0]):
            _block_for(xp, wide, v, xa, oa + tg * taps * 8, ch, xp.shape[2], da + g0 * width * size, opad,
                       ow * opad, ow, oh, aa + (tg * taps * opad + g0 * width) * size, opad)


@njit(nogil=True, error_model="numpy")
def _parts(x, dy, geo, offs, wide, opad, xp, parts, lo, hi):  # type: ignore[no-untyped-def]
    """`filter_grad`'s partial gradients p in [lo, hi): parts[p] = the sums over images p, p + P, ..."""
    oh, ow, o = dy.shape[1], dy.shape[2], dy.shape[3]
    npart = parts.shape[0]
    padded = opad != o
    dbuf = np.zeros((oh * ow if padded else 1, opad), dy.dtype)  # whole vectors of channels, zeros after o
    for p in range(lo, hi):
        acc = parts[p]
        flat = acc.reshape(-1)
        for i in range(flat.shape[0]):
            flat[i] = 0
        for n in range(p, x.shape[0], npart):
            pixel_conv._pad_image(x, n, geo[pixel_conv._PT], geo[pixel_conv._PL], xp)
            if padded:
                for i in range(oh):
                    for j in range(ow):
                        src, dst = dy[n, i, j], dbuf[i * ow + j]
                        for c in range(o):
                            dst[c] = src[c]
                _image_dots(xp, n, dbuf, opad, ow, oh, geo, offs, wide, acc)
            else:
                _image_dots(xp, n, dy[n].reshape(oh * ow, o), opad, ow, oh, geo, offs, wide, acc)


@functools.lru_cache(maxsize=256)
def _groups(g: Any, c: int, taps: int) -> np.ndarray:
    """The tap offsets of `pixel_conv`'s padded input in rows of `taps`, the last row padded with offset 0."""
    _, off = pixel_conv._geometry(g, c)
    rows = -(-off.size // taps)
    flat = np.zeros(rows * taps, np.int64)
    flat[:off.size] = off
    res = flat.reshape(rows, taps)
    res.flags.writeable = False  # shared by every call with this geometry
    return res


def filter_grad(x: np.ndarray, dy: np.ndarray, g: Any, df: np.ndarray, scratch: Any, workers: int,
                bits: int = 0) -> np.ndarray:
    """The (KH, KW, C, O) filter gradient `df` of a stride-1 conv of NHWC `x` whose output gradient is `dy`,
    on up to `workers` threads; `scratch(n, dtype)` gives the padded input's buffer; `bits`: the vector width
    (default the host's, `packed_gemm.VECTOR_BITS`)."""
    from jitflow.kernels.packed_gemm import VECTOR_BITS  # (its dispatchers start Numba: not at import)

    bits = bits or VECTOR_BITS
    width = bits // (8 * x.dtype.itemsize)
    k, o = df.shape[0] * df.shape[1] * df.shape[2], df.shape[3]
    opad = -(-o // width) * width
    nvec = opad // width
    geo, _ = pixel_conv._geometry(g, x.shape[3])
    shape = pixel_conv._padded_shape(x.shape, g)
    xp = scratch(math.prod(shape), x.dtype).reshape(shape)
    npart = max(1, min(workers, x.shape[0]))
    xr, dyr = read_only(np.ascontiguousarray(x)), read_only(np.ascontiguousarray(dy))
    # the step's own contiguous output is summed into directly; a strided `df` through a copy
    total = df.reshape(k, o) if df.flags.c_contiguous else np.empty((k, o), df.dtype)
    # Channel groups of different widths take different tap counts: one pass per distinct count.
    for taps in sorted({taps_per_block(min(MAX_VECTORS, nvec - g0), bits) for g0 in range(0, nvec, MAX_VECTORS)}):
        offs = _groups(g, x.shape[3], taps)
        parts = np.empty((npart, offs.size, opad), x.dtype)
        threads.parallel_range(_parts, npart, xr, dyr, geo, offs, bits == 512, opad, xp, parts)
        # each channel group's columns come from the pass with its tap count
        for g0 in range(0, nvec, MAX_VECTORS):
            v = min(MAX_VECTORS, nvec - g0)
            if taps_per_block(v, bits) != taps:
                continue
            c0, c1 = g0 * width, min(o, (g0 + v) * width)
            total[:, c0:c1] = parts[0, :k, c0:c1]
            for p in range(1, npart):
                total[:, c0:c1] += parts[p, :k, c0:c1]
    if not df.flags.c_contiguous:
        df[...] = total.reshape(df.shape)
    return df
