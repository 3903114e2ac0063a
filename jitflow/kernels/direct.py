"""Direct convolution kernels for stride-1 convs with few input channels (a network's first layer).

With one or three input channels im2col's patches are as large as the conv's output and the GEMM
over them has K = 25, far from what BLAS runs well.

- forward: blocks of output pixels with their channels in vector registers (`pixel_conv.py`), the bias
  and ReLU applied as each pixel is written, and a 2 x 2 pool after it applied to its rows on the spot.
- filter gradient: the input is copied once into a zero-padded planar image per channel (N, C, HP, WP),
  and every image is treated as one long row of HP * WP positions: output pixel (i, j) sits at position
  q = i * WP + j, and tap (a, e, c) of its window at q + off[a, e, c]. dy is transposed once per image to
  (O, positions); each (tap, channel) entry of the gradient is then a dot product over positions, computed
  in 4 x 2 register blocks, in loops that are long, contiguous and free of bounds checks. Every thread sums
  a share of the images into its own partial gradient; the caller adds the partials. The WP - OW positions
  at the end of each row meet zeros in dy but multiply real inputs, so an input with an inf or NaN takes
  the GEMM path instead (`conv.filter_grad` checks).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from jitflow.codegen.cache.library import njit
from jitflow.kernels import pixel_conv, threads

# Input channels up to which a stride-1 conv runs these kernels instead of im2col + GEMM (bench/README.md:
# W7's first layer, C = 1).
MAX_CHANNELS = 4
# Taps combined per pass over an accumulator row.
UNROLL = 4


def applies(c: int, g: Any) -> bool:
    """True when a conv with `c` input channels and geometry `g` (a `conv.ConvGeom`) runs here."""
    return c <= MAX_CHANNELS and g.sh == 1 and g.sw == 1


def planar_shape(x_shape: tuple[int, ...], g: Any) -> tuple[int, int, int, int]:
    """(N, C, HP, WP): every window of every output position, junk columns included, lies inside."""
    wp = g.ow + (g.kw - 1) * g.dw
    hp = g.oh + (g.kh - 1) * g.dh + 1  # one more row: the junk positions of the last row read into it
    return x_shape[0], x_shape[3], hp, wp


@functools.lru_cache(maxsize=256)  # per run otherwise: ~20 us of meshgrid, a tenth of a batch-1 conv
def tap_offsets(g: Any, hp: int, wp: int, c: int) -> np.ndarray:
    """off[(a * KW + e) * C + ch] = position of tap (a, e, ch) relative to its window's corner; padded
    with zeros to a multiple of UNROLL (the filter gradient computes those rows and drops them)."""
    a, e, ch = np.meshgrid(np.arange(g.kh), np.arange(g.kw), np.arange(c), indexing="ij")
    off = (ch * hp * wp + a * g.dh * wp + e * g.dw).reshape(-1)
    k4 = -(-off.size // UNROLL) * UNROLL
    res = np.concatenate([off, np.zeros(k4 - off.size, off.dtype)]).astype(np.int64)
    res.flags.writeable = False  # shared by every call with this geometry
    return res


@njit(nogil=True)
def _pad_planar_images(x, pt, pl, xp, lo, hi):  # type: ignore[no-untyped-def]
    """xp[n, c, pt + y, pl + x] = x[n, y, x, c] for images n in [lo, hi); zeros elsewhere (input past xp's
    edge is dropped). Rows are copied as slices indexed from 0, which keeps Numba's negative-index checks
    out of the loop (5x faster than indexing xp[n, c, pt + y, pl + x] directly)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    x0, x1 = max(0, -pl), min(w, xp.shape[3] - pl)
    for n in range(lo, hi):
        xp[n] = 0
        for c in range(ch):
            for y in range(max(0, -pt), min(h, xp.shape[2] - pt)):
                dst = xp[n, c, pt + y, pl + x0:pl + x1]
                src = x[n, y, x0:x1, c]
                for i in range(x1 - x0):
                    dst[i] = src[i]


@njit(nogil=True, fastmath={"contract", "reassoc"})
def _dots(img, dyt, off, zero, acc):  # type: ignore[no-untyped-def]
    """acc[t, o] += dot(img[off[t]:off[t] + L], dyt[o]) for every tap t and channel o (4 taps x 2 channels);
    `zero` is 0 in the accumulators' dtype."""
    no, span = dyt.shape
    for t in range(0, off.shape[0], UNROLL):
        y0, y1 = img[off[t]:off[t] + span], img[off[t + 1]:off[t + 1] + span]
        y2, y3 = img[off[t + 2]:off[t + 2] + span], img[off[t + 3]:off[t + 3] + span]
        for o in range(0, no, 2):
            o1 = min(o + 1, no - 1)  # an odd last channel is computed twice and stored once
            d0, d1 = dyt[o], dyt[o1]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for q in range(span):
                x0, x1, x2, x3, g0, g1 = y0[q], y1[q], y2[q], y3[q], d0[q], d1[q]
                s00 += x0 * g0
                s01 += x1 * g0
                s02 += x2 * g0
                s03 += x3 * g0
                s10 += x0 * g1
                s11 += x1 * g1
                s12 += x2 * g1
                s13 += x3 * g1
            acc[t, o] += s00
            acc[t + 1, o] += s01
            acc[t + 2, o] += s02
            acc[t + 3, o] += s03
            if o1 != o:
                acc[t, o1] += s10
                acc[t + 1, o1] += s11
                acc[t + 2, o1] += s12
                acc[t + 3, o1] += s13


@njit(nogil=True)
def _filter_grad_parts(xp, dy, off, parts, lo, hi):  # type: ignore[no-untyped-def]
    """`filter_grad_parts` for the parts p in [lo, hi)."""
    wp = xp.shape[3]
    oh, ow, no = dy.shape[1], dy.shape[2], dy.shape[3]
    npart = parts.shape[0]
    for p in range(lo, hi):
        acc = parts[p]
        acc[...] = 0
        dyt = np.zeros((no, oh * wp), dy.dtype)  # the junk positions stay zero
        zero = dyt[0, 0]
        for n in range(p, xp.shape[0], npart):
            for i in range(oh):
                for j in range(ow):
                    src = dy[n, i, j]
                    for o in range(no):
                        dyt[o, i * wp + j] = src[o]
            _dots(xp[n].reshape(-1), dyt, off, zero, acc)


def pad_planar(x: np.ndarray, pt: int, pl: int, xp: np.ndarray) -> None:
    """xp[n, c, pt + y, pl + x] = x[n, y, x, c]; zeros elsewhere (input past xp's edge is dropped)."""
    threads.parallel_range(_pad_planar_images, x.shape[0], x, pt, pl, xp, elements=xp.size)


def filter_grad_parts(xp: np.ndarray, dy: np.ndarray, off: np.ndarray, parts: np.ndarray) -> None:
    """parts[p, t, o] = sum over images n = p, p + P, ... of dot(tap t's positions of xp[n], dy[n, :, :, o])."""
    threads.parallel_range(_filter_grad_parts, parts.shape[0], xp, dy, off, parts)


# -- drivers ------------------------------------------------------------------------------------------------


def _planar(x: np.ndarray, g: Any, scratch: Any, extra: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded planar input, its tap offsets, and `extra` more scratch elements (one buffer for all)."""
    shape = planar_shape(x.shape, g)
    size = math.prod(shape)
    buf = scratch(size + extra, x.dtype)
    xp = buf[:size].reshape(shape)
    pad_planar(x, g.pt, g.pl, xp)
    return xp, tap_offsets(g, shape[2], shape[3], x.shape[3]), buf[size:]


def forward(x: np.ndarray, f: np.ndarray, g: Any, out: np.ndarray, scratch: Any,
            bias: np.ndarray | None = None, relu: bool = False, pool: int = 0) -> np.ndarray:
    """conv2d of NHWC `x` with (KH, KW, C, O) `f` into `out`, with the optional bias and ReLU applied (and
    the 2 x 2 `pool` of `pixel_conv`): blocks of output pixels with their channels in vector registers."""
    return pixel_conv.forward(x, f, g, out, scratch, bias, relu, pool)


def filter_grad(x: np.ndarray, dy: np.ndarray, g: Any, df: np.ndarray, scratch: Any, threads: int) -> np.ndarray:
    """The (KH, KW, C, O) filter gradient `df` of a conv of `x` whose output gradient is `dy`."""
    k, o = df.shape[0] * df.shape[1] * df.shape[2], df.shape[3]
    k4 = -(-k // UNROLL) * UNROLL
    parts_n = max(1, min(threads, x.shape[0]))
    xp, off, rest = _planar(x, g, scratch, parts_n * k4 * o)
    parts = rest.reshape(parts_n, k4, o)
    filter_grad_parts(xp, dy, off, parts)
    np.sum(parts[:, :k], axis=0, out=df.reshape(k, o))
    return df
