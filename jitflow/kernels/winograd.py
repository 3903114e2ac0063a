"""Winograd convolution F(m x m', r x r') for stride-1, undilated convs with 2..5-tap windows (NHWC).

A tile of m x m' outputs needs an (m + r - 1) x (m' + r' - 1) tile of the input. In the transformed
domain the window sum of each tile becomes one multiply per tile point and channel pair:

    y_tile = A_h^T [ sum_c (G_h g G_w^T)[c, o] * (B_h^T d_c B_w) ] A_w

so per tile point p the work is one GEMM (tiles x C) @ (C x O), a x a' GEMMs in all instead of
im2col's one GEMM with K = r r' C. W7's second layer (5x5, 14x14 outputs) runs F(4x4, 5x5) with
8x8 tiles (4x4 tiles cover 16x16 outputs): 64 * 16 / (196 * 25) = 0.21 of the multiply-adds, and no
patch matrix (one thread, batch 128: 14.6 ms against 33.6 ms for im2col + GEMM; F(2x2, 5x5) 18 ms).

Gradients go through the same transforms, exactly (the chain rule through linear maps):
- input gradient: either the forward conv of dy with the filter rotated by 180 degrees and its
  channels swapped, padded by r - 1 - pad, or the adjoint of the forward's three maps on the forward's
  own tiles (dV[p] = (A dy_tile A^T)[p] @ U[p]^T, then dx += B dV B^T per tile), whichever has fewer
  tiles: the same for SAME convs, 4 against 9 for dcgan's VALID 12x12 -> 8x8 layer;
- filter gradient: per tile point, dU[p] = V[p]^T @ (A_h dy_tile A_w^T)[p] summed over tiles (a GEMM
  with K = tiles), then dg = G_h^T dU G_w.

The transforms mix a tile's values with coefficients up to ~20, so an inf or NaN in one input element
would spread to outputs whose windows do not hold it (inf - inf): inputs that are not all finite, or
so large that the transforms could overflow, take the im2col path instead (`safe`).

Every driver walks the batch in chunks of images whose transformed tiles (V and M) stay in cache;
chunks go to one thread per core (`threads.run_chunks`) when there are enough of them; a batch of one
chunk (batch-1 inference) runs its forward as blocks the packed GEMMs' helpers share (`winograd_jobs`). The transforms
work on whole rows of tiles as linear combinations of rows (`lincomb`: a block of outputs stays in vector
registers through all the taps): the row pass over contiguous runs of input rows, the column pass per tile
with all of its points at once. W7i's second conv: 11.7 + 15.7 us for the two transforms, against 30.6 +
31.5 as one multiply-add pass over a row per coefficient.
"""
from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np

from jitflow.codegen.cache.library import njit
from jitflow.kernels import read_only, threads
from jitflow.kernels.lincomb import address, lincomb

# The kernels compile in `lincomb`'s: their cached code must follow its edits.
KERNEL_DEPENDENCIES = ("jitflow.kernels.lincomb", "jitflow.kernels.llvm_kit")

# Largest input tile side (interpolation points 0, +-1, +-2, +-1/2 and infinity).
TILE = 8
# Largest output tile side (float32 error grows with it).
MAX_OUT = 4
# Largest window side taken (the tested range; 6- and 7-tap windows would fit 8x8 tiles with 2-3 outputs).
MAX_TAPS = 5
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)
# Bytes of transformed tiles (V and M) per chunk when every core takes chunks on its own.
WORKER_CHUNK_BYTES = 3 << 20


class Plan(NamedTuple):
    """One conv's tiling: output tile (mh, mw), tiles per image (th, tw), transform matrices (float64)."""

    mh: int
    mw: int
    th: int
    tw: int
    bt_h: np.ndarray  # (ah, ah): input tile -> transformed (B^T)
    bt_w: np.ndarray
    g_h: np.ndarray  # (ah, kh): filter -> transformed (G)
    g_w: np.ndarray
    at_h: np.ndarray  # (mh, ah): transformed -> output tile (A^T)
    at_w: np.ndarray

    @property
    def points(self) -> int:
        return self.bt_h.shape[0] * self.bt_w.shape[0]


@functools.lru_cache(maxsize=16)
def matrices(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) of the 1-D F(m, r) (Cook-Toom, points 0, +-1, +-2, ... and infinity), such that
    A^T ((G g) * (B^T d)) = [sum_j g[j] d[i + j] for i < m] for every g (r taps) and d (m + r - 1)."""
    a = m + r - 1
    pts = _POINTS[:a - 1]
    at, g = np.zeros((m, a)), np.zeros((a, r))
    for k, p in enumerate(pts):
        at[:, k] = [p ** i for i in range(m)]
        g[k] = [p ** j / math.prod(p - q for q in pts if q != p) for j in range(r)]
    at[m - 1, a - 1] = g[a - 1, r - 1] = 1.0
    # B^T, column l: sum_k A^T[i, k] G[k, j] B^T[k, l] = [l == i + j] (consistent, so solved exactly)
    rows = np.array([at[i] * g[:, j] for i in range(m) for j in range(r)])
    rhs = np.array([[float(ll == i + j) for ll in range(a)] for i in range(m) for j in range(r)])
    bt = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    bt[np.abs(bt) < 1e-9] = 0.0  # exact zeros: the kernels skip them
    assert np.abs(rows @ bt - rhs).max() < 1e-9
    for arr in (at, g, bt):
        arr.flags.writeable = False
    return at, g, bt


def _tile(o: int, r: int) -> int:
    """Output tile side for `o` outputs of an `r`-tap window: fewest transformed points in all, tiles of
    at most MAX_OUT outputs per side (float32 error grows with the tile: F(4, 5) is ~5e-6 of the output's
    scale on W7's second layer, im2col's ~6e-7)."""
    return min(range(2, min(MAX_OUT, TILE - r + 1) + 1), key=lambda m: (-(-o // m) * (m + r - 1), -m))


def applies(c: int, o: int, g: Any) -> bool:
    """True when a conv (geometry `g`, a `conv.ConvGeom`; c input and o output channels) runs here:
    stride 1, no dilation, 2..5 taps per side, and enough channels for the per-point GEMMs to pay."""
    return g.sh == g.sw == 1 and g.dh == g.dw == 1 and 2 <= g.kh <= MAX_TAPS and 2 <= g.kw <= MAX_TAPS \
        and min(c, o) >= 8


@functools.lru_cache(maxsize=64)
def plan(kh: int, kw: int, oh: int, ow: int) -> Plan:
    """The tiling of a conv with a kh x kw window and oh x ow outputs."""
    mh, mw = _tile(oh, kh), _tile(ow, kw)
    at_h, g_h, bt_h = matrices(mh, kh)
    at_w, g_w, bt_w = matrices(mw, kw)
    return Plan(mh, mw, -(-oh // mh), -(-ow // mw), bt_h, bt_w, g_h, g_w, at_h, at_w)


def label(kh: int, kw: int, oh: int, ow: int) -> str:
    """How `explain` names the method: "winograd F(2x2,5x5)" (output tile, window)."""
    p = plan(kh, kw, oh, ow)
    return f"winograd F({p.mh}x{p.mw},{kh}x{kw})"


def safe(*arrays: np.ndarray) -> bool:
    """True when every element is finite and small enough that the transforms cannot overflow."""
    return all(_out_of_range(a.reshape(-1), np.finfo(a.dtype).max / 1e6) == 0 for a in arrays)


@njit(nogil=True)
def _out_of_range(a, limit):  # type: ignore[no-untyped-def]
    """How many |a[i]| > limit or NaN: a branch-free count that vectorizes (0.05 ms per 800k floats)."""
    bad = 0
    for i in range(a.shape[0]):
        bad += 0 if abs(a[i]) <= limit else 1
    return bad


@njit(nogil=True)
def _add(dst, src):  # type: ignore[no-untyped-def]
    for k in range(dst.shape[0]):
        dst[k] += src[k]


@njit(nogil=True)
def _strip_rows(x, n, y0, x0, bh, rows, wide):  # type: ignore[no-untyped-def]
    """rows[p, col * C + c] = sum_i bh[p, i] x[n, y0 + i, x0 + col, c] (0 outside the image): the first
    pass of a whole row of tiles, over the contiguous runs of input rows (`lincomb`; x C-contiguous)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    c0, c1 = max(0, x0), min(w, x0 + rows.shape[1] // ch)
    i0, i1 = max(0, -y0), min(bh.shape[1], h - y0)
    if c1 <= c0 or i1 <= i0:
        rows[:] = 0
        return
    for p in range(rows.shape[0]):  # the columns outside the image
        r = rows[p]
        for e in range((c0 - x0) * ch):
            r[e] = 0
        for e in range((c1 - x0) * ch, r.shape[0]):
            r[e] = 0
    size = x.itemsize
    src = address(x) + ((n * h + y0 + i0) * w + c0) * ch * size
    lincomb(x, wide, address(rows) + (c0 - x0) * ch * size, rows.shape[1], src, w * ch, address(bh) + i0 * size,
            bh.shape[1], i1 - i0, (c1 - c0) * ch, bh.shape[0])


@njit(nogil=True)
def _tiles_in_images(x, n0, pt, pl, mh, mw, th, tw, bh, bw, v, wide, lo, hi):  # type: ignore[no-untyped-def]
    """v[p * aw + q, t * C + c] = sum_ij bh[p, i] bw[q, j] x[n, ti*mh - pt + i, tj*mw - pl + j, c] (0 outside)
    for tile t = ((n - n0) * th + ti) * tw + tj of images n0..n1 (x C-contiguous), a row of tiles at a time
    (`tiles_in_row`)."""
    ch = x.shape[3]
    k = tw - 1 + (bw.shape[1] + mw - 1) // mw  # columns per phase
    for b in range(lo, hi):
        rows = np.empty((bh.shape[0], k * mw * ch), v.dtype)
        for ti in range(th):
            tiles_in_row(x, n0, b, ti, pt, pl, mh, mw, th, tw, bh, bw, v, rows, wide, 0)


@njit(nogil=True)
def tiles_in_row(x, n0, b, ti, pt, pl, mh, mw, th, tw, bh, bw, v, rows, wide, first):  # type: ignore[no-untyped-def]
    """Row `ti` of image n0 + b's tiles into v (`_tiles_in_images`; `rows`: its scratch), tile t at column
    (t - first) * C of v: the row pass over whole input rows (`_strip_rows`), then per transformed row and
    tile the column pass, tap j of tile tj being column tj * mw + j of the row pass (`lincomb`, all of a
    tile's points at once)."""
    ch = x.shape[3]
    aw, rw = bw.shape
    _strip_rows(x, n0 + b, ti * mh - pt, -pl, bh, rows, wide)
    t0 = (b * th + ti) * tw - first
    size, ra, va, ba = x.itemsize, address(rows), address(v), address(bw)
    for p in range(bh.shape[0]):
        for tj in range(tw):
            lincomb(x, wide, va + (p * aw * v.shape[1] + (t0 + tj) * ch) * size, v.shape[1],
                    ra + (p * rows.shape[1] + tj * mw * ch) * size, ch, ba, rw, rw, ch, aw)


@njit(nogil=True)
def _emit(dst, src, bias, has_bias, relu):  # type: ignore[no-untyped-def]
    """dst = src (+ bias) (then max(., 0)): the conv's epilogue on one output pixel."""
    for c in range(dst.shape[0]):
        v = src[c] + bias[c] if has_bias else src[c]
        dst[c] = 0 if relu and v < 0 else v  # np.maximum(v, 0): NaN stays NaN


@njit(nogil=True)
def _col_pass(cols, mm, start, run, lw, wide):  # type: ignore[no-untyped-def]
    """cols[p, j * run:(j + 1) * run] = sum_q lw[j, q] mm[p * aw + q, start:start + run]: the column pass of a
    row of tiles back from the transformed domain (`lincomb`, all taps j of a point at once)."""
    aw = lw.shape[1]
    size, ca, ma = mm.itemsize, address(cols), address(mm)
    for p in range(cols.shape[0]):
        lincomb(mm, wide, ca + p * cols.shape[1] * size, run, ma + (p * aw * mm.shape[1] + start) * size,
                mm.shape[1], address(lw), aw, aw, run, lw.shape[0])


@njit(nogil=True)
def _tiles_out_images(mm, n0, mh, mw, th, tw, at_h, at_w, bias, has_bias, relu, y, wide, lo, hi):  # type: ignore[no-untyped-def]
    """y[n, ti*mh + i, tj*mw + j, o] = sum_pq at_h[i, p] at_w[j, q] mm[p * aw + q, t * O + o] (+ bias, ReLU)
    for the outputs inside y, a row of tiles at a time (`tiles_out_row`)."""
    run = tw * y.shape[3]
    for b in range(lo, hi):
        cols = np.empty((at_h.shape[1], mw * run), y.dtype)  # [p, j, tj, o]
        out = np.empty((mh, mw * run), y.dtype)  # [i, j, tj, o]
        for ti in range(th):
            tiles_out_row(mm, n0, b, ti, mh, mw, th, tw, at_h, at_w, bias, has_bias, relu, y, cols, out, wide, 0)


@njit(nogil=True)
def tiles_out_row(mm, n0, b, ti, mh, mw, th, tw, at_h, at_w, bias, has_bias, relu, y, cols, out, wide,  # type: ignore[no-untyped-def]
                  first):
    """Row `ti` of image n0 + b's output tiles (`_tiles_out_images`; `cols`, `out`: its scratch), tile t at
    column (t - first) * O of mm: the column pass (`_col_pass`), the row pass (`lincomb`), then the epilogue
    while writing each pixel."""
    oh, ow, co = y.shape[1], y.shape[2], y.shape[3]
    ah = at_h.shape[1]
    run = tw * co
    _col_pass(cols, mm, ((b * th + ti) * tw - first) * co, run, at_w, wide)
    rows = min(mh, oh - ti * mh)
    lincomb(y, wide, address(out), out.shape[1], address(cols), cols.shape[1], address(at_h), ah, ah, mw * run, rows)
    for i in range(rows):
        for tj in range(tw):
            for j in range(min(mw, ow - tj * mw)):
                at = (j * tw + tj) * co
                _emit(y[n0 + b, ti * mh + i, tj * mw + j], out[i, at:at + co], bias, has_bias, relu)


@njit(nogil=True)
def _tiles_add_images(dv, n0, pt, pl, mh, mw, th, tw, bht, bwt, dx, wide, lo, hi):  # type: ignore[no-untyped-def]
    """dx[n, ti*mh - pt + i, tj*mw - pl + j, c] += sum_pq bht[i, p] bwt[j, q] dv[p * aw + q, t * C + c] for the
    positions inside dx: the adjoint of `_tiles_in` (tiles overlap by r - 1, so each image's tiles are
    added one after the other on one thread). Per row of tiles: the column pass, the row pass, the adds.
    `bht`, `bwt` are B_h and B_w (B^T's transposes), C-contiguous like the output transform's matrices."""
    h, w, ch = dx.shape[1], dx.shape[2], dx.shape[3]
    ih, ah = bht.shape
    iw = bwt.shape[0]
    run = tw * ch
    for b in range(lo, hi):
        cols = np.empty((ah, iw * run), dx.dtype)  # [p, j, tj, c]
        rows = np.empty((ih, iw * run), dx.dtype)  # [i, j, tj, c]
        for ti in range(th):
            _col_pass(cols, dv, (b * th + ti) * tw * ch, run, bwt, wide)
            lincomb(dx, wide, address(rows), rows.shape[1], address(cols), cols.shape[1], address(bht), ah, ah,
                    iw * run, ih)
            for i in range(ih):
                y = ti * mh - pt + i
                if y < 0 or y >= h:
                    continue
                for tj in range(tw):
                    for j in range(iw):
                        xx = tj * mw - pl + j
                        if 0 <= xx < w:
                            at = (j * tw + tj) * ch
                            _add(dx[n0 + b, y, xx], rows[i, at:at + ch])


def _wide() -> bool:
    """The transforms' vector width (`lincomb`): 512 bits where the host has them."""
    from jitflow.kernels.packed_gemm import VECTOR_BITS  # (its dispatchers start Numba: not at import)

    return VECTOR_BITS == 512


def _tiles_in(x: np.ndarray, n0: int, n1: int, pt: int, pl: int, mh: int, mw: int, th: int, tw: int,
              bh: np.ndarray, bw: np.ndarray, v: np.ndarray) -> None:
    """The input transform of images [n0, n1) into v (`_tiles_in_images`), on the step's threads."""
    threads.parallel_range(_tiles_in_images, n1 - n0, x, n0, pt, pl, mh, mw, th, tw, bh, bw, v, _wide())


def _tiles_out(mm: np.ndarray, n0: int, n1: int, mh: int, mw: int, th: int, tw: int, at_h: np.ndarray,
               at_w: np.ndarray, bias: np.ndarray, has_bias: bool, relu: bool, y: np.ndarray) -> None:
    """The output transform and epilogue of images [n0, n1) (`_tiles_out_images`)."""
    threads.parallel_range(_tiles_out_images, n1 - n0, mm, n0, mh, mw, th, tw, at_h, at_w, bias, has_bias, relu, y,
                           _wide())


def _tiles_add(dv: np.ndarray, n0: int, n1: int, pt: int, pl: int, mh: int, mw: int, th: int, tw: int,
               bht: np.ndarray, bwt: np.ndarray, dx: np.ndarray) -> None:
    """dx[n0:n1] += the adjoint input transform of dv (`_tiles_add_images`)."""
    threads.parallel_range(_tiles_add_images, n1 - n0, dv, n0, pt, pl, mh, mw, th, tw, bht, bwt, dx, _wide())


@functools.lru_cache(maxsize=64)
def _typed(kh: int, kw: int, oh: int, ow: int, dt: np.dtype) -> Plan:
    """`plan(...)` with its matrices in `dt` (cached: a batch-1 call is ~100 us, the casts were ~10)."""
    p = plan(kh, kw, oh, ow)
    return Plan(p.mh, p.mw, p.th, p.tw, *(np.ascontiguousarray(m, dt) for m in p[4:]))


def _filter_tf(p: Plan, f: np.ndarray) -> np.ndarray:
    """U[p * aw + q] = (G_h f G_w^T)[p, q]: (points, C, O) for the per-point GEMMs."""
    kh, kw, c, o = f.shape
    return _sandwich(p.g_h, p.g_w, f.reshape(kh, kw, c * o)).reshape(-1, c, o)


class _FilterCache:
    """Transformed filters of recent calls, reused while the filter's values are unchanged (inference: W7i's
    batch-1 conv2 spent ~50 of its ~170 us transforming the same filter every run). A hit costs a bitwise
    comparison with a copy (~4 us for 51k floats); filters over MAX_ELEMENTS are not kept. A filter that
    is not `safe` for the transforms is cached as None: whether it is depends on its values only."""

    SIZE = 4
    MAX_ELEMENTS = 1 << 18

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, kind: str, p: Plan, f: np.ndarray, source: np.ndarray | None = None) -> np.ndarray | None:
        """The transform of `f` for plan `p` (made now, or for equal values before); None when `f` is not
        `safe` (the caller takes another method). `source`: the array `f` was made from (a rotated
        filter's original), whose values key the entry instead."""
        if source is None:
            source = f
        if f.size > self.MAX_ELEMENTS:
            return _filter_tf(p, f) if safe(f) else None
        key = (kind, source.__array_interface__["data"][0], source.shape, source.dtype.str, p.mh, p.mw,
               p.bt_h.shape[0], p.bt_w.shape[0])
        with self.lock:
            hit = self.entries.get(key)
        bits = np.ascontiguousarray(source).reshape(-1).view(_BITS[source.dtype.itemsize])
        if hit is not None and _same_bits(hit[0], bits):
            return hit[1]
        u = _filter_tf(p, f) if safe(f) else None
        with self.lock:
            self.entries[key] = (bits.copy(), u)
            self.entries.move_to_end(key)
            while len(self.entries) > self.SIZE:
                self.entries.popitem(last=False)
        return u


# Same-size unsigned integers: filters compare by their bits (a NaN equals itself, -0.0 differs from 0.0).
_BITS: dict[int, np.dtype] = {4: np.dtype(np.uint32), 8: np.dtype(np.uint64)}


@njit(nogil=True)
def _same_bits(a, b):  # type: ignore[no-untyped-def]
    """a == b everywhere (equal sizes): OR of XORs per block of 1024, which vectorizes, with an exit per block."""
    n = a.shape[0]
    if b.shape[0] != n:
        return False
    for lo in range(0, n, 1024):
        av, bv = a[lo:lo + 1024], b[lo:lo + 1024]  # slices: no negative-index checks in the loop
        d = av[0] ^ av[0]
        for i in range(av.shape[0]):
            d |= av[i] ^ bv[i]
        if d != 0:
            return False
    return True


_FILTERS = _FilterCache()


def _sandwich(left: np.ndarray, right: np.ndarray, t: np.ndarray) -> np.ndarray:
    """out[p, q] = sum_ae left[p, a] right[q, e] t[a, e] for t (A, E, K): 2-D GEMMs on one OpenBLAS thread
    (two threads took 6-8 ms for the 8x5 @ 5x40960 GEMM of a 5x5x64x128 filter on a loaded machine, one
    0.2 ms; einsum 0.46 ms)."""
    with threads.blas_threads_for(0):
        rows = (left @ t.reshape(t.shape[0], -1)).reshape(left.shape[0], t.shape[1], -1)
        out = np.empty((left.shape[0], right.shape[0], t.shape[2]), t.dtype)
        for i in range(left.shape[0]):
            np.matmul(right, rows[i], out=out[i])
    return out


def _chunking(n: int, per_image: int) -> tuple[int, int]:
    """(images per chunk, worker threads) for a batch of n images of `per_image` transformed bytes."""
    workers = threads.chunk_workers(n * per_image // 4)
    step = max(1, min(n, WORKER_CHUNK_BYTES // max(per_image, 1)))
    if workers > 1 and -(-n // step) >= 2 * workers:
        return step, workers
    return step, 1


def _each(n: int, step: int, workers: int, work: Any) -> None:
    if workers > 1:
        threads.run_chunks(n, step, workers, work)
        return
    for n0 in range(0, n, step):
        work(0, n0, min(n, n0 + step))


def _buffers(scratch: Any, workers: int, pts: int, tiles: int, widths: tuple[int, ...],
             dt: np.dtype) -> list[list[np.ndarray]]:
    """Per worker, one (pts, tiles * width) buffer per width, carved from one scratch allocation."""
    sizes = [pts * tiles * wd for wd in widths]
    flat = scratch(workers * sum(sizes), dt)
    out, at = [], 0
    for _ in range(workers):
        bufs = []
        for wd, sz in zip(widths, sizes):
            bufs.append(flat[at:at + sz].reshape(pts, tiles * wd))
            at += sz
        out.append(bufs)
    return out


def one_chunk(n: int, c: int, o: int, g: Any, itemsize: int) -> bool:
    """True when `forward` runs a batch of n images as one chunk, its three parts each split into blocks
    for the packed GEMMs' helpers (`winograd_jobs`): the small batches that leave batch chunks on one core."""
    p = plan(g.kh, g.kw, g.oh, g.ow)
    step, workers = _chunking(n, p.points * p.th * p.tw * (c + o) * itemsize)
    return workers == 1 and step >= n and n * p.th >= 2


def forward(x: np.ndarray, f: np.ndarray, g: Any, out: np.ndarray, scratch: Any,
            bias: np.ndarray | None = None, relu: bool = False,
            rotated: np.ndarray | None = None) -> np.ndarray | None:
    """out (N, OH, OW, O) = conv2d(x, f) (+ bias, ReLU) for a geometry where `applies` holds (`rotated`:
    the filter that `f` was made from by `input_grad`, whose values key the filter-transform cache).
    None, with nothing written, when the filter is not `safe` (x must be checked by the caller)."""
    x = np.ascontiguousarray(x)  # the transforms read whole rows as flat runs
    n, c, o = x.shape[0], x.shape[3], f.shape[3]
    p = _typed(g.kh, g.kw, g.oh, g.ow, x.dtype)
    pts, per = p.points, p.th * p.tw
    u = _FILTERS.get("forward" if rotated is None else "rotated", p, f, rotated)
    if u is None:
        return None
    b = read_only(bias if bias is not None else np.zeros(1, x.dtype))
    if one_chunk(n, c, o, g, x.dtype.itemsize):
        from jitflow.kernels import winograd_jobs

        return winograd_jobs.forward(x, u, p, g, out, scratch, b, bias is not None, relu)
    step, workers = _chunking(n, pts * per * (c + o) * x.dtype.itemsize)
    bufs = _buffers(scratch, workers, pts, step * per, (c, o), x.dtype)

    def work(w: int, n0: int, n1: int) -> None:
        v, mm = bufs[w]
        _tiles_in(x, n0, n1, g.pt, g.pl, p.mh, p.mw, p.th, p.tw, p.bt_h, p.bt_w, v)
        tc = (n1 - n0) * per
        np.matmul(v.reshape(pts, -1, c)[:, :tc], u, out=mm.reshape(pts, -1, o)[:, :tc])
        _tiles_out(mm, n0, n1, p.mh, p.mw, p.th, p.tw, p.at_h, p.at_w, b, bias is not None, relu,
                   out)

    _each(n, step, workers, work)
    return out


def input_grad(dy: np.ndarray, f: np.ndarray, g: Any, dx: np.ndarray, scratch: Any) -> np.ndarray | None:
    """dx (N, H, W, C) of conv2d, by whichever of two exact forms has fewer tiles (`full_conv_tiles`); None
    when the filter is not `safe` (dy must be checked by the caller)."""
    p = plan(g.kh, g.kw, g.oh, g.ow)
    if p.th * p.tw < full_conv_tiles(g, dx.shape[1], dx.shape[2]):
        return _input_grad_adjoint(dy, f, g, dx, scratch)
    fr = np.ascontiguousarray(f[::-1, ::-1].transpose(0, 1, 3, 2))
    h, w = dx.shape[1], dx.shape[2]
    gr = type(g)(g.kh, g.kw, 1, 1, 1, 1, g.kh - 1 - g.pt, g.kw - 1 - g.pl, h, w)
    return forward(dy, fr, gr, dx, scratch, rotated=f)


def full_conv_tiles(g: Any, h: int, w: int) -> int:
    """Tiles per image of the input gradient as a forward conv of dy with the rotated filter (h x w outputs).
    The adjoint form has the forward conv's tiles: fewer where padding is less than r - 1 (a VALID conv
    of 12x12 inputs to 8x8 outputs, dcgan's second layer: 4 tiles against 9), the same for SAME convs."""
    pr = plan(g.kh, g.kw, h, w)
    return pr.th * pr.tw


def _input_grad_adjoint(dy: np.ndarray, f: np.ndarray, g: Any, dx: np.ndarray,
                        scratch: Any) -> np.ndarray | None:
    """dx by the transposes of the forward's three linear maps, on the forward's tiles: per tile point,
    dV[p] = (A dy_tile A^T)[p] @ U[p]^T, then dx += B dV B^T per tile (`_tiles_add`). U is the forward
    pass's transformed filter (shared through the filter cache)."""
    dy = np.ascontiguousarray(dy)
    n, c, o = dx.shape[0], dx.shape[3], dy.shape[3]
    p = _typed(g.kh, g.kw, g.oh, g.ow, dy.dtype)
    pts, per = p.points, p.th * p.tw
    uf = _FILTERS.get("forward", p, f)
    if uf is None:
        return None
    u = uf.transpose(0, 2, 1)
    at_ht, at_wt = np.ascontiguousarray(p.at_h.T), np.ascontiguousarray(p.at_w.T)
    bht, bwt = np.ascontiguousarray(p.bt_h.T), np.ascontiguousarray(p.bt_w.T)
    step, workers = _chunking(n, pts * per * (c + o) * dy.dtype.itemsize)
    bufs = _buffers(scratch, workers, pts, step * per, (o, c), dy.dtype)

    def work(w: int, n0: int, n1: int) -> None:
        dm, dv = bufs[w]
        _tiles_in(dy, n0, n1, 0, 0, p.mh, p.mw, p.th, p.tw, at_ht, at_wt, dm)
        tc = (n1 - n0) * per
        np.matmul(dm.reshape(pts, -1, o)[:, :tc], u, out=dv.reshape(pts, -1, c)[:, :tc])
        dx[n0:n1] = 0
        _tiles_add(dv, n0, n1, g.pt, g.pl, p.mh, p.mw, p.th, p.tw, bht, bwt, dx)

    _each(n, step, workers, work)
    return dx


def filter_grad(x: np.ndarray, dy: np.ndarray, g: Any, df: np.ndarray, scratch: Any) -> np.ndarray:
    """df (KH, KW, C, O) of conv2d: per tile point, V^T @ (A dy A^T) summed over tiles, then G^T . G."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    n, c, o = x.shape[0], x.shape[3], dy.shape[3]
    p = _typed(g.kh, g.kw, g.oh, g.ow, x.dtype)
    pts, per = p.points, p.th * p.tw
    at_ht, at_wt = np.ascontiguousarray(p.at_h.T), np.ascontiguousarray(p.at_w.T)
    step, workers = _chunking(n, pts * per * (c + o) * x.dtype.itemsize)
    bufs = _buffers(scratch, workers, pts, step * per, (c, o), x.dtype)
    sums = np.zeros((workers, 2, pts, c, o), x.dtype)  # per thread: its running sum, the chunk's product

    def work(w: int, n0: int, n1: int) -> None:
        v, dm = bufs[w]
        _tiles_in(x, n0, n1, g.pt, g.pl, p.mh, p.mw, p.th, p.tw, p.bt_h, p.bt_w, v)
        _tiles_in(dy, n0, n1, 0, 0, p.mh, p.mw, p.th, p.tw, at_ht, at_wt, dm)
        tc = (n1 - n0) * per
        np.matmul(v.reshape(pts, -1, c)[:, :tc].transpose(0, 2, 1), dm.reshape(pts, -1, o)[:, :tc], out=sums[w, 1])
        sums[w, 0] += sums[w, 1]

    with threads.reduction_gemms(workers):
        _each(n, step, workers, work)
    du = sums[:, 0].sum(axis=0).reshape(p.bt_h.shape[0], p.bt_w.shape[0], c * o)
    df.reshape(g.kh, g.kw, c * o)[...] = _sandwich(np.ascontiguousarray(p.g_h.T), np.ascontiguousarray(p.g_w.T), du)
    return df
