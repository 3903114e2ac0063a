"""Direct convolution over blocks of output pixels, the output channels held in vector registers.

For a conv with few input channels (a network's first layer: W7's 28x28x1 -> 32, 5x5) every tap of a
window is one input scalar times a row of the filter: a broadcast multiply-add into a vector of output
channels. A block of P consecutive output pixels keeps its P x V accumulator vectors (V vectors of
channels) in registers through all the taps (`_microkernel`, LLVM IR written here), reads each filter row
once per block and each input value once per tap, and writes each pixel's channels once, with ReLU
applied. The filter's channels are padded with zeros to whole vectors.

The input is first copied into a zero-padded NHWC image (`_pad_image`), rows of WP = OW + (KW - 1) * DW
pixels. With stride 1, output pixel (i, j) reads its window from position i * WP + j on: a block of
pixels runs along these positions, over the junk positions j >= OW at a row's end and on into the next
row (`_conv_rows`, ROWS output rows per pass into a small buffer). The padding leaves room below for the
last block's overrun, so the kernel needs no bounds checks. Each pass's rows are then copied out, or
pooled 2 x 2 on the spot when a pool follows the conv (`_pool_rows`).

Sums run in tap order (row, column, channel of the window) from the bias, with fused multiply-adds: the
same order whichever block or thread computes a pixel. Measured on the 2-core AVX-512 host, batch 1 of
W7's first layer with its pool: 16 us, against 37 + 3 for the planar kernel this replaced and the pool.
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
from jitflow.kernels import read_only, threads
from jitflow.kernels.lincomb import address
from jitflow.kernels.llvm_kit import for_dtype, splat, tap_loop, vector_kit

# The kernels compile in this module's microkernels' helpers: their cached code must follow its edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.llvm_kit", "jitflow.kernels.lincomb")

# Accumulator vectors per block, at most, at 512 and 256 bits (of AVX-512's 32 and AVX2's 16 registers: a
# block's filter vectors and the broadcast take the rest).
ACC_512, ACC_256 = 24, 12
# Channel vectors per block, at most: wider outputs run as several column groups over the same pixels.
MAX_VECTORS = 4  # (the variants `llvm_kit.by_width` compiles)


def pixels_per_block(vectors: int, bits: int) -> int:
    """Output pixels per microkernel block for `vectors` channel vectors at `bits`."""
    return max(1, (ACC_512 if bits == 512 else ACC_256) // vectors)


def _microkernel(double: bool, bits: int, vectors: int) -> Any:
    """``block(x, off, k, xstep, f, ldf, bias, relu, y, ystep)``, on addresses: for each of the block's P
    pixels p, y[p * ystep + 0:V*W] = bias + sum over taps t < k of x[p * xstep + off[t]] * f[t * ldf + 0:V*W]
    (then max(., 0) where `relu`; NaN stays NaN)."""
    pixels = pixels_per_block(vectors, bits)

    @intrinsic
    def block(typingctx, x, off, k, xstep, f, ldf, bias, relu, y, ystep):  # type: ignore[no-untyped-def]
        sig = types.void(*([types.int64] * 10))

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            x_i, off_i, k_v, xstep_v, f_i, ldf_v, bias_i, relu_v, y_i, ystep_v = args
            elt, vt, width, align, fma = vector_kit(builder, double, bits)
            i64 = ir.IntType(64)
            x_p, f_p, bias_p, y_p = (builder.inttoptr(v, elt.as_pointer()) for v in (x_i, f_i, bias_i, y_i))
            off_p = builder.inttoptr(off_i, i64.as_pointer())
            start = [builder.load(builder.bitcast(builder.gep(bias_p, [ir.Constant(i64, v * width)]),
                                                  vt.as_pointer()), align=align) for v in range(vectors)]

            def step(t, accs):  # type: ignore[no-untyped-def]
                frow = builder.gep(f_p, [builder.mul(t, ldf_v)])
                fv = [builder.load(builder.bitcast(builder.gep(frow, [ir.Constant(i64, v * width)]),
                                                   vt.as_pointer()), align=align) for v in range(vectors)]
                new = []
                at = builder.gep(x_p, [builder.load(builder.gep(off_p, [t]))])
                for p in range(pixels):
                    if p:  # one add per pixel: a pointer per pixel would not fit in the general registers
                        at = builder.gep(at, [xstep_v])
                    s = splat(builder, vt, builder.load(at))
                    new.append([builder.call(fma, [s, fv[v], accs[p][v]]) for v in range(vectors)])
                return new

            final = tap_loop(builder, k_v, [list(start) for _ in range(pixels)], step)
            zero = ir.Constant(vt, [0.0] * width)
            clip = builder.icmp_signed("!=", relu_v, ir.Constant(i64, 0))
            for p in range(pixels):
                out = builder.gep(y_p, [builder.mul(ystep_v, ir.Constant(i64, p))])
                for v in range(vectors):
                    # ReLU as TF's: a select on v < 0, so a NaN stays NaN
                    res = final[p][v]
                    clipped = builder.select(builder.fcmp_ordered("<", res, zero), zero, res)
                    builder.store(builder.select(clip, clipped, res),
                                  builder.bitcast(builder.gep(out, [ir.Constant(i64, v * width)]), vt.as_pointer()),
                                  align=align)
            return context.get_dummy_value()

        return sig, codegen

    return block


# the microkernels by dtype, width and channel vectors: `_blocks(double)`, and `_block_for(like, wide, vectors, ...)`
# (the arguments after `vectors` are `_microkernel`'s) for compiled code
_blocks, _block_for = for_dtype(_microkernel, "pixel_block")


# The int64 geometry array of `_images`: output size, padding, and the padded input's rows and row length.
_OH, _OW, _PT, _PL, _HP, _WP = range(6)
# Pooling applied to the conv's output rows (`_images`): none, or a 2 x 2 window at stride 2, every window
# inside the conv's output, max or average.
NO_POOL, MAX_2X2, AVG_2X2 = 0, 1, 2
# Output rows per pass: a pass's positions run on from one row into the next (`_conv_rows`).
ROWS = 2


@njit(nogil=True, error_model="numpy")
def _pad_image(x, n, pt, pl, xp):  # type: ignore[no-untyped-def]
    """xp[n, pt + y, pl + x, :] = x[n, y, x, :], zeros elsewhere (input past xp's edge is dropped); xp is
    (N, rows, row length * C)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    flat = xp[n].reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = 0
    x0, x1 = max(0, -pl), min(w, xp.shape[2] // ch - pl)
    for y in range(max(0, -pt), min(h, xp.shape[1] - pt)):
        dst = xp[n, pt + y, (pl + x0) * ch:(pl + x1) * ch]
        src = x[n, y].reshape(-1)[x0 * ch:x1 * ch]
        for i in range(dst.shape[0]):
            dst[i] = src[i]


@njit(nogil=True, error_model="numpy")
def _conv_rows(xp, n, i0, i1, geo, off, k, fpack, bias, relu, wide, buf):  # type: ignore[no-untyped-def]
    """Output rows [i0, i1) of image n into buf: output pixel (i, j) at position (i - i0) * WP + j, positions
    WP apart along a padded input row, so one block of pixels runs on over the junk positions j >= OW into
    the next row (W7's 28 x 28 output in blocks of 12: 7% more pixels computed than kept, against 29% per
    row)."""
    size = xp.itemsize
    width = (64 if wide else 32) // size
    opad = fpack.shape[1]
    ch = xp.shape[2] // geo[_WP]
    base = address(xp) + (n * geo[_HP] + i0) * xp.shape[2] * size
    fa, ba, ra, oa = address(fpack), address(bias), address(buf), address(off)
    positions = (i1 - 1 - i0) * geo[_WP] + geo[_OW]
    for g0 in range(0, opad // width, MAX_VECTORS):
        v = min(MAX_VECTORS, opad // width - g0)
        step = max(1, (ACC_512 if wide else ACC_256) // v)  # (`pixels_per_block`)
        for q in range(0, positions, step):
            x = base + q * ch * size
            f, b, y = fa + g0 * width * size, ba + g0 * width * size, ra + (q * opad + g0 * width) * size
            _block_for(xp, wide, v, x, oa, k, ch, f, opad, b, relu, y, opad)


@njit(nogil=True, error_model="numpy")
def _pool_rows(buf, wp, mode, out):  # type: ignore[no-untyped-def]
    """out[j, :] = the 2 x 2 max or mean of conv rows 0 and 1 in buf (positions wp apart) at pixels 2j, 2j + 1
    (`pool.max_pool`'s select and `pool.avg_pool`'s order of sums), over flat runs of channels."""
    o = out.shape[1]
    src = buf.reshape(-1)
    dst = out.reshape(-1)
    opad = buf.shape[1]
    for j in range(out.shape[0]):  # (slices indexed from 0: no negative-index checks, the loops vectorize)
        a, b = 2 * j * opad, (2 * j + wp) * opad  # the window's top-left and bottom-left pixels
        a0, a1, b0, b1 = src[a:a + o], src[a + opad:a + opad + o], src[b:b + o], src[b + opad:b + opad + o]
        d = dst[j * o:(j + 1) * o]
        if mode == MAX_2X2:
            for c in range(o):
                m = a0[c]
                v = a1[c]
                m = v if (m == m) & ((v > m) | (v != v)) else m
                v = b0[c]
                m = v if (m == m) & ((v > m) | (v != v)) else m
                v = b1[c]
                d[c] = v if (m == m) & ((v > m) | (v != v)) else m
        else:
            for c in range(o):
                d[c] = (((a0[c] + a1[c]) + b0[c]) + b1[c]) / 4


@njit(nogil=True, error_model="numpy")
def _images(x, f2, bias, has_bias, relu, geo, off, wide, pool, xp, out, full, lo, hi):  # type: ignore[no-untyped-def]
    """`forward` for images [lo, hi): each padded into xp[n], then its output rows, ROWS at a time (pooled
    in pairs into out[n] when `pool`), into out[n], or into full[n] as well when it is not empty (a pooled
    conv whose own output is read too)."""
    size = x.itemsize
    width = (64 if wide else 32) // size
    k, o = f2.shape
    opad = -(-o // width) * width
    fpack = np.zeros((k, opad), x.dtype)  # (loops, not slice assignments: those took seconds to compile)
    for t in range(k):
        for c in range(o):
            fpack[t, c] = f2[t, c]
    bpad = np.zeros(opad, x.dtype)
    for c in range(o if has_bias else 0):
        bpad[c] = bias[c]
    wp, ow = geo[_WP], geo[_OW]
    buf = np.empty((ROWS * wp + ACC_512, opad), x.dtype)  # (room for the last block's overrun)
    keep = full.shape[0] > 0
    pooled = out.shape[1] if pool != NO_POOL else 0
    rows = geo[_OH] if keep or pool == NO_POOL else pooled * 2
    dest = full if keep else out
    for n in range(lo, hi):
        _pad_image(x, n, geo[_PT], geo[_PL], xp)
        for i0 in range(0, rows, ROWS):
            i1 = min(rows, i0 + ROWS)
            _conv_rows(xp, n, i0, i1, geo, off, k, fpack, bpad, relu, wide, buf)
            if i0 // 2 < pooled and i1 - i0 == 2:
                _pool_rows(buf, wp, pool, out[n, i0 // 2])
                if not keep:
                    continue
            for i in range(i0, i1):
                if o == opad:  # the row's pixels are one flat run in both: one loop, which vectorizes
                    src, dst = buf.reshape(-1)[(i - i0) * wp * o:((i - i0) * wp + ow) * o], dest[n, i].reshape(-1)
                    for q in range(ow * o):
                        dst[q] = src[q]
                    continue
                for j in range(ow):  # (loops: Numba's 2-d slice assignment took ~8 us per image)
                    src, dst = buf[(i - i0) * wp + j, :o], dest[n, i, j]
                    for c in range(o):
                        dst[c] = src[c]


def _padded_shape(x_shape: tuple[int, ...], g: Any) -> tuple[int, int, int]:
    """(N, rows, row length * C) of the padded input: the last block of the last rows reads up to a block
    past the last output position, into rows of zeros below."""
    wp = g.ow + (g.kw - 1) * g.dw
    hp = g.oh + (g.kh - 1) * g.dh + -(-ACC_512 // wp) + 1
    return x_shape[0], hp, wp * x_shape[3]


@functools.lru_cache(maxsize=256)
def _geometry(g: Any, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The int64 geometry array of `_images` and the tap offsets (window row, column, channel order)."""
    _, hp, wpc = _padded_shape((1, 0, 0, c), g)
    wp = wpc // c
    geo = np.array([g.oh, g.ow, g.pt, g.pl, hp, wp], np.int64)
    a, e, ch = np.meshgrid(np.arange(g.kh), np.arange(g.kw), np.arange(c), indexing="ij")
    off = ((a * g.dh * wp + e * g.dw) * c + ch).reshape(-1).astype(np.int64)
    geo.flags.writeable = off.flags.writeable = False  # shared by every call with this geometry
    return geo, off


def forward(x: np.ndarray, f: np.ndarray, g: Any, out: np.ndarray, scratch: Any, bias: np.ndarray | None = None,
            relu: bool = False, pool: int = NO_POOL, bits: int = 0, full: np.ndarray | None = None) -> np.ndarray:
    """out = conv2d of NHWC `x` with the (KH, KW, C, O) filter `f` (stride 1, any dilation: `direct.applies`),
    with the optional bias and ReLU, then the 2 x 2 pool `pool` (out is then the pooled shape; the caller
    checks that every window lies inside the conv's output), the conv's own output also written to `full`
    (C-contiguous) when given. `scratch(n, dtype)` gives the padded input's buffer; `bits`: the vector width
    (default the host's, `packed_gemm.VECTOR_BITS`)."""
    geo, off = _geometry(g, x.shape[3])
    shape = _padded_shape(x.shape, g)
    xp = scratch(math.prod(shape), x.dtype).reshape(shape)
    f2 = read_only(np.ascontiguousarray(f).reshape(-1, f.shape[3]))  # (read-only views: one compiled kernel
    b = read_only(f2[0] if bias is None else bias)  # for variables' values and fed arrays alike)
    from jitflow.kernels.packed_gemm import VECTOR_BITS  # (its dispatchers start Numba: not at import)

    wide = (bits or VECTOR_BITS) == 512
    y = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)  # (`_images` writes flat rows)
    if full is None:
        full = np.empty((0, 0, 0, 0), out.dtype)
    elif pool == NO_POOL or not full.flags.c_contiguous:
        raise ValueError("a second full output needs a pooled, C-contiguous one")
    threads.parallel_range(_images, x.shape[0], read_only(np.ascontiguousarray(x)), f2, b, bias is not None, relu,
                           geo, off, wide, pool, xp, y, full)
    if y is not out:
        out[...] = y
    return out
