"""Max and average pooling over NHWC windows, forward and backward, as Numba kernels over a range of
rows or images, run on the step's threads by `threads.parallel_range`.

Windows are clipped to the input (padding never wins a max and is not counted in an average, as in
TF). Gradients run one thread per image, so overlapping windows add into `dx` without races. The max
gradient goes to the first maximum of each window in row-major order (a NaN counts as the maximum),
which is what the NumPy reference kernel's argmax picks.
"""
from __future__ import annotations

import numpy as np

from jitflow.codegen.cache.library import njit
from jitflow.kernels import threads


@njit(nogil=True)
def _span(i, s, p, k, n):  # type: ignore[no-untyped-def]
    """The clipped input range [lo, hi) of output position i along one axis."""
    lo = i * s - p
    return max(lo, 0), min(lo + k, n)


@njit(nogil=True)
def _max_pool_rows(x, kh, kw, sh, sw, pt, pl, out, lo, hi):  # type: ignore[no-untyped-def]
    """out[n, i, j, c] = max of x[n, window(i, j), c] for the output rows t = n * OH + i in [lo, hi)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for t in range(lo, hi):
        n = t // oh
        i = t % oh
        y0, y1 = _span(i, sh, pt, kh, h)
        for j in range(ow):
            x0, x1 = _span(j, sw, pl, kw, w)
            o = out[n, i, j]
            first = x[n, y0, x0]
            for c in range(ch):
                o[c] = first[c]
            for y in range(y0, y1):
                for xx in range(x0, x1):
                    row = x[n, y, xx]
                    for c in range(ch):
                        v = row[c]
                        b = o[c]
                        o[c] = v if (b == b) & ((v > b) | (v != v)) else b  # a select: the loop vectorizes


@njit(nogil=True, inline="always")
def _window_2x2(r0, r1, o, j, ch):  # type: ignore[no-untyped-def]
    """Window j of two flat input rows (its four pixels' channels, in window order) and its output pixel."""
    return (r0[2 * j * ch:(2 * j + 1) * ch], r0[(2 * j + 1) * ch:(2 * j + 2) * ch],
            r1[2 * j * ch:(2 * j + 1) * ch], r1[(2 * j + 1) * ch:(2 * j + 2) * ch], o[j * ch:(j + 1) * ch])


@njit(nogil=True)
def _max_pool_2x2_rows(x, out, lo, hi):  # type: ignore[no-untyped-def]
    """`_max_pool_rows` for 2 x 2 windows at stride 2 without padding, every window inside the input: each
    output row from two flat input rows (no window bounds, indices from 0: the channel loop vectorizes)."""
    oh, ow, ch = out.shape[1], out.shape[2], out.shape[3]
    for t in range(lo, hi):
        n = t // oh
        i = t % oh
        r0, r1, o = x[n, 2 * i].reshape(-1), x[n, 2 * i + 1].reshape(-1), out[n, i].reshape(-1)
        for j in range(ow):
            a0, a1, b0, b1, d = _window_2x2(r0, r1, o, j, ch)
            for c in range(ch):
                m = a0[c]
                for v in (a1[c], b0[c], b1[c]):  # the select of _max_pool_rows, in its window order
                    m = v if (m == m) & ((v > m) | (v != v)) else m
                d[c] = m


def _tiles_2x2(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, out: np.ndarray) -> bool:
    """`tiles_2x2` of the arrays' shapes, both C-contiguous (what the 2 x 2 row kernels read and write)."""
    return tiles_2x2(x.shape, kh, kw, sh, sw, pt, pl, out.shape) and x.flags.c_contiguous and out.flags.c_contiguous


def tiles_2x2(x_shape: tuple[int, ...], kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
              out_shape: tuple[int, ...]) -> bool:
    """2 x 2 windows at stride 2 without padding, each inside the NHWC input (odd last rows and columns are
    dropped): the `_*_pool_2x2_rows` kernels apply."""
    return kh == kw == sh == sw == 2 and pt == pl == 0 and 2 * out_shape[1] <= x_shape[1] \
        and 2 * out_shape[2] <= x_shape[2]


def max_pool(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, out: np.ndarray) -> None:
    """out[n, i, j, c] = max of x[n, window(i, j), c]."""
    rows = x.shape[0] * out.shape[1]
    if _tiles_2x2(x, kh, kw, sh, sw, pt, pl, out):
        threads.parallel_range(_max_pool_2x2_rows, rows, x, out)
    else:
        threads.parallel_range(_max_pool_rows, rows, x, kh, kw, sh, sw, pt, pl, out)


@njit(nogil=True)
def _max_pool_grad_images(x, dy, kh, kw, sh, sw, pt, pl, dx, lo, hi):  # type: ignore[no-untyped-def]
    """`max_pool_grad` for images [lo, hi)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    best = np.empty(ch, x.dtype)
    at = np.empty(ch, np.int64)
    for n in range(lo, hi):
        dx[n] = 0
        for i in range(oh):
            y0, y1 = _span(i, sh, pt, kh, h)
            for j in range(ow):
                x0, x1 = _span(j, sw, pl, kw, w)
                first = x[n, y0, x0]
                for c in range(ch):
                    best[c] = first[c]
                    at[c] = y0 * w + x0
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


def max_pool_grad(x: np.ndarray, dy: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
                  dx: np.ndarray) -> None:
    """dx = zeros; each window's gradient goes to its first maximum (one thread per image: windows that
    overlap add into dx without races)."""
    threads.parallel_range(_max_pool_grad_images, x.shape[0], x, dy, kh, kw, sh, sw, pt, pl, dx)


@njit(nogil=True)
def _avg_pool_rows(x, kh, kw, sh, sw, pt, pl, out, lo, hi):  # type: ignore[no-untyped-def]
    """`avg_pool` for the output rows t = n * OH + i in [lo, hi)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for t in range(lo, hi):
        n = t // oh
        i = t % oh
        y0, y1 = _span(i, sh, pt, kh, h)
        for j in range(ow):
            x0, x1 = _span(j, sw, pl, kw, w)
            o = out[n, i, j]
            o[:] = 0
            for y in range(y0, y1):
                for xx in range(x0, x1):
                    row = x[n, y, xx]
                    for c in range(ch):
                        o[c] += row[c]
            k = (y1 - y0) * (x1 - x0)
            for c in range(ch):
                o[c] /= k


@njit(nogil=True)
def _avg_pool_2x2_rows(x, out, lo, hi):  # type: ignore[no-untyped-def]
    """`_avg_pool_rows` for 2 x 2 windows at stride 2 without padding, every window inside the input: the
    same sums in the same order (flat rows, indices from 0: the channel loop vectorizes)."""
    oh, ow, ch = out.shape[1], out.shape[2], out.shape[3]
    for t in range(lo, hi):
        n = t // oh
        i = t % oh
        r0, r1, o = x[n, 2 * i].reshape(-1), x[n, 2 * i + 1].reshape(-1), out[n, i].reshape(-1)
        for j in range(ow):
            a0, a1, b0, b1, d = _window_2x2(r0, r1, o, j, ch)
            for c in range(ch):
                d[c] = 0
                d[c] += a0[c]
                d[c] += a1[c]
                d[c] += b0[c]
                d[c] += b1[c]
                d[c] /= 4


def avg_pool(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, out: np.ndarray) -> None:
    """out[n, i, j, c] = mean of x[n, window(i, j), c] over the window's real (unpadded) pixels."""
    rows = x.shape[0] * out.shape[1]
    if _tiles_2x2(x, kh, kw, sh, sw, pt, pl, out):
        threads.parallel_range(_avg_pool_2x2_rows, rows, x, out)
    else:
        threads.parallel_range(_avg_pool_rows, rows, x, kh, kw, sh, sw, pt, pl, out)


@njit(nogil=True)
def _avg_pool_grad_images(dy, kh, kw, sh, sw, pt, pl, dx, lo, hi):  # type: ignore[no-untyped-def]
    """`avg_pool_grad` for images [lo, hi)."""
    h, w, ch = dx.shape[1], dx.shape[2], dx.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    for n in range(lo, hi):
        dx[n] = 0
        for i in range(oh):
            y0, y1 = _span(i, sh, pt, kh, h)
            for j in range(ow):
                x0, x1 = _span(j, sw, pl, kw, w)
                g = dy[n, i, j]
                k = (y1 - y0) * (x1 - x0)
                for y in range(y0, y1):
                    for xx in range(x0, x1):
                        d = dx[n, y, xx]
                        for c in range(ch):
                            d[c] += g[c] / k


@njit(nogil=True)
def _avg_pool_grad_2x2_rows(dy, dx, lo, hi):  # type: ignore[no-untyped-def]
    """`_avg_pool_grad_images` for 2 x 2 windows at stride 2 without padding, by output rows t = n * OH + i:
    each input pixel of a window gets 0 + g / 4 (as there, so -0.0 becomes 0.0), written once; an odd last
    input row or column, in no window, gets 0."""
    oh, ow, ch = dy.shape[1], dy.shape[2], dy.shape[3]
    h = dx.shape[1]
    for t in range(lo, hi):
        n = t // oh
        i = t % oh
        g = dy[n, i].reshape(-1)
        for r in (dx[n, 2 * i].reshape(-1), dx[n, 2 * i + 1].reshape(-1)):
            for j in range(ow):
                gj = g[j * ch:(j + 1) * ch]
                d0 = r[2 * j * ch:(2 * j + 1) * ch]
                d1 = r[(2 * j + 1) * ch:(2 * j + 2) * ch]
                for c in range(ch):
                    d0[c] = 0
                    d0[c] += gj[c] / 4
                    d1[c] = 0
                    d1[c] += gj[c] / 4
            r[2 * ow * ch:] = 0
        if i == oh - 1:
            for y in range(2 * oh, h):
                dx[n, y] = 0


def avg_pool_grad(dy: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, dx: np.ndarray) -> None:
    """dx = zeros; each window's gradient, divided by its pixel count, goes to all its pixels."""
    if _tiles_2x2(dx, kh, kw, sh, sw, pt, pl, dy) and dy.shape[1] > 0:
        threads.parallel_range(_avg_pool_grad_2x2_rows, dx.shape[0] * dy.shape[1], dy, dx)
    else:
        threads.parallel_range(_avg_pool_grad_images, dx.shape[0], dy, kh, kw, sh, sw, pt, pl, dx)


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


@njit(nogil=True)
def _max_pool_grad_parts(x, dy, kh, kw, sh, sw, pt, pl, relu, zero_first, dx, db_parts, lo, hi):  # type: ignore[no-untyped-def]
    """`max_pool_grad_tiled` for the parts p in [lo, hi): images p, p + P, ..., their bias sum in db_parts[p]."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = dy.shape[1], dy.shape[2]
    nparts = db_parts.shape[0]
    best = np.empty(ch, x.dtype)
    at = np.empty(ch, np.int64)
    for p in range(lo, hi):
        db = db_parts[p]
        db[:] = 0
        for n in range(p, x.shape[0], nparts):
            if zero_first:
                dx[n] = 0
            for i in range(oh):
                y0, y1 = _span(i, sh, pt, kh, h)
                for j in range(ow):
                    x0, x1 = _span(j, sw, pl, kw, w)
                    _window_grad(x, dy[n, i, j], n, y0, y1, x0, x1, relu, dx, best, at, db)


def max_pool_grad_tiled(x: np.ndarray, dy: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
                        relu: bool, zero_first: bool, dx: np.ndarray, db_parts: np.ndarray) -> None:
    """MaxPoolGrad for windows that do not overlap (strides >= window), each input element written once;
    with `relu`, ReluGrad(., x) fused in. db_parts[p] = the sum over images p, p + P, ... of what went
    into dx (the bias gradient, when x is a BiasAdd's ReLU). `zero_first`: some pixels lie in no window."""
    threads.parallel_range(_max_pool_grad_parts, db_parts.shape[0], x, dy, kh, kw, sh, sw, pt, pl, relu, zero_first,
                           dx, db_parts)
