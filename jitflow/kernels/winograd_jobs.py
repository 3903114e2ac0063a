"""A small batch's Winograd forward (`winograd.forward`) as one job of independent blocks, which the packed
GEMMs' helpers share while a plan runs with them spinning (`packed_helpers.serving`).

A batch-1 conv has one image, so the batch chunks of `winograd.forward` leave the second core idle: W7i's
second conv (14x14x32 -> 64, 5x5) took 130 us on one thread. Here each block is a group of rows of tiles
of one image, taken from input to output (`_rows`): the input transform of its rows
(`winograd.tiles_in_row`), the per-point GEMMs of its tiles through the packed microkernel against the
transformed filter (packed once per filter, `_PACKED`), the output transform and epilogue
(`winograd.tiles_out_row`). Splitting each of the three parts on its own (rows, points, rows) made every
block read what the other core had just written: measured 67 + 70 + 35 us shared against 31 + 45 + 32
alone. Each block keeps its transformed tiles in its own scratch: with the blocks' tiles side by side in
shared V and M arrays (1 KB runs of each point's row in turn), each block took 33-50% longer while the other
core ran its own (cycle counts per block; the job 66 against 48 us). Each block computes the same values
whichever thread runs it. Blocks are Numba functions of ``(args, jb)`` called through their C addresses
(`packed_helpers.block_function`, `packed_gemm.run_blocks`); `args` is an int64 array of addresses, sizes
and flags laid out as the comment above `_ARGS` says, filled and posted in one compiled call (`_post`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numba
import numpy as np
from numba import types

from jitflow.codegen.cache.library import njit
from jitflow.kernels import packed_gemm as P
from jitflow.kernels import packed_helpers as H
from jitflow.kernels.lincomb import address
from jitflow.kernels.llvm_kit import pointer_to
from jitflow.kernels.winograd import tiles_in_row, tiles_out_row

# The jobs compile these modules' functions in: their cached code must follow those modules' edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.packed_gemm", "jitflow.kernels.stream_gemv", "jitflow.kernels.winograd",
                       "jitflow.kernels.lincomb", "jitflow.kernels.llvm_kit")

_i64, _f32, _f64 = pointer_to(types.int64), pointer_to(types.float32), pointer_to(types.float64)

# The job's args (int64): double, wide, then (address, dims...) of x (N, H, W, C), y (N, OH, OW, O), B_h^T, B_w^T,
# A_h^T, A_w^T (rows, cols each), the packed U (address, per-point stride), the bias (address, size), each
# block's scratch (address, elements per block), then has_bias, relu, pt, pl, mh, mw, th, tw, rows of tiles per
# block.
_DOUBLE, _WIDE, _X, _Y, _BH, _BW, _AH, _AW, _U, _BIAS, _SCRATCH = 0, 1, 2, 7, 12, 15, 18, 21, 24, 26, 28
_HAS_BIAS, _RELU, _PT, _PL, _MH, _MW, _TH, _TW, _GROUP = range(30, 39)
_ARGS = 39


@njit(nogil=True)
def _rows(a, jb, x, y, bh, bw, ah, aw, bias, scratch):  # type: ignore[no-untyped-def]
    """Block `jb`: rows of tiles [r0, r1) of one image, from the input transform to the output's epilogue.
    Its scratch comes from the caller (`block_scratch`): allocating it here, on a helper thread, cost the
    helper's block more than the whole job took the caller alone."""
    th, tw, mh, mw, group = a[_TH], a[_TW], a[_MH], a[_MW], a[_GROUP]
    per_image = -(-th // group)
    b, r0 = jb // per_image, jb % per_image * group
    r1 = min(th, r0 + group)
    xs = numba.carray(x, (a[_X + 1], a[_X + 2], a[_X + 3], a[_X + 4]))
    ys = numba.carray(y, (a[_Y + 1], a[_Y + 2], a[_Y + 3], a[_Y + 4]))
    bhs, bws = numba.carray(bh, (a[_BH + 1], a[_BH + 2])), numba.carray(bw, (a[_BW + 1], a[_BW + 2]))
    ahs, aws = numba.carray(ah, (a[_AH + 1], a[_AH + 2])), numba.carray(aw, (a[_AW + 1], a[_AW + 2]))
    ch, co, ai, ao = xs.shape[3], ys.shape[3], bhs.shape[0], ahs.shape[1]
    k = tw - 1 + (bws.shape[1] + mw - 1) // mw
    mine = numba.carray(scratch, (a[_SCRATCH + 1] * (jb + 1),))[a[_SCRATCH + 1] * jb:]
    # the block's own transformed tiles (V, M), then the transforms' scratch
    pts, per = ai * bws.shape[0], group * tw
    vb = mine[:pts * per * ch].reshape((pts, per * ch))
    mb = mine[pts * per * ch:pts * per * (ch + co)].reshape((pts, per * co))
    work = mine[pts * per * (ch + co):]
    rows = work[:ai * k * mw * ch].reshape((ai, k * mw * ch))
    wide, first = a[_WIDE] != 0, (b * th + r0) * tw  # (the block's first tile: its tile 0 in vb, mb)
    for ti in range(r0, r1):
        tiles_in_row(xs, 0, b, ti, a[_PT], a[_PL], mh, mw, th, tw, bhs, bws, vb, rows, wide, first)
    _point_gemms(a, vb, mb, (r1 - r0) * tw, ch, co, address(work) + ai * k * mw * ch * xs.itemsize)
    cols = work[:ao * mw * tw * co].reshape((ao, mw * tw * co))  # (the input side's scratch is free again)
    out = work[ao * mw * tw * co:(ao + mh) * mw * tw * co].reshape((mh, mw * tw * co))
    biases = numba.carray(bias, (a[_BIAS + 1],))
    for ti in range(r0, r1):
        tiles_out_row(mb, 0, b, ti, mh, mw, th, tw, ahs, aws, biases, a[_HAS_BIAS] != 0, a[_RELU] != 0, ys, cols,
                      out, wide, first)


def block_scratch(p: Any, c: int, o: int, group: int) -> int:
    """Elements of scratch one block of `_rows` uses: its transformed tiles, then the larger of its input and
    output transforms' buffers."""
    ai, ao = p.bt_h.shape[0], p.at_h.shape[1]
    k = p.tw - 1 + (p.bt_w.shape[1] + p.mw - 1) // p.mw
    n = p.points * group * p.tw * (c + o) + max(ai * k * p.mw * c + P.ROWS * 32, (ao + p.mh) * p.mw * p.tw * o)
    return -(-n // 64) * 64  # (blocks start on whole cache lines)


@njit(nogil=True)
def _point_gemms(a, vb, mb, m, ch, co, tail):  # type: ignore[no-untyped-def]
    """mb[p, tiles 0..m] = vb[p, those tiles] @ U[p] for every point p, through the packed microkernel
    (`tail`: the address of ROWS * 32 elements of scratch for a partial column block)."""
    double, wide = a[_DOUBLE] != 0, a[_WIDE] != 0
    size = 8 if double else 4
    nb = 2 * (512 if wide else 256) // (8 * size)
    for p in range(vb.shape[0]):
        va = address(vb) + p * vb.shape[1] * size
        ua = a[_U] + p * a[_U + 1] * size
        ma = address(mb) + p * mb.shape[1] * size
        for cb in range(-(-co // nb)):
            P._block(double, wide, va, ua, ma, m, co, ch, ch, cb, tail)


@njit(nogil=True)
def _block(args, jb):  # type: ignore[no-untyped-def]
    """Block `jb` of the job (`_rows`), for the dtype its args say."""
    a = numba.carray(_i64(args), (_ARGS,))
    if a[_DOUBLE]:
        _rows(a, jb, _f64(a[_X]), _f64(a[_Y]), _f64(a[_BH]), _f64(a[_BW]), _f64(a[_AH]),
              _f64(a[_AW]), _f64(a[_BIAS]), _f64(a[_SCRATCH]))
    else:
        _rows(a, jb, _f32(a[_X]), _f32(a[_Y]), _f32(a[_BH]), _f32(a[_BW]), _f32(a[_AH]),
              _f32(a[_AW]), _f32(a[_BIAS]), _f32(a[_SCRATCH]))


# Transformed filters packed for the microkernel, by the transformed filter (`winograd._FILTERS` keeps the
# same array while the filter's values are unchanged); each entry holds its key array, so its id is not reused.
_PACKED: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_PACKED_SIZE = 8
_PACKED_LOCK = threading.Lock()
# Blocks of one image's rows of tiles: one per core, each keeping its own tiles in its cache.
BLOCKS_PER_IMAGE = 2


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
    with _PACKED_LOCK:  # (sessions may run in several threads)
        _PACKED[id(u)] = (u, out)
        while len(_PACKED) > _PACKED_SIZE:
            _PACKED.popitem(last=False)
    return out


def _template(p: Any, up: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The job's args that stay the same for a transform plan and a packed filter (flags, the transform
    matrices, the packed filter, the tile geometry; zeros elsewhere), made once: the address of an array
    costs ~1 us in Python, and a batch-1 conv passes thirteen."""
    key = (id(p), id(up), dtype)
    hit = _TEMPLATES.get(key)
    if hit is not None and hit[0] is p and hit[1] is up:
        return hit[2]
    t = np.zeros(_ARGS, np.int64)
    t[_DOUBLE], t[_WIDE] = int(dtype == np.float64), int(H.HELPERS.ctrl[P.WIDE])
    for at, m in ((_BH, p.bt_h), (_BW, p.bt_w), (_AH, p.at_h), (_AW, p.at_w)):
        t[at:at + 3] = (m.ctypes.data, *m.shape)
    t[_U], t[_U + 1] = up.ctypes.data, up.size // p.points
    t[_MH], t[_MW], t[_TH], t[_TW] = p.mh, p.mw, p.th, p.tw
    t[_GROUP] = max(1, p.th // BLOCKS_PER_IMAGE)
    with _PACKED_LOCK:
        _TEMPLATES[key] = (p, up, t)  # (holding p and up: their ids are not reused while the entry lives)
        while len(_TEMPLATES) > _PACKED_SIZE:
            _TEMPLATES.popitem(last=False)
    return t


_TEMPLATES: OrderedDict[tuple, tuple[Any, np.ndarray, np.ndarray]] = OrderedDict()


@njit(nogil=True)
def _post(fn, template, x, out, bias, flat, per_block, has_bias, relu, pt, pl, blocks, ctrl):  # type: ignore[no-untyped-def]
    """The job's args (`template` and this call's arrays and flags) and the job itself (`packed_gemm.run_blocks`),
    in one compiled call: from Python, an array's address alone cost ~1 us."""
    a = template.copy()
    a[_X], a[_X + 1], a[_X + 2], a[_X + 3], a[_X + 4] = address(x), x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    a[_Y], a[_Y + 1], a[_Y + 2], a[_Y + 3], a[_Y + 4] = address(out), out.shape[0], out.shape[1], out.shape[2], \
        out.shape[3]
    a[_BIAS], a[_BIAS + 1] = address(bias), bias.shape[0]
    a[_SCRATCH], a[_SCRATCH + 1] = address(flat), per_block
    a[_HAS_BIAS], a[_RELU], a[_PT], a[_PL] = has_bias, relu, pt, pl
    P.run_blocks(fn, address(a), blocks, ctrl)


def forward(x: np.ndarray, u: np.ndarray, p: Any, g: Any, out: np.ndarray, scratch: Any, bias: np.ndarray,
            has_bias: bool, relu: bool) -> np.ndarray:
    """out = the conv of all of x (one chunk) as one job (`_rows`, shared with the helpers while they are
    armed: `packed_helpers.serving`); `scratch(n, dtype)` gives each block's buffers (its transformed tiles V
    and M and its transforms' scratch), u is the transformed filter."""
    n, c, o = x.shape[0], x.shape[3], u.shape[2]
    template = _template(p, _packed(u), x.dtype)
    group = int(template[_GROUP])
    blocks = n * -(-p.th // group)
    per_block = block_scratch(p, c, o, group)
    flat = scratch(blocks * per_block, x.dtype)
    _post(H.block_function(_block), template, x, out, bias, flat, per_block, int(has_bias), int(relu), g.pt, g.pl,
          blocks, H.HELPERS.ctrl)
    return out
