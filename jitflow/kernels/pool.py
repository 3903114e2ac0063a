"""Max and average pooling over NHWC windows, forward and backward, as parallel Numba kernels.

Windows are clipped to the input (padding never wins a max and is not counted in an average, as in
TF). Gradients run one thread per image, so overlapping windows add into `dx` without races. The max
gradient goes to the first maximum of each window in row-major order (a NaN counts as the maximum),
which is what the NumPy reference kernel's argmax picks.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from jitflow.codegen.cache.library import njit


@njit(nogil=True)
def _span(i, s, p, k, n):  # type: ignore[no-untyped-def]
    """The clipped input range [lo, hi) of output position i along one axis."""
    lo = i * s - p
    return max(lo, 0), min(lo + k, n)


@njit(parallel=True, nogil=True)
def max_pool(x, kh, kw, sh, sw, pt, pl, out):  # type: ignore[no-untyped-def]
    """out[n, i, j, c] = max of x[n, window(i, j), c]."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for t in prange(x.shape[0] * oh):
        n = t // oh
        i = t % oh
        y0, y1 = _span(i, sh, pt, kh, h)
        for j in range(ow):
            x0, x1 = _span(j, sw, pl, kw, w)
            o = out[n, i, j]
            o[:] = x[n, y0, x0]
            for y in range(y0, y1):
                for xx in range(x0, x1):
                    row = x[n, y, xx]
                    for c in range(ch):
                        v = row[c]
                        b = o[c]
                        if b == b and (v > b or v != v):
                            o[c] = v


@njit(parallel=True, nogil=True)
def max_pool_grad(x, dy, kh, kw, sh, sw, pt, pl, dx):  # type: ignore[no-untyped-def]
    """dx = zeros; each window's gradient goes to its first maximum (channels scanned as vectors)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    for n in prange(x.shape[0]):
        dx[n] = 0
        best = np.empty(ch, x.dtype)
        at = np.empty(ch, np.int64)
        for i in range(oh):
            y0, y1 = _span(i, sh, pt, kh, h)
            for j in range(ow):
                x0, x1 = _span(j, sw, pl, kw, w)
                best[:] = x[n, y0, x0]
                at[:] = y0 * w + x0
                for y in range(y0, y1):
                    for xx in range(x0, x1):
                        row = x[n, y, xx]
                        pos = y * w + xx
                        for c in range(ch):
                            v = row[c]
                            b = best[c]
                            if b == b and (v > b or v != v):
                                best[c] = v
                                at[c] = pos
                g = dy[n, i, j]
                for c in range(ch):
                    p = at[c]
                    dx[n, p // w, p % w, c] += g[c]


@njit(parallel=True, nogil=True)
def avg_pool(x, kh, kw, sh, sw, pt, pl, out):  # type: ignore[no-untyped-def]
    """out[n, i, j, c] = mean of x[n, window(i, j), c] over the window's real (unpadded) pixels."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    for t in prange(x.shape[0] * oh):
        n = t // oh
        i = t % oh
        y0, y1 = _span(i, sh, pt, kh, h)
        for j in range(ow):
            x0, x1 = _span(j, sw, pl, kw, w)
            o = out[n, i, j]
            o[:] = 0
            for y in range(y0, y1):
                for xx in range(x0, x1):
                    o += x[n, y, xx]
            o /= (y1 - y0) * (x1 - x0)


@njit(parallel=True, nogil=True)
def avg_pool_grad(dy, kh, kw, sh, sw, pt, pl, dx):  # type: ignore[no-untyped-def]
    """dx = zeros; each window's gradient, divided by its pixel count, goes to all its pixels."""
    h, w = dx.shape[1], dx.shape[2]
    oh, ow = dy.shape[1], dy.shape[2]
    for n in prange(dx.shape[0]):
        dx[n] = 0
        for i in range(oh):
            y0, y1 = _span(i, sh, pt, kh, h)
            for j in range(ow):
                x0, x1 = _span(j, sw, pl, kw, w)
                g = dy[n, i, j] / ((y1 - y0) * (x1 - x0))
                for y in range(y0, y1):
                    for xx in range(x0, x1):
                        dx[n, y, xx] += g


@njit(nogil=True)
def _window_grad(x, g, n, y0, y1, x0, x1, relu, dx, best, at, db):  # type: ignore[no-untyped-def]
    """One window of a tiled max pool's gradient: g to each channel's first maximum, 0 to the rest of the
    window; with `relu`, 0 also where that maximum is not > 0 (ReLU's mask). Adds what it writes to db."""
    ch = x.shape[3]
    first = x[n, y0, x0]
    for c in range(ch):
        best[c] = first[c]
        at[c] = 0
    k = 0
    for y in range(y0, y1):
        for xx in range(x0, x1):
            row = x[n, y, xx]
            for c in range(ch):
                v = row[c]
                b = best[c]
                take = (b == b) & ((v > b) | (v != v))  # first maximum; a NaN counts as the maximum
                best[c] = v if take else b
                at[c] = k if take else at[c]
            k += 1
    for c in range(ch):
        keep = (not relu) | (best[c] > 0)
        g_c = g[c] if keep else 0
        best[c] = g_c  # reused: the value that goes to the maximum
        db[c] += g_c
    k = 0
    for y in range(y0, y1):
        for xx in range(x0, x1):
            out = dx[n, y, xx]
            for c in range(ch):
                out[c] = best[c] if at[c] == k else 0
            k += 1


@njit(parallel=True, nogil=True)
def max_pool_grad_tiled(x, dy, kh, kw, sh, sw, pt, pl, relu, zero_first, dx, db_parts):  # type: ignore[no-untyped-def]
    """MaxPoolGrad for windows that do not overlap (strides >= window), each input element written once;
    with `relu`, ReluGrad(., x) fused in. db_parts[p] = the sum over images p, p + P, ... of what went
    into dx (the bias gradient, when x is a BiasAdd's ReLU). `zero_first`: some pixels lie in no window."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    nparts = db_parts.shape[0]
    for p in prange(nparts):
        db = db_parts[p]
        db[:] = 0
        best = np.empty(ch, x.dtype)
        at = np.empty(ch, np.int64)
        for n in range(p, x.shape[0], nparts):
            if zero_first:
                dx[n] = 0
            for i in range(oh):
                y0, y1 = _span(i, sh, pt, kh, h)
                for j in range(ow):
                    x0, x1 = _span(j, sw, pl, kw, w)
                    _window_grad(x, dy[n, i, j], n, y0, y1, x0, x1, relu, dx, best, at, db)
