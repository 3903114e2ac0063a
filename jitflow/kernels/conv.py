"""Convolution as BLAS GEMM over a tiled im2col (NHWC, any stride, dilation and padding).

`method` picks per shape (and `explain` shows it): a 1x1 stride-1 conv is a plain GEMM; a stride-1
conv with at most `direct.MAX_CHANNELS` input channels runs its forward pass and filter gradient
through the direct kernels of `direct.py` (W7's first layer: forward 2x, filter gradient 3-5x faster
than im2col + GEMM, whose K = 25 is far from what BLAS runs well); everything else is im2col + GEMM.

The patch matrix of a whole batch is large (80 MB for W7's second layer), so every driver walks the
batch in chunks of images whose patch rows fit in a few MB: a Numba kernel writes the
chunk's patches, and the GEMM that consumes them reads them back from cache instead of memory.

Geometry arguments are plain ints: kernel (kh, kw), strides (sh, sw), dilations (dh, dw), the padding
before the first row and column (pt, pl), and the output size (oh, ow).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jitflow.codegen.cache.library import njit
from jitflow.kernels import direct, read_only, threads, winograd

# Bytes of patch rows per chunk. Measured on W7's shapes (bench/README.md): on an idle machine 2-16 MB
# are within noise of each other and ahead of one whole-batch buffer (80 MB for the second layer); on a
# loaded one every chunk's two parallel regions cost a barrier wait, so the largest of them wins.
CHUNK_BYTES = 16 << 20
# Bytes of patch rows per chunk when every core takes chunks on its own (`threads.run_chunks`): the chunk
# stays in the core's own L2 (2 MB here) between im2col and GEMM. W7's second conv forward, loaded
# machine: 24 ms with 2-image chunks (1.2 MB), 33 ms with 4, 37 ms with 8, 40 ms one region per 16 MB.
WORKER_CHUNK_BYTES = 3 << 19


class ConvGeom(NamedTuple):
    """Window geometry of one 2-D convolution over an NHWC input."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    oh: int
    ow: int


@njit(nogil=True)
def _im2col_rows(x, n0, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, cols, lo, hi):  # type: ignore[no-untyped-def]
    """cols[(b*oh + i)*ow + j, (a*kw + e)*C + c] = x[n0 + b, i*sh - pt + a*dh, j*sw - pl + e*dw, c] (0 outside)
    for the patch rows of output rows t = b * oh + i in [lo, hi)."""
    h, w, ch = x.shape[1], x.shape[2], x.shape[3]
    for t in range(lo, hi):
        n = n0 + t // oh
        i = t % oh
        for j in range(ow):
            r = t * ow + j
            for a in range(kh):
                y = i * sh - pt + a * dh
                for e in range(kw):
                    xx = j * sw - pl + e * dw
                    base = (a * kw + e) * ch
                    if 0 <= y < h and 0 <= xx < w:
                        for c in range(ch):
                            cols[r, base + c] = x[n, y, xx, c]
                    else:
                        for c in range(ch):
                            cols[r, base + c] = 0


@njit(nogil=True)
def _col2im_images(dcols, n0, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, dx, lo, hi):  # type: ignore[no-untyped-def]
    """The adjoint of `_im2col_rows`: dx[n0 + b] += every patch entry at its input position, for b in [lo, hi)
    (one thread per image)."""
    h, w, ch = dx.shape[1], dx.shape[2], dx.shape[3]
    for b in range(lo, hi):
        n = n0 + b
        for i in range(oh):
            for j in range(ow):
                r = (b * oh + i) * ow + j
                for a in range(kh):
                    y = i * sh - pt + a * dh
                    if y < 0 or y >= h:
                        continue
                    for e in range(kw):
                        xx = j * sw - pl + e * dw
                        if xx < 0 or xx >= w:
                            continue
                        base = (a * kw + e) * ch
                        for c in range(ch):
                            dx[n, y, xx, c] += dcols[r, base + c]


@njit(nogil=True)
def _bias_act_rows(out, bias, relu, lo, hi):  # type: ignore[no-untyped-def]
    """out[r, :] = out[r, :] + bias, then max(., 0) when `relu`, for r in [lo, hi): the conv's epilogue, on a
    chunk in cache."""
    for r in range(lo, hi):
        row = out[r]
        if relu:
            for o in range(row.shape[0]):
                v = row[o] + bias[o]
                row[o] = 0 if v < 0 else v  # np.maximum(v, 0): NaN stays NaN
        else:
            for o in range(row.shape[0]):
                row[o] += bias[o]


def _im2col(x: np.ndarray, n0: int, n1: int, g: ConvGeom, cols: np.ndarray) -> None:
    """The patch rows of images [n0, n1) into `cols` (`_im2col_rows`), on the step's threads."""
    threads.parallel_range(_im2col_rows, (n1 - n0) * g.oh, x, n0, *_geom_args(g), cols)


def _col2im(dcols: np.ndarray, n0: int, n1: int, g: ConvGeom, dx: np.ndarray) -> None:
    """dx[n0:n1] += the patch gradients `dcols` at their input positions (`_col2im_images`)."""
    threads.parallel_range(_col2im_images, n1 - n0, dcols, n0, *_geom_args(g), dx)


def _bias_act(out: np.ndarray, bias: np.ndarray, relu: bool) -> None:
    """out += bias (then ReLU when `relu`), row by row (`_bias_act_rows`)."""
    threads.parallel_range(_bias_act_rows, out.shape[0], out, bias, relu)


def _is_pointwise(g: ConvGeom, hw: tuple[int, int] | None) -> bool:
    """A 1x1, stride-1, unpadded conv is a plain matmul over pixels: no patches needed. `hw`: the input's
    height and width (the output's must equal them: explicit bottom/right padding is not in `g`); None
    only for a label chosen before shapes are known."""
    return g.kh == g.kw == 1 and g.sh == g.sw == 1 and g.pt == g.pl == 0 and (hw is None or (g.oh, g.ow) == hw)


def chunk_images(n: int, g: ConvGeom, k: int, itemsize: int, chunk_bytes: int = 0) -> int:
    """Images per chunk so that one chunk's patch rows take about `chunk_bytes` (default CHUNK_BYTES)."""
    per_image = max(g.oh * g.ow * k * itemsize, 1)
    return max(1, min(n, (chunk_bytes or CHUNK_BYTES) // per_image))


def _plan_chunks(n: int, g: ConvGeom, k: int, itemsize: int, chunk: int) -> tuple[int, int]:
    """(images per chunk, threads): with enough chunks, one thread per core takes chunks as it is free
    (`threads.run_chunks`); otherwise the calling thread walks the few chunks, each kernel and GEMM on
    the cores the step was given (batch-1 inference)."""
    workers = threads.chunk_workers(n * g.oh * g.ow * k)
    small = chunk or chunk_images(n, g, k, itemsize, WORKER_CHUNK_BYTES)
    if workers > 1 and -(-n // small) >= 2 * workers:
        return small, workers
    return chunk or chunk_images(n, g, k, itemsize), 1


def _each_chunk(n: int, step: int, workers: int, work: Callable[[int, int, int], None]) -> None:
    if workers > 1:
        threads.run_chunks(n, step, workers, work)
        return
    for n0 in range(0, n, step):
        work(0, n0, min(n, n0 + step))


Alloc = Callable[[int, np.dtype], np.ndarray]


def fresh(n: int, dtype: np.dtype) -> np.ndarray:
    """An `Alloc` that allocates every time (tests; callers that run once)."""
    return np.empty(n, dtype)


def _scratch(alloc: Alloc, rows: int, k: int, dtype: np.dtype) -> np.ndarray:
    """A patch buffer from the caller (kept across runs: page faults of fresh buffers cost as much as im2col)."""
    return alloc(rows * k, dtype).reshape(rows, k)


def _geom_args(g: ConvGeom) -> tuple[int, ...]:
    return g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.oh, g.ow


def conv2d(x: np.ndarray, f: np.ndarray, g: ConvGeom, out: np.ndarray, scratch: Alloc,
           chunk: int = 0, bias: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """out[n, i, j, o] = sum over window and channels of x * f; `out` is (N, OH, OW, O), C-contiguous.

    With `bias`, each chunk's rows get `+ bias` (and ReLU when `relu`) right after their GEMM.
    """
    n, c = x.shape[0], x.shape[3]
    k = g.kh * g.kw * c
    o = f.shape[3]
    fm = f.reshape(k, o)
    out2 = out.reshape(-1, o)
    bias = None if bias is None else read_only(bias)
    if _is_pointwise(g, x.shape[1:3]):
        np.matmul(x.reshape(-1, c), fm, out=out2)
        if bias is not None:
            _bias_act(out2, bias, relu)
        return out
    step, workers = _plan_chunks(n, g, k, x.dtype.itemsize, chunk)
    rows = g.oh * g.ow
    cols = _scratch(scratch, workers * step * rows, k, x.dtype)

    def work(w: int, n0: int, n1: int) -> None:
        part = cols[w * step * rows:(w * step + n1 - n0) * rows]
        _im2col(x, n0, n1, g, part)
        dst = out2[n0 * rows:n1 * rows]
        np.matmul(part, fm, out=dst)
        if bias is not None:
            _bias_act(dst, bias, relu)

    _each_chunk(n, step, workers, work)
    return out


def conv2d_backprop_filter(x: np.ndarray, dy: np.ndarray, g: ConvGeom, df: np.ndarray, scratch: Alloc,
                           chunk: int = 0) -> np.ndarray:
    """df (KH, KW, C, O) = sum over the batch of patches^T @ dy, one chunk of images at a time."""
    n, c = x.shape[0], x.shape[3]
    k = g.kh * g.kw * c
    o = dy.shape[3]
    df2 = df.reshape(k, o)
    dy2 = dy.reshape(-1, o)
    if _is_pointwise(g, x.shape[1:3]):
        np.matmul(x.reshape(-1, c).T, dy2, out=df2)
        return df
    step, workers = _plan_chunks(n, g, k, x.dtype.itemsize, chunk)
    rows = g.oh * g.ow
    cols = _scratch(scratch, workers * step * rows, k, x.dtype)
    sums = np.zeros((workers, 2, k, o), df.dtype)  # per thread: its running sum, the chunk's product

    def work(w: int, n0: int, n1: int) -> None:
        part = cols[w * step * rows:(w * step + n1 - n0) * rows]
        _im2col(x, n0, n1, g, part)
        np.matmul(part.T, dy2[n0 * rows:n1 * rows], out=sums[w, 1])
        sums[w, 0] += sums[w, 1]

    with threads.reduction_gemms(workers):
        _each_chunk(n, step, workers, work)
    np.sum(sums[:, 0], axis=0, out=df2)
    return df


def conv2d_backprop_input(dy: np.ndarray, f: np.ndarray, g: ConvGeom, dx: np.ndarray, scratch: Alloc,
                          chunk: int = 0) -> np.ndarray:
    """dx (N, H, W, C): each chunk's patch gradients dy @ f^T, scattered back by `_col2im`."""
    n, c = dx.shape[0], dx.shape[3]
    k = g.kh * g.kw * c
    o = dy.shape[3]
    fm = f.reshape(k, o)
    dy2 = dy.reshape(-1, o)
    if _is_pointwise(g, dx.shape[1:3]):
        np.matmul(dy2, fm.T, out=dx.reshape(-1, c))
        return dx
    step, workers = _plan_chunks(n, g, k, dy.dtype.itemsize, chunk)
    rows = g.oh * g.ow
    dcols = _scratch(scratch, workers * step * rows, k, dy.dtype)

    def work(w: int, n0: int, n1: int) -> None:
        part = dcols[w * step * rows:(w * step + n1 - n0) * rows]
        np.matmul(dy2[n0 * rows:n1 * rows], fm.T, out=part)
        dx[n0:n1] = 0
        _col2im(part, n0, n1, g, dx)

    _each_chunk(n, step, workers, work)
    return dx


# -- choice by shape ----------------------------------------------------------------------------------------

def method(c: int, g: ConvGeom, op: str = "forward", o: int = 0, hw: tuple[int, int] | None = None) -> str:
    """How a convolution with `c` input and `o` output channels runs: "gemm" (1x1), "direct"
    (`kernels/direct.py`: few channels, stride 1; forward and filter gradient), "winograd"
    (`kernels/winograd.py`: stride 1, 2..5 taps, >= 8 channels each way) or "im2col+gemm"."""
    if _is_pointwise(g, hw):
        return "gemm"
    if op in ("forward", "filter_grad") and direct.applies(c, g):
        return "direct"
    if o and winograd.applies(c, o, g):
        return "winograd"
    return "im2col+gemm"


def forward(x: np.ndarray, f: np.ndarray, g: ConvGeom, out: np.ndarray, scratch: Alloc,
            bias: np.ndarray | None = None, relu: bool = False, pool: int = 0,
            full: np.ndarray | None = None) -> str:
    """conv2d (with its bias/ReLU epilogue) by the method chosen for its shape; returns the method. `pool`
    (`pixel_conv.MAX_2X2` or `AVG_2X2`, only where the method is "direct"): out is the pooled output, and
    `full`, when given, gets the unpooled one."""
    how = method(x.shape[3], g, o=f.shape[3], hw=x.shape[1:3])
    if pool and how != "direct":
        raise ValueError(f"a fused pool needs the direct method, not {how}")
    if how == "winograd":
        # an inf or NaN would spread over its whole tile (see winograd.py); the filter is checked there
        if winograd.safe(x) and winograd.forward(x, f, g, out, scratch, bias, relu) is not None:
            return how
        how = "im2col+gemm"
    if how == "direct":
        direct.forward(x, f, g, out, scratch, bias, relu, pool, full)
    else:
        conv2d(x, f, g, out, scratch, bias=bias, relu=relu)
    return how


def filter_grad(x: np.ndarray, dy: np.ndarray, g: ConvGeom, df: np.ndarray, scratch: Alloc,
                threads: int) -> str:
    """conv2d_backprop_filter by the method chosen for its shape; returns the method."""
    how = method(x.shape[3], g, "filter_grad", dy.shape[3], x.shape[1:3])
    if how == "winograd" and not winograd.safe(x, dy):
        how = "im2col+gemm"
    if how == "direct":
        direct.filter_grad(x, dy, g, df, scratch, threads)
    elif how == "winograd":
        winograd.filter_grad(x, dy, g, df, scratch)
    else:
        conv2d_backprop_filter(x, dy, g, df, scratch)
    return how


def input_grad(dy: np.ndarray, f: np.ndarray, g: ConvGeom, dx: np.ndarray, scratch: Alloc) -> str:
    """conv2d_backprop_input by the method chosen for its shape; returns the method ("gemm",
    "winograd" or "gemm+col2im")."""
    how = method(dx.shape[3], g, "input_grad", dy.shape[3], dx.shape[1:3])
    if how == "winograd" and winograd.safe(dy) and winograd.input_grad(dy, f, g, dx, scratch) is not None:
        return how
    conv2d_backprop_input(dy, f, g, dx, scratch)
    return "gemm" if how == "gemm" else "gemm+col2im"
