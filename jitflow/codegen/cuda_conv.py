"""CUDA kernels for convolution, pooling and BiasAddGrad, as Python source (NHWC or NCHW, float32/64).

Every module defines ``launch(...)`` (the host-side entry, as in `codegen/cuda.py`). The geometry of
the op (`Window`: input size, kernel, strides, dilations, padding, output size, channels) is written
into the source as constants: integer divisions by constants are cheap on a GPU, and one model has a
handful of conv shapes. The batch size stays a run-time argument.

Convolutions are implicit GEMMs: the patch matrix is never written. One generic tiled kernel computes
``C[m, n] = sum_k A(m, k) * B(k, n)`` where each operand is gathered from the op's tensors by index
arithmetic; the three ops differ only in how A, B and C are addressed:

==========================  ==================  ===========  =================  ==========================
op                          rows m              columns n    k                  A(m, k) / B(k, n)
==========================  ==================  ===========  =================  ==========================
Conv2D                      (b, i, j) output    o            (a, e, c) tap      x patch / filter[a, e, c, o]
Conv2DBackpropInput         (b, y, x) input     c            (a, e, o)          dy at the output (i, j)
                                                                                 that tap (a, e) maps to
                                                                                 (y, x), else 0 / filter
Conv2DBackpropFilter        (a, e, c) tap       o            (b, i, j)          x patch (transposed) / dy
==========================  ==================  ===========  =================  ==========================

A block computes a TM x TN tile of C. Per step of TK along k, its threads copy the A and B tiles into
shared memory (consecutive threads read consecutive addresses of the operand's contiguous axis:
coalesced loads), then each thread accumulates an RM x RN register tile from them. The filter
gradient's k (the whole batch) is split over grid.z into partial products summed by a second kernel,
so that its few output tiles still fill the device. A Conv2D can carry an elementwise epilogue cluster
(BiasAdd, Relu, ...): each result element runs it as it leaves the registers, and the conv's own
output is never stored.

Pooling runs one thread per output element (gradients: per input element, gathering the windows that
cover it, so no atomics are needed and the sums are deterministic). BiasAddGrad sums rows per channel.
"""
from __future__ import annotations

from dataclasses import dataclass

from jitflow.codegen import lowering as L
from jitflow.codegen.cuda import ENTRY, Target, _arr, _epilogue, _nbtype, _prelude
from jitflow.ir.cluster import Cluster
from jitflow.ir.layout import Layout

IND = "    "
_IMPORTS = ["import numpy as np", "from numba import cuda, types", "from jitflow.codegen import cudamath as M", ""]


@dataclass(frozen=True)
class Window:
    """The geometry of one 2-D window op over an NHWC-ordered shape (the batch size is not part of it)."""

    h: int
    w: int
    c: int  # input channels
    o: int  # output channels (pooling: c)
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int  # padding before the first row / column
    pl: int
    oh: int
    ow: int
    fmt: str = "NHWC"

    def key(self) -> list[object]:
        return [self.h, self.w, self.c, self.o, self.kh, self.kw, self.sh, self.sw, self.dh, self.dw, self.pt,
                self.pl, self.oh, self.ow, self.fmt]


@dataclass(frozen=True)
class Tiles:
    """Tile sizes of the implicit GEMM: a TM x TN output tile per block, TK of k per shared-memory step,
    an RM x RN register tile per thread ((TM / RM) * (TN / RN) threads)."""

    tm: int
    tn: int
    tk: int
    rm: int
    rn: int
    fill: int  # blocks that keep the device busy (the filter gradient splits its k loop to reach it)
    min_steps: int  # fewest TK-steps per split of k

    @property
    def threads(self) -> int:
        return (self.tm // self.rm) * (self.tn // self.rn)


# On a GPU: 64 x 64 tiles, 256 threads with 4 x 4 register tiles (16 multiply-adds per 8 shared-memory
# reads), 2 x 16 x 64 elements of shared memory (8 KB in float32), so several blocks fit on one SM.
# On the simulator (a Python thread per CUDA thread): 4 threads, 2 x 2 each, so that tests stay fast.
# 256 blocks: two per SM of a 132-SM H100, with 8 k-steps at least per split (the partial sums cost a pass).
GPU_TILES = Tiles(64, 64, 16, 4, 4, 256, 8)
SIM_TILES = Tiles(4, 4, 4, 2, 2, 16, 1)
# BiasAddGrad: 32 channels (one warp's contiguous loads) x 8 row lanes per block; row splits over grid.y.
GPU_BIAS = (32, 8)
SIM_BIAS = (4, 2)


def tiles_for(target: Target) -> Tiles:
    """The GEMM tiles for a target."""
    return SIM_TILES if target.arch == "cudasim" else GPU_TILES


def _max(a: str, b: str) -> str:
    """max(a, b) in device code (Numba's CUDA target has no two-argument builtin max for ints)."""
    return f"({a} if {a} > {b} else {b})"


def _min(a: str, b: str) -> str:
    return f"({a} if {a} < {b} else {b})"


def _split(var: str, names: list[str], sizes: list[str]) -> list[str]:
    """Statements that split flat index `var` into `names` (outermost first) of extents `sizes` (inner ones)."""
    lines = [f"q_ = {var}"]
    for name, size in zip(reversed(names[1:]), reversed(sizes)):
        lines += [f"{name} = q_ % {size}", f"q_ = q_ // {size}"]
    return lines + [f"{names[0]} = q_"]


def _x_index(g: Window, b: str, y: str, x: str, c: str) -> str:
    """Flat index of element (b, y, x, c) of an input-sized tensor in the op's format."""
    if g.fmt == "NCHW":
        return f"(({b} * {g.c} + {c}) * {g.h} + {y}) * {g.w} + {x}"
    return f"(({b} * {g.h} + {y}) * {g.w} + {x}) * {g.c} + {c}"


def _y_index(g: Window, b: str, i: str, j: str, o: str) -> str:
    """Flat index of element (b, i, j, o) of an output-sized tensor in the op's format."""
    if g.fmt == "NCHW":
        return f"(({b} * {g.o} + {o}) * {g.oh} + {i}) * {g.ow} + {j}"
    return f"(({b} * {g.oh} + {i}) * {g.ow} + {j}) * {g.o} + {o}"


# -- the three convolutions as loaders of A and B and a store of C ----------------------------------------


@dataclass(frozen=True)
class _Gemm:
    """How one convolution addresses its implicit GEMM (code pieces; see the module doc)."""

    ncol: int  # columns n of C (constant)
    nk: str  # k extent: a constant, or "nk" (a run-time argument)
    load_a: list[str]  # sets `val` from (mm, kk), which are in range
    load_b: list[str]  # sets `val` from (kk, nn), which are in range
    a_k_fastest: bool  # consecutive threads take consecutive k of the A tile (else consecutive m)
    b_k_fastest: bool
    out_index: str  # flat index of C[row, col] in the output tensor


def _patch(g: Window, row: str, tap: str, batch: list[str]) -> list[str]:
    """`val` = x at patch position (`row` = (b, i, j), `tap` = (a, e, c)), 0 in the padding."""
    return [
        *_split(row, batch, [str(g.oh), str(g.ow)]),
        *_split(tap, ["ta_", "te_", "tc_"], [str(g.kw), str(g.c)]),
        f"yy_ = {batch[1]} * {g.sh} - {g.pt} + ta_ * {g.dh}",
        f"xx_ = {batch[2]} * {g.sw} - {g.pl} + te_ * {g.dw}",
        f"if yy_ >= 0 and yy_ < {g.h} and xx_ >= 0 and xx_ < {g.w}:",
        f"    val = src_a[{_x_index(g, batch[0], 'yy_', 'xx_', 'tc_')}]",
    ]


def _forward(g: Window) -> _Gemm:
    ohw = g.oh * g.ow
    out = "row * n + col" if g.fmt == "NHWC" else f"(row // {ohw}) * {g.o * ohw} + col * {ohw} + row % {ohw}"
    return _Gemm(g.o, str(g.kh * g.kw * g.c), _patch(g, "mm", "kk", ["tb_", "ti_", "tj_"]),
                 [f"val = src_b[kk * {g.o} + nn]"], g.fmt == "NHWC", False, out)


def _backprop_input(g: Window) -> _Gemm:
    hw = g.h * g.w
    load_a = [
        *_split("mm", ["tb_", "ty_", "tx_"], [str(g.h), str(g.w)]),
        *_split("kk", ["ta_", "te_", "to_"], [str(g.kw), str(g.o)]),
        f"ii_ = ty_ + {g.pt} - ta_ * {g.dh}",
        f"jj_ = tx_ + {g.pl} - te_ * {g.dw}",
        # the tap (a, e) of output (i, j) reads input (y, x): i = (y + pt - a*dh) / sh when that divides
        f"if ii_ >= 0 and jj_ >= 0 and ii_ % {g.sh} == 0 and jj_ % {g.sw} == 0:",
        f"    ii_ = ii_ // {g.sh}",
        f"    jj_ = jj_ // {g.sw}",
        f"    if ii_ < {g.oh} and jj_ < {g.ow}:",
        f"        val = src_a[{_y_index(g, 'tb_', 'ii_', 'jj_', 'to_')}]",
    ]
    load_b = [*_split("kk", ["ta_", "te_", "to_"], [str(g.kw), str(g.o)]),
              f"val = src_b[((ta_ * {g.kw} + te_) * {g.c} + nn) * {g.o} + to_]"]
    out = "row * n + col" if g.fmt == "NHWC" else f"(row // {hw}) * {g.c * hw} + col * {hw} + row % {hw}"
    return _Gemm(g.c, str(g.kh * g.kw * g.o), load_a, load_b, g.fmt == "NHWC", True, out)


def _backprop_filter(g: Window) -> _Gemm:
    ohw = g.oh * g.ow
    if g.fmt == "NHWC":
        load_b = [f"val = src_b[kk * {g.o} + nn]"]
    else:
        load_b = [f"val = src_b[(kk // {ohw}) * {g.o * ohw} + nn * {ohw} + kk % {ohw}]"]
    return _Gemm(g.o, "nk", _patch(g, "kk", "mm", ["tb_", "ti_", "tj_"]), load_b, g.fmt == "NCHW",
                 g.fmt == "NCHW", "row * n + col")


GEMMS = {"Conv2D": _forward, "Conv2DBackpropInput": _backprop_input, "Conv2DBackpropFilter": _backprop_filter}


def _tile_load(name: str, load: list[str], k_fastest: bool, other: int, t: Tiles, zero: str,
               bound: str) -> list[str]:
    """Statements copying one operand tile into shared array `name` (shape (TK, other))."""
    per = t.tk * other // t.threads
    idx_k, idx_o = ("l_ % TK", "l_ // TK") if k_fastest else (f"l_ // {other}", f"l_ % {other}")
    var = "mm" if name == "sa" else "nn"
    base = "m0" if name == "sa" else "n0"
    return [
        f"for p_ in range({per}):",
        "    l_ = tid + p_ * NT",
        f"    lk_ = {idx_k}",
        f"    lo_ = {idx_o}",
        "    kk = k0 + lk_",
        f"    {var} = {base} + lo_",
        f"    val = {zero}",
        f"    if kk < kz1 and {bound}:",
        *[IND * 2 + s for s in load],
        f"    {name}[lk_, lo_] = val",
    ]


def generate_conv(op_type: str, g: Window, dtype: str, target: Target, epilogue: Cluster | None = None,
                  layout: Layout | None = None, conv_input: int = -1) -> str:
    """Source of ``launch(src_a, src_b, out, batch, splits, [part] | [epilogue inputs, outputs, exts, err])``.

    `src_a` / `src_b` are (x, filter), (dy, filter) or (x, dy) as the op takes them; `out` receives C.
    With `splits` > 1 (`conv_splits`), `part` holds `splits` partial products that the second kernel
    sums into `out`. With an `epilogue` (Conv2D only) `out` is unused and the epilogue cluster, whose
    input `conv_input` is the conv's output, stores its own outputs.
    """
    t = tiles_for(target)
    gm = GEMMS[op_type](g)
    zero = L.const(0, dtype)
    sig = [_arr(dtype)] * 3 + ["types.int64"] * 3
    args = ["src_a", "src_b", "dst", "nrows", "nk", "kchunk"]
    epi_lines: list[str] = []
    if epilogue is not None:
        assert layout is not None and op_type == "Conv2D"
        epi_lines = _epilogue(epilogue, layout, conv_input, sig, args)
    lines = [
        *_IMPORTS,
        f"_SIG = types.void({', '.join(sig)})",
        f"DT = {_nbtype(dtype)}",
        f"TM, TN, TK, RM, RN = {t.tm}, {t.tn}, {t.tk}, {t.rm}, {t.rn}",
        f"NT = {t.threads}",
        "RT = TM // RM",
        "CT = TN // RN",
        f"NCOL = {gm.ncol}",
        "",
        "",
        "@cuda.jit(_SIG, cache=True)",
        f"def _conv_gemm({', '.join(args)}):",
        *[IND + s for s in _prelude(target)],
        *[IND + s for s in _gemm_body(gm, t, zero, dtype)],
        *[IND + s for s in _gemm_store(gm, epi_lines)],
        "",
        "",
        *_conv_launch(gm, g, dtype, op_type, epilogue is not None),
    ]
    return "\n".join(lines) + "\n"


def _gemm_body(gm: _Gemm, t: Tiles, zero: str, dtype: str) -> list[str]:
    """The k loop: tiles into shared memory, register tiles accumulated from them."""
    return [
        "sa = cuda.shared.array((TK, TM), DT)",
        "sb = cuda.shared.array((TK, TN), DT)",
        "acc = cuda.local.array((RM, RN), DT)",
        "ra = cuda.local.array(RM, DT)",
        "rb = cuda.local.array(RN, DT)",
        "n = NCOL",
        "tid = cuda.threadIdx.x",
        "tr = tid // CT",
        "tc = tid % CT",
        "m0 = cuda.blockIdx.x * TM",
        "n0 = cuda.blockIdx.y * TN",
        "kz0 = cuda.blockIdx.z * kchunk",
        f"kz1 = {_min(gm.nk, '(kz0 + kchunk)')}",
        "for p in range(RM):",
        "    for q in range(RN):",
        f"        acc[p, q] = {zero}",
        "for k0 in range(kz0, kz1, TK):",
        *[IND + s for s in _tile_load("sa", gm.load_a, gm.a_k_fastest, t.tm, t, zero, "mm < nrows")],
        *[IND + s for s in _tile_load("sb", gm.load_b, gm.b_k_fastest, t.tn, t, zero, "nn < NCOL")],
        "    cuda.syncthreads()",
        "    for kq in range(TK):",
        "        for p in range(RM):",
        "            ra[p] = sa[kq, tr + p * RT]",
        "        for q in range(RN):",
        "            rb[q] = sb[kq, tc + q * CT]",
        "        for p in range(RM):",
        "            for q in range(RN):",
        f"                acc[p, q] = {L.cast('acc[p, q] + ra[p] * rb[q]', dtype)}",
        "    cuda.syncthreads()",
    ]


def _gemm_store(gm: _Gemm, epi_lines: list[str]) -> list[str]:
    """Each thread's register tile: into C (or its split's partial product), or through the epilogue."""
    lines = [
        "zoff = cuda.blockIdx.z * nrows * NCOL",
        "for p in range(RM):",
        "    row = m0 + tr + p * RT",
        "    for q in range(RN):",
        "        col = n0 + tc + q * CT",
        "        if row < nrows and col < NCOL:",
    ]
    if epi_lines:
        # the epilogue indexes the conv's output tensor: C[row, col] sits at out_index (NCHW: not row * n + col)
        return lines + ["            acc_pq = acc[p, q]"] + [IND * 3 + _epilogue_line(s, gm.out_index)
                                                                 for s in epi_lines]
    return lines + [f"            dst[zoff + {gm.out_index}] = acc[p, q]"]


def _epilogue_line(s: str, out_index: str) -> str:
    """One statement of the epilogue, reading the register tile's element and the output's flat index."""
    if s == "r_ = row * n + col":
        return f"r_ = {out_index}"
    return s[:-len("= acc")] + "= acc_pq" if s.endswith("= acc") else s


def _conv_launch(gm: _Gemm, g: Window, dtype: str, op_type: str, fused: bool) -> list[str]:
    """The host-side entry: grid over C's tiles (and k splits), then the sum of the splits."""
    rows = {"Conv2D": f"batch * {g.oh * g.ow}", "Conv2DBackpropInput": f"batch * {g.h * g.w}",
            "Conv2DBackpropFilter": str(g.kh * g.kw * g.c)}[op_type]
    nk = f"batch * {g.oh * g.ow}" if gm.nk == "nk" else gm.nk
    return [
        f"@cuda.jit(types.void({_arr(dtype)}, {_arr(dtype)}, types.int64, types.int64), cache=True)",
        "def _sum_splits(part, dst, size, splits):",
        "    t = cuda.grid(1)",
        "    while t < size:",
        "        s = part[t]",
        "        for z in range(1, splits):",
        "            s += part[z * size + t]",
        "        dst[t] = s",
        "        t += cuda.gridsize(1)",
        "",
        "",
        f"def {ENTRY}(src_a, src_b, dst, batch, splits, *rest):",
        f"{IND}nrows = {rows}",
        f"{IND}nk = {nk}",
        f"{IND}if nrows == 0:",
        f"{IND}    return",
        f"{IND}kchunk = ((nk + splits * TK - 1) // (splits * TK)) * TK",
        f"{IND}grid = ((nrows + TM - 1) // TM, (NCOL + TN - 1) // TN, splits)",
        *([f"{IND}exts, err = rest[-2], rest[-1]",
           f"{IND}_conv_gemm[grid, NT](src_a, src_b, dst, nrows, nk, kchunk, *rest[:-2], *exts, err)"] if fused else
          [f"{IND}if splits == 1:",
           f"{IND}    _conv_gemm[grid, NT](src_a, src_b, dst, nrows, nk, kchunk)",
           f"{IND}    return",
           f"{IND}part = rest[0]",
           f"{IND}_conv_gemm[grid, NT](src_a, src_b, part, nrows, nk, kchunk)",
           f"{IND}size = nrows * NCOL",
           f"{IND}_sum_splits[min((size + NT - 1) // NT, 4096), NT](part, dst, size, splits)"]),
    ]


def conv_splits(op_type: str, g: Window, batch: int, target: Target) -> int:
    """How many parts the k loop is split into: the filter gradient's few output tiles fill the device."""
    if op_type != "Conv2DBackpropFilter":
        return 1
    t = tiles_for(target)
    tiles = -(-g.kh * g.kw * g.c // t.tm) * -(-g.o // t.tn)
    steps = -(-batch * g.oh * g.ow // t.tk)  # TK-steps of k in all
    return max(1, min(t.fill // tiles, steps // t.min_steps, 64))


# -- pooling ------------------------------------------------------------------------------------------------


def _pool_header(dtype: str, target: Target, sig: list[str]) -> list[str]:
    return [
        *_IMPORTS,
        f"_SIG = types.void({', '.join(sig)})",
        f"TPB = {target.tpb}",
        f"MAXB = {target.max_blocks}",
        "",
        "",
    ]


def _pool_point(g: Window, names: list[str], out_hw: bool) -> list[str]:
    """Splits the flat thread index t into (b, i, j, c) (or (b, y, x, c)) in the memory order of the format."""
    hh, ww = (g.oh, g.ow) if out_hw else (g.h, g.w)
    b, i, j, c = names
    if g.fmt == "NCHW":
        return _split("t", [b, c, i, j], [str(g.c), str(hh), str(ww)])
    return _split("t", [b, i, j, c], [str(hh), str(ww), str(g.c)])


def _span(lo: str, hi: str, pos: str, s: int, p: int, k: int, n: int) -> list[str]:
    return [f"{lo} = {_max(f'({pos} * {s} - {p})', '0')}", f"{hi} = {_min(f'({pos} * {s} - {p} + {k})', str(n))}"]


def _window_loop(g: Window, i: str, j: str, body: list[str]) -> list[str]:
    """for (yy_, xx_) over window (i, j), clipped to the input."""
    return [
        *_span("y0_", "y1_", i, g.sh, g.pt, g.kh, g.h),
        *_span("x0_", "x1_", j, g.sw, g.pl, g.kw, g.w),
        "for yy_ in range(y0_, y1_):",
        "    for xx_ in range(x0_, x1_):",
        *[IND * 2 + s for s in body],
    ]


def _first_max(g: Window, i: str, j: str) -> list[str]:
    """best_ / at_ = the first maximum of window (i, j) in row-major order (a NaN counts as the maximum)."""
    return [
        *_span("y0_", "y1_", i, g.sh, g.pt, g.kh, g.h),
        *_span("x0_", "x1_", j, g.sw, g.pl, g.kw, g.w),
        f"best_ = x[{_x_index(g, 'b', 'y0_', 'x0_', 'c')}]",
        f"at_ = y0_ * {g.w} + x0_",
        "for yy_ in range(y0_, y1_):",
        "    for xx_ in range(x0_, x1_):",
        f"        v_ = x[{_x_index(g, 'b', 'yy_', 'xx_', 'c')}]",
        "        if best_ == best_ and (v_ > best_ or v_ != v_):",
        "            best_ = v_",
        f"            at_ = yy_ * {g.w} + xx_",
    ]


def _covering(g: Window, body: list[str]) -> list[str]:
    """for (i, j) over the output windows that contain input pixel (y, x)."""
    return [
        f"i0_ = {_max(f'((y + {g.pt} - {g.kh} + {g.sh}) // {g.sh})', '0')}",
        f"i1_ = {_min(f'((y + {g.pt}) // {g.sh} + 1)', str(g.oh))}",
        f"j0_ = {_max(f'((xw + {g.pl} - {g.kw} + {g.sw}) // {g.sw})', '0')}",
        f"j1_ = {_min(f'((xw + {g.pl}) // {g.sw} + 1)', str(g.ow))}",
        "for i in range(i0_, i1_):",
        "    for j in range(j0_, j1_):",
        *[IND * 2 + s for s in body],
    ]


def _pool_body(op_type: str, g: Window, dtype: str) -> list[str]:
    """Statements setting `res` for one output element of a pooling op (see `generate_pool`)."""
    zero = L.const(0, dtype)
    count = L.cast("(y1_ - y0_) * (x1_ - x0_)", dtype)  # padding is not counted, as in TF
    dy_at = f"dy[{_y_index(g, 'b', 'i', 'j', 'c')}]"
    if op_type == "MaxPool":
        return [*_first_max(g, "i", "j"), "res = best_"]
    if op_type == "AvgPool":
        add = f"s_ = {L.cast('s_ + x[' + _x_index(g, 'b', 'yy_', 'xx_', 'c') + ']', dtype)}"
        return [f"s_ = {zero}", *_window_loop(g, "i", "j", [add]), f"res = {L.cast('s_ / ' + count, dtype)}"]
    if op_type == "MaxPoolGrad":
        return [f"res = {zero}", *_covering(g, [*_first_max(g, "i", "j"), f"if at_ == y * {g.w} + xw:",
                                                f"    res = {L.cast('res + ' + dy_at, dtype)}"])]
    return [f"res = {zero}", *_covering(g, [*_span("y0_", "y1_", "i", g.sh, g.pt, g.kh, g.h),
                                            *_span("x0_", "x1_", "j", g.sw, g.pl, g.kw, g.w),
                                            f"res = {L.cast('res + ' + dy_at + ' / ' + count, dtype)}"])]


_POOL_INPUTS = {"MaxPool": ["x"], "AvgPool": ["x"], "MaxPoolGrad": ["x", "dy"], "AvgPoolGrad": ["dy"]}


def generate_pool(op_type: str, g: Window, dtype: str, target: Target) -> str:
    """Source of ``launch(ins..., out, batch)`` for MaxPool (x), AvgPool (x), MaxPoolGrad (x, dy) or
    AvgPoolGrad (dy): one thread per element of the output."""
    ins = _POOL_INPUTS[op_type]
    out_hw = op_type in ("MaxPool", "AvgPool")
    names = ["b", "i", "j", "c"] if out_hw else ["b", "y", "xw", "c"]
    size = f"batch * {g.oh * g.ow * g.c}" if out_hw else f"batch * {g.h * g.w * g.c}"
    lines = _pool_header(dtype, target, [_arr(dtype)] * (len(ins) + 1) + ["types.int64"])
    lines += [
        "@cuda.jit(_SIG, cache=True)",
        f"def _pool({', '.join(ins)}, out, size):",
        *[IND + s for s in _prelude(target)],
        f"{IND}t0 = cuda.grid(1)",
        f"{IND}step = cuda.gridsize(1)",
        f"{IND}for t in range(t0, size, step):",
        *[IND * 2 + s for s in _pool_point(g, names, out_hw) + _pool_body(op_type, g, dtype)],
        f"{IND * 2}out[t] = res",
        "",
        "",
        f"def {ENTRY}(*args):",
        f"{IND}batch = args[-1]",
        f"{IND}size = {size}",
        f"{IND}if size == 0:",
        f"{IND}    return",
        f"{IND}_pool[min((size + TPB - 1) // TPB, MAXB), TPB](*args[:-1], size)",
    ]
    return "\n".join(lines) + "\n"


# -- BiasAddGrad --------------------------------------------------------------------------------------------


def generate_bias_grad(dtype: str, nchw_inner: int, target: Target) -> str:
    """Source of ``launch(g, out, rows, c)``: out[c] = the sum of g over every axis but the channel one.

    `nchw_inner` is 0 when channels are the last axis (g is rows x c), else the size of the axes after
    the channel axis (NCHW: g is (n, c, inner)). A block sums TC channels over row lanes; blocks along
    grid.y take row slices into partial sums that a second kernel adds up.
    """
    tc, rl = SIM_BIAS if target.arch == "cudasim" else GPU_BIAS
    zero = L.const(0, dtype)
    if nchw_inner:
        at = f"(r // {nchw_inner}) * c * {nchw_inner} + ch * {nchw_inner} + r % {nchw_inner}"
    else:
        at = "r * c + ch"
    lines = _pool_header(dtype, target, [_arr(dtype)] * 2 + ["types.int64"] * 3)
    lines += [
        f"TC, RL = {tc}, {rl}",
        "",
        "",
        "@cuda.jit(_SIG, cache=True)",
        "def _partial(g, part, rows, c, per):",
        "    red = cuda.shared.array((RL, TC), " + _nbtype(dtype) + ")",
        "    lc = cuda.threadIdx.x",
        "    ll = cuda.threadIdx.y",
        "    ch = cuda.blockIdx.x * TC + lc",
        "    r0 = cuda.blockIdx.y * per",
        f"    r1 = {_min('rows', '(r0 + per)')}",
        f"    s = {zero}",
        "    if ch < c:",
        "        for r in range(r0 + ll, r1, RL):",
        f"            s = {L.cast('s + g[' + at + ']', dtype)}",
        "    red[ll, lc] = s",
        "    cuda.syncthreads()",
        "    if ll == 0 and ch < c:",
        "        for k in range(1, RL):",
        f"            s = {L.cast('s + red[k, lc]', dtype)}",
        "        part[cuda.blockIdx.y * c + ch] = s",
        "",
        "",
        f"@cuda.jit(types.void({_arr(dtype)}, {_arr(dtype)}, types.int64, types.int64), cache=True)",
        "def _finish(part, out, c, splits):",
        "    ch = cuda.grid(1)",
        "    if ch < c:",
        "        s = part[ch]",
        "        for z in range(1, splits):",
        "            s += part[z * c + ch]",
        "        out[ch] = s",
        "",
        "",
        f"def {ENTRY}(g, out, rows, c):",
        "    if c == 0:",
        "        return",
        "    cb = (c + TC - 1) // TC",
        "    splits = max(1, min((rows + RL * 64 - 1) // (RL * 64), MAXB // cb))",
        "    per = (rows + splits - 1) // splits if rows else 1",
        f"    part = cuda.device_array(splits * c, np.{dtype})",
        "    _partial[(cb, splits), (TC, RL)](g, part, rows, c, per)",
        "    _finish[(c + TPB - 1) // TPB, TPB](part, out, c, splits)",
    ]
    return "\n".join(lines) + "\n"
