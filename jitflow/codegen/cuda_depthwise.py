"""CUDA kernels for the depthwise convolution and its two gradients, as Python source (NHWC or NCHW).

The geometry (`cuda_conv.Window`, with ``o = c * multiplier`` output channels) is written into the
source as constants, as for the other window kernels; the batch size is a run-time argument. Every
module defines ``launch(src_a, src_b, out, batch, splits, [part])`` with the op's two tensor inputs
in the op's order ((x, filter), (dy, filter) or (x, dy)).

* DepthwiseConv2dNative: one thread per output element (b, i, j, ch*M + m) sums its window taps of
  input channel ch against filter column (ch, m).
* DepthwiseConv2dNativeBackpropInput: one thread per input element (b, y, x, ch) gathers the output
  pixels whose windows hold it and their M channels: no two threads write one element, no atomics.
* DepthwiseConv2dNativeBackpropFilter: a reduction over the batch's output pixels per (tap, output
  channel). A block takes TC output channels of one tap (consecutive channels: coalesced loads in
  NHWC) and RL row lanes, reduced in shared memory; blocks along grid.y take slices of the rows into
  partial filters that a second kernel sums (deterministic: no atomics).
"""
from __future__ import annotations

from jitflow.codegen import lowering as L
from jitflow.codegen.cuda import ENTRY, Target, _arr, _nbtype, _prelude
from jitflow.codegen.cuda_conv import GPU_BIAS, IND, SIM_BIAS, Window, _pool_header, _split, _x_index, _y_index

FORWARD = "DepthwiseConv2dNative"
BACKPROP_INPUT = "DepthwiseConv2dNativeBackpropInput"
BACKPROP_FILTER = "DepthwiseConv2dNativeBackpropFilter"
OPS = (FORWARD, BACKPROP_INPUT, BACKPROP_FILTER)


def _mult(g: Window) -> int:
    return g.o // g.c


def _lanes(target: Target) -> tuple[int, int]:
    """(TC, RL) of the filter gradient: output channels x row lanes per block (as BiasAddGrad's)."""
    return SIM_BIAS if target.arch == "cudasim" else GPU_BIAS


def _point(g: Window, names: list[str], hh: int, ww: int, ch: int) -> list[str]:
    """Splits flat thread index t into (b, row, col, channel) in the memory order of the format."""
    b, i, j, c = names
    if g.fmt == "NCHW":
        return _split("t", [b, c, i, j], [str(ch), str(hh), str(ww)])
    return _split("t", [b, i, j, c], [str(hh), str(ww), str(ch)])


def _forward_body(g: Window, dtype: str) -> list[str]:
    """`res` = output element (b, i, j, oc): the window of input channel oc // M against filter column oc."""
    x_at = _x_index(g, "b", "yy_", "xx_", "ch_")
    acc = L.cast(f"res + src_a[{x_at}] * src_b[(a_ * {g.kw} + e_) * {g.o} + oc]", dtype)
    return [
        *_point(g, ["b", "i", "j", "oc"], g.oh, g.ow, g.o),
        f"ch_ = oc // {_mult(g)}",
        f"res = {L.const(0, dtype)}",
        f"for a_ in range({g.kh}):",
        f"    yy_ = i * {g.sh} - {g.pt} + a_ * {g.dh}",
        f"    if yy_ >= 0 and yy_ < {g.h}:",
        f"        for e_ in range({g.kw}):",
        f"            xx_ = j * {g.sw} - {g.pl} + e_ * {g.dw}",
        f"            if xx_ >= 0 and xx_ < {g.w}:",
        f"                res = {acc}",
    ]


def _backprop_input_body(g: Window, dtype: str) -> list[str]:
    """`res` = input gradient element (b, y, x, ch): tap (a, e) of output (i, j) reads input (y, x) when
    i = (y + pt - a*dh) / sh divides exactly (and likewise j)."""
    m = _mult(g)
    dy_at = _y_index(g, "b", "ii_", "jj_", f"ch * {m} + m_")
    acc = L.cast(f"res + src_a[{dy_at}] * src_b[((a_ * {g.kw} + e_) * {g.c} + ch) * {m} + m_]", dtype)
    return [
        *_point(g, ["b", "y", "xw", "ch"], g.h, g.w, g.c),
        f"res = {L.const(0, dtype)}",
        f"for a_ in range({g.kh}):",
        f"    ti_ = y + {g.pt} - a_ * {g.dh}",
        f"    if ti_ >= 0 and ti_ % {g.sh} == 0 and ti_ // {g.sh} < {g.oh}:",
        f"        ii_ = ti_ // {g.sh}",
        f"        for e_ in range({g.kw}):",
        f"            tj_ = xw + {g.pl} - e_ * {g.dw}",
        f"            if tj_ >= 0 and tj_ % {g.sw} == 0 and tj_ // {g.sw} < {g.ow}:",
        f"                jj_ = tj_ // {g.sw}",
        f"                for m_ in range({m}):",
        f"                    res = {acc}",
    ]


_BODIES = {FORWARD: _forward_body, BACKPROP_INPUT: _backprop_input_body}


def generate_depthwise(op_type: str, g: Window, dtype: str, target: Target) -> str:
    """Source of the module for one depthwise op (see the module doc)."""
    if op_type == BACKPROP_FILTER:
        return _generate_filter_grad(g, dtype, target)
    size = f"batch * {g.oh * g.ow * g.o}" if op_type == FORWARD else f"batch * {g.h * g.w * g.c}"
    lines = _pool_header(dtype, target, [_arr(dtype)] * 3 + ["types.int64"])
    lines += [
        "@cuda.jit(_SIG, cache=True)",
        "def _depthwise(src_a, src_b, out, size):",
        *[IND + s for s in _prelude(target)],
        f"{IND}t0 = cuda.grid(1)",
        f"{IND}step = cuda.gridsize(1)",
        f"{IND}for t in range(t0, size, step):",
        *[IND * 2 + s for s in _BODIES[op_type](g, dtype)],
        f"{IND * 2}out[t] = res",
        "",
        "",
        f"def {ENTRY}(src_a, src_b, out, batch, splits, *rest):",
        f"{IND}size = {size}",
        f"{IND}if size == 0:",
        f"{IND}    return",
        f"{IND}_depthwise[min((size + TPB - 1) // TPB, MAXB), TPB](src_a, src_b, out, size)",
    ]
    return "\n".join(lines) + "\n"


def _filter_partial(g: Window, dtype: str, target: Target) -> list[str]:
    """Kernel `_partial`: part[split, tap, oc] = the sum over the split's rows (b, i, j) of x * dy."""
    tc, _ = _lanes(target)
    cb = -(-g.o // tc)
    x_at = _x_index(g, "b", "yy_", "xx_", f"oc // {_mult(g)}")
    dy_at = _y_index(g, "b", "i", "j", "oc")
    return [
        "@cuda.jit(_SIG, cache=True)",
        "def _partial(x, dy, part, rows, per):",
        f"    red = cuda.shared.array((RL, TC), {_nbtype(dtype)})",
        "    lc = cuda.threadIdx.x",
        "    ll = cuda.threadIdx.y",
        f"    tap = cuda.blockIdx.x // {cb}",
        f"    oc = (cuda.blockIdx.x % {cb}) * TC + lc",
        f"    a_ = tap // {g.kw}",
        f"    e_ = tap % {g.kw}",
        "    r0 = cuda.blockIdx.y * per",
        "    r1 = rows if rows < r0 + per else r0 + per",
        f"    s = {L.const(0, dtype)}",
        f"    if oc < {g.o}:",
        "        for r in range(r0 + ll, r1, RL):",
        *[IND * 3 + s for s in _split("r", ["b", "i", "j"], [str(g.oh), str(g.ow)])],
        f"            yy_ = i * {g.sh} - {g.pt} + a_ * {g.dh}",
        f"            xx_ = j * {g.sw} - {g.pl} + e_ * {g.dw}",
        f"            if yy_ >= 0 and yy_ < {g.h} and xx_ >= 0 and xx_ < {g.w}:",
        f"                s = {L.cast(f's + x[{x_at}] * dy[{dy_at}]', dtype)}",
        "    red[ll, lc] = s",
        "    cuda.syncthreads()",
        f"    if ll == 0 and oc < {g.o}:",
        "        for k in range(1, RL):",
        f"            s = {L.cast('s + red[k, lc]', dtype)}",
        f"        part[cuda.blockIdx.y * SIZE + tap * {g.o} + oc] = s",
    ]


def _generate_filter_grad(g: Window, dtype: str, target: Target) -> str:
    tc, rl = _lanes(target)
    blocks = g.kh * g.kw * -(-g.o // tc)
    lines = _pool_header(dtype, target, [_arr(dtype)] * 3 + ["types.int64"] * 2)
    lines += [
        f"TC, RL = {tc}, {rl}",
        f"SIZE = {g.kh * g.kw * g.o}",
        "",
        "",
        *_filter_partial(g, dtype, target),
        "",
        "",
        f"@cuda.jit(types.void({_arr(dtype)}, {_arr(dtype)}, types.int64), cache=True)",
        "def _sum_splits(part, out, splits):",
        "    t = cuda.grid(1)",
        "    if t < SIZE:",
        "        s = part[t]",
        "        for z in range(1, splits):",
        "            s += part[z * SIZE + t]",
        "        out[t] = s",
        "",
        "",
        f"def {ENTRY}(x, dy, out, batch, splits, *rest):",
        f"{IND}rows = batch * {g.oh * g.ow}",
        f"{IND}per = (rows + splits - 1) // splits",
        f"{IND}part = out if splits == 1 else rest[0]",
        f"{IND}_partial[({blocks}, splits), (TC, RL)](x, dy, part, rows, per)",
        f"{IND}if splits > 1:",
        f"{IND}    _sum_splits[(SIZE + TPB - 1) // TPB, TPB](part, out, splits)",
    ]
    return "\n".join(lines) + "\n"


def depthwise_splits(op_type: str, g: Window, batch: int, target: Target) -> int:
    """Row slices of the filter gradient (1 for the other ops): enough blocks to fill the device, and
    at least 64 rows per lane in each slice so that the partial filters stay cheap to sum."""
    if op_type != BACKPROP_FILTER:
        return 1
    tc, rl = _lanes(target)
    blocks = g.kh * g.kw * -(-g.o // tc)
    rows = batch * g.oh * g.ow
    return max(1, min(-(-rows // (rl * 64)), target.max_blocks // blocks, 1024))
