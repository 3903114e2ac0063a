"""Direct Numba kernels of the depthwise convolution and its two gradients (NHWC).

out[n, i, j, c*M + m] = sum over the window of x[n, i*sh - pt + a*dh, j*sw - pl + e*dw, c] * f[a, e, c, m].
Each input channel meets only its own M filters, so there is no GEMM to hand to BLAS: the kernels
run over ranges of output rows (`threads.parallel_range`), with the channels innermost (contiguous in NHWC, so the loop
vectorizes). The input gradient gathers, for each input pixel, the output pixels whose windows hold
it (no two threads write one element); the filter gradient sums per-thread partial filters.
"""
from __future__ import annotations

import numpy as np

from jitflow.codegen.cache.library import njit
from jitflow.kernels import threads


@njit(nogil=True, fastmath={"contract"})
def _tap(xrow, frow, mult, acc):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """acc[ch*mult + m] += xrow[ch] * frow[ch*mult + m] (one window tap of one output pixel)."""
    if mult == 1:
        for ch in range(xrow.shape[0]):
            acc[ch] += xrow[ch] * frow[ch]
    else:  # one strided pass per multiplier: the channel loop stays the long, vectorized one
        for m in range(mult):
            for ch in range(xrow.shape[0]):
                acc[ch * mult + m] += xrow[ch] * frow[ch * mult + m]


@njit(nogil=True, fastmath={"contract"})
def _forward_rows(x, f, sh, sw, dh, dw, pt, pl, out, lo, hi):  # type: ignore[no-untyped-def]  # pragma: no cover
    """`forward` for the output rows b * OH + i in [lo, hi)."""
    n, h, w, c = x.shape
    kh, kw, _, mult = f.shape
    f3 = f.reshape(kh, kw, c * mult)
    oh, ow = out.shape[1], out.shape[2]
    for row in range(lo, hi):
        b, i = row // oh, row % oh
        for j in range(ow):
            acc = out[b, i, j]
            acc[:] = 0
            for a in range(kh):
                y = i * sh - pt + a * dh
                if y < 0 or y >= h:
                    continue
                for e in range(kw):
                    xx = j * sw - pl + e * dw
                    if 0 <= xx < w:
                        _tap(x[b, y, xx], f3[a, e], mult, acc)


@njit(nogil=True, fastmath={"contract"})
def _backprop_input_rows(dy, f, sh, sw, dh, dw, pt, pl, dx, lo, hi):  # type: ignore[no-untyped-def]  # pragma: no cover
    """`backprop_input` for the input rows b * H + y in [lo, hi)."""
    n, h, w, c = dx.shape
    kh, kw, _, mult = f.shape
    f3 = f.reshape(kh, kw, c * mult)
    oh, ow = dy.shape[1], dy.shape[2]
    for row in range(lo, hi):
        b, y = row // h, row % h
        for xx in range(w):
            acc = dx[b, y, xx]
            acc[:] = 0
            for a in range(kh):
                t = y + pt - a * dh
                if t < 0 or t % sh != 0 or t // sh >= oh:
                    continue
                for e in range(kw):
                    u = xx + pl - e * dw
                    if u < 0 or u % sw != 0 or u // sw >= ow:
                        continue
                    g, fr = dy[b, t // sh, u // sw], f3[a, e]
                    if mult == 1:
                        for ch in range(c):
                            acc[ch] += g[ch] * fr[ch]
                    else:
                        for m in range(mult):
                            for ch in range(c):
                                acc[ch] += g[ch * mult + m] * fr[ch * mult + m]


@njit(nogil=True, fastmath={"contract"})
def _backprop_filter_parts(x, dy, sh, sw, dh, dw, pt, pl, parts, lo, hi):  # type: ignore[no-untyped-def]  # pragma: no cover
    """parts[k] for k in [lo, hi): the filter gradient ([kh, kw, c*mult]) of the k-th slice of output rows."""
    n, h, w, c = x.shape
    chunks, kh, kw, cm = parts.shape
    mult = cm // c
    oh, ow = dy.shape[1], dy.shape[2]
    rows = n * oh
    for k in range(lo, hi):
        part = parts[k]
        part[:] = 0
        for row in range(k * rows // chunks, (k + 1) * rows // chunks):
            b, i = row // oh, row % oh
            for a in range(kh):
                y = i * sh - pt + a * dh
                if y < 0 or y >= h:
                    continue
                for j in range(ow):
                    for e in range(kw):
                        xx = j * sw - pl + e * dw
                        if 0 <= xx < w:
                            _tap(x[b, y, xx], dy[b, i, j], mult, part[a, e])


def forward(x: np.ndarray, f: np.ndarray, sh: int, sw: int, dh: int, dw: int, pt: int, pl: int,
            out: np.ndarray) -> None:
    """out = the depthwise conv of x with f ([kh, kw, c, mult], C-contiguous)."""
    threads.parallel_range(_forward_rows, out.shape[0] * out.shape[1], x, f, sh, sw, dh, dw, pt, pl, out)


def backprop_input(dy: np.ndarray, f: np.ndarray, sh: int, sw: int, dh: int, dw: int, pt: int, pl: int,
                   dx: np.ndarray) -> None:
    """dx = the input gradient of the depthwise conv, gathered per input pixel."""
    threads.parallel_range(_backprop_input_rows, dx.shape[0] * dx.shape[1], dy, f, sh, sw, dh, dw, pt, pl, dx)


def backprop_filter(x: np.ndarray, dy: np.ndarray, geom: tuple[int, ...], df: np.ndarray,
                    parts: np.ndarray) -> None:
    """df ([kh, kw, c, mult]) = the filter gradient; `parts`: scratch of shape (chunks, kh, kw, c*mult)."""
    threads.parallel_range(_backprop_filter_parts, parts.shape[0], x, dy, *geom, parts)
    np.sum(parts, axis=0, out=df.reshape(parts.shape[1:]))
