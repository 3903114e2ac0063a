"""A small batch's Winograd forward (`winograd.forward`) as three jobs of independent blocks, which the
packed GEMMs' helpers share while a plan runs with them spinning (`packed_helpers.serving`):

1. the input transform, a block per row of tiles (`winograd.tiles_in_row`);
2. the per-point GEMMs (tiles x C) @ (C x O), a block per point, through the packed microkernel against the
   transformed filter packed once per filter (`_PACKED`);
3. the output transform and epilogue, a block per row of tiles (`winograd.tiles_out_row`).

A batch-1 conv has one image, so the batch chunks of `winograd.forward` leave the second core idle: W7i's
second conv (14x14x32 -> 64, 5x5) took 130 us on one thread, 30 + 42 + 31 of them in these three parts.
Each block computes the same values whichever thread runs it. The blocks are Numba functions of
``(args, jb)`` called through their C addresses (`packed_helpers.share`); `args` is an int64 array of
addresses, sizes and flags laid out as the `_*_ARGS` comments say.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numba
import numpy as np
from numba import types

from jitflow.codegen.cache.library import njit
from jitflow.kernels import packed_gemm as P
from jitflow.kernels import packed_helpers as H
from jitflow.kernels.stream_gemv import pointer_to
from jitflow.kernels.winograd import tiles_in_row, tiles_out_row

# The jobs compile these modules' functions in: their cached code must follow those modules' edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.packed_gemm", "jitflow.kernels.stream_gemv", "jitflow.kernels.winograd")

_i64, _f32, _f64 = pointer_to(types.int64), pointer_to(types.float32), pointer_to(types.float64)

# _IN_ARGS: double, x (ptr, N, H, W, C), v (ptr, rows, cols), bh (ptr, rows, cols), bw (ptr, rows, cols),
# n0, pt, pl, mh, mw, th, tw
_IN_ARGS = 22
# _GEMM_ARGS: double, v (ptr, per-point stride, tiles, C), packed U (ptr, per-point stride), M (ptr, per-point
# stride, O), wide
_GEMM_ARGS = 11
# _OUT_ARGS: double, M (ptr, rows, cols), y (ptr, N, OH, OW, O), at_h (ptr, rows, cols), at_w (ptr, rows, cols),
# bias (ptr, size), has_bias, relu, n0, mh, mw, th, tw
_OUT_ARGS = 24


@njit(nogil=True)
def _in_rows(a, jb, x, v, bh, bw):  # type: ignore[no-untyped-def]
    th, tw, mw = a[20], a[21], a[19]
    k = tw - 1 + (a[14] + mw - 1) // mw
    xs = numba.carray(x, (a[2], a[3], a[4], a[5]))
    ch = a[5]
    rows = np.empty((a[10], k * mw * ch), xs.dtype)
    poly = np.empty((a[10], mw, k * ch), xs.dtype)
    tiles_in_row(xs, a[15], jb // th, jb % th, a[16], a[17], a[18], mw, th, tw, numba.carray(bh, (a[10], a[11])),
                 numba.carray(bw, (a[13], a[14])), numba.carray(v, (a[7], a[8])), rows, poly)


@njit(nogil=True)
def _in_block(args, jb):  # type: ignore[no-untyped-def]
    """Block `jb` (image jb // th, row of tiles jb % th) of the input transform."""
    a = numba.carray(_i64(args), (_IN_ARGS,))
    if a[0]:
        _in_rows(a, jb, _f64(a[1]), _f64(a[6]), _f64(a[9]), _f64(a[12]))
    else:
        _in_rows(a, jb, _f32(a[1]), _f32(a[6]), _f32(a[9]), _f32(a[12]))


@njit(nogil=True)
def _gemm_block(args, jb):  # type: ignore[no-untyped-def]
    """Point `jb`'s GEMM: M[jb] (tiles x O) = V[jb] (tiles x C) @ U[jb], every column block of it."""
    a = numba.carray(_i64(args), (_GEMM_ARGS,))
    double, m, k, n, wide = a[0] != 0, a[3], a[4], a[9], a[10] != 0
    size = 8 if double else 4
    nb = 2 * (512 if wide else 256) // (8 * size)
    tail = np.empty(P.ROWS * nb, np.float64)  # (room for either dtype)
    va, ua, ma = a[1] + jb * a[2] * size, a[5] + jb * a[6] * size, a[7] + jb * a[8] * size
    for cb in range(-(-n // nb)):
        P._block(double, wide, va, ua, ma, m, n, k, k, cb, tail.ctypes.data)


@njit(nogil=True)
def _out_rows(a, jb, mm, y, at_h, at_w, bias):  # type: ignore[no-untyped-def]
    th, tw, mh, mw = a[22], a[23], a[20], a[21]
    ys = numba.carray(y, (a[5], a[6], a[7], a[8]))
    run = tw * a[8]
    cols = np.empty((a[11], mw * run), ys.dtype)
    out = np.empty((mh, mw * run), ys.dtype)
    tiles_out_row(numba.carray(mm, (a[2], a[3])), a[19], jb // th, jb % th, mh, mw, th, tw,
                  numba.carray(at_h, (a[10], a[11])), numba.carray(at_w, (a[13], a[14])),
                  numba.carray(bias, (a[16],)), a[17] != 0, a[18] != 0, ys, cols, out)


@njit(nogil=True)
def _out_block(args, jb):  # type: ignore[no-untyped-def]
    """Block `jb` (image jb // th, row of tiles jb % th) of the output transform and epilogue."""
    a = numba.carray(_i64(args), (_OUT_ARGS,))
    if a[0]:
        _out_rows(a, jb, _f64(a[1]), _f64(a[4]), _f64(a[9]), _f64(a[12]), _f64(a[15]))
    else:
        _out_rows(a, jb, _f32(a[1]), _f32(a[4]), _f32(a[9]), _f32(a[12]), _f32(a[15]))


# Transformed filters packed for the microkernel, by the transformed filter (`winograd._FILTERS` keeps the
# same array while the filter's values are unchanged); each entry holds its key array, so its id is not reused.
_PACKED: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_PACKED_SIZE = 8


def _packed(u: np.ndarray) -> np.ndarray:
    """U (points, C, O) packed point by point (`packed_helpers.pack`), made once per transformed filter."""
    hit = _PACKED.get(id(u))
    if hit is not None and hit[0] is u:
        return hit[1]
    pts, c, o = u.shape
    size = P.packed_size(c, o, u.dtype)
    out = np.empty(pts * size, u.dtype)
    for p in range(pts):
        H.pack(u[p], out[p * size:(p + 1) * size])
    _PACKED[id(u)] = (u, out)
    while len(_PACKED) > _PACKED_SIZE:
        _PACKED.popitem(last=False)
    return out


def _dims(a: np.ndarray) -> list[int]:
    return [a.ctypes.data, *a.shape]


def forward(x: np.ndarray, u: np.ndarray, p: Any, g: Any, out: np.ndarray, v: np.ndarray, mm: np.ndarray,
            bias: np.ndarray, has_bias: bool, relu: bool) -> np.ndarray:
    """out = the conv of all of x (one chunk): `winograd.forward`'s three steps as shared jobs; v and mm are
    its (points, tiles * C) and (points, tiles * O) buffers, u the transformed filter."""
    n, c, o = x.shape[0], x.shape[3], u.shape[2]
    double = int(x.dtype == np.float64)
    rows = n * p.th
    ints = [0, g.pt, g.pl, p.mh, p.mw, p.th, p.tw]
    H.share(_in_block, np.array([double, *_dims(x), *_dims(v), *_dims(p.bt_h), *_dims(p.bt_w), *ints], np.int64),
            rows)
    up = _packed(u)
    ustride = up.size // u.shape[0]
    wide = H.HELPERS.ctrl[P.WIDE]
    H.share(_gemm_block, np.array([double, v.ctypes.data, v.shape[1], n * p.th * p.tw, c, up.ctypes.data, ustride,
                                   mm.ctypes.data, mm.shape[1], o, wide], np.int64), u.shape[0])
    H.share(_out_block, np.array([double, *_dims(mm), *_dims(out), *_dims(p.at_h), *_dims(p.at_w), *_dims(bias),
                                  int(has_bias), int(relu), 0, p.mh, p.mw, p.th, p.tw], np.int64), rows)
    return out
