"""Plan steps for convolution and pooling ops: the fast kernels of `jitflow/kernels/` in compiled plans.

Each step checks what the fast kernel needs (float dtypes, rank-4 inputs whose shapes agree); anything
else runs the op's interpreted step, which raises the interpreter's error. The kernel chosen for the
input shapes (direct, im2col + GEMM, plain GEMM) is written into the plan report, so `explain` shows
it. NCHW inputs are transposed to NHWC around the NHWC kernels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from jitflow.compiler.arena import Recycler
from jitflow.compiler.placement import requested_gpu
from jitflow.compiler.plan import ARENA_SLOT, Step
from jitflow.compiler.step import CPU, Chain, value_slots
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import known_dims
from jitflow.kernels import conv, depthwise, pixel_conv, pool, pool_grad_rows, winograd
from jitflow.kernels.threads import numba_threads, threads_for
from jitflow.ops import array_ops as A
from jitflow.ops import nn_ops as N

CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
POOL_OPS = ("MaxPool", "MaxPoolGrad", "AvgPool", "AvgPoolGrad")
DEPTHWISE_OPS = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter")
WINDOW_OPS = frozenset(CONV_OPS + POOL_OPS + DEPTHWISE_OPS)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_DATA_INPUT = {"Conv2DBackpropInput": 2, "AvgPoolGrad": 1, "DepthwiseConv2dNativeBackpropInput": 2}


# Geometries a window step keeps (one per input shape); a step fed ever new shapes starts over past this.
_GEOMETRIES = 32


class _NoFastPath(Exception):
    """The inputs are not what the fast kernel handles: run the interpreted step."""


def _geom(g: N._Geom) -> conv.ConvGeom:
    return conv.ConvGeom(g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph[0], g.pw[0], g.oh, g.ow)


def _float4(*arrays: Any) -> np.dtype:
    """The common float dtype of rank-4 arrays, or _NoFastPath."""
    dt = arrays[0].dtype if type(arrays[0]) is np.ndarray else None
    if dt not in _FLOATS or any(type(a) is not np.ndarray or a.ndim != 4 or a.dtype != dt for a in arrays):
        raise _NoFastPath
    return dt


def _sizes(v: Any) -> tuple[int, ...]:
    if type(v) is not np.ndarray or v.shape != (4,):
        raise _NoFastPath
    return tuple(int(s) for s in v)


class Epilogue(NamedTuple):
    """Ops that a conv or pool step applies in its own output pass: a Conv2D's BiasAdd (and the Relu after
    it, and a pooling op after that), or a MaxPoolGrad's ReluGrad (and the bias gradient of the same values)."""

    ops: list[Operation]  # [BiasAdd(, Relu)(, MaxPool | AvgPool)], [ReluGrad] or [ReluGrad, Sum | BiasAddGrad]
    out: Tensor  # the tensor the fused step produces (the last op's output; the ReluGrad's for a pool)
    extra: Tensor | None = None  # a second output: a MaxPoolGrad's bias gradient, or a pooled conv's own output

    @property
    def relu(self) -> bool:
        return any(m.type in ("Relu", "ReluGrad") for m in self.ops)

    @property
    def pool(self) -> Operation | None:
        """The pooling op a conv's step applies to its output (which is then also the step's second output
        when others read it: `extra`)."""
        return self.ops[-1] if self.ops[-1].type in _POOLS else None

    @property
    def at(self) -> Operation:
        """The op at whose place the fused step runs: the last (a conv's bias is read there), or for a pool
        gradient the ReluGrad (its other readers, the conv gradients, follow it)."""
        return self.ops[0] if self.ops[0].type == "ReluGrad" else self.ops[-1]


def _sole_reader(t: Tensor, readers: dict[Tensor, list[Operation]], fetched: set, fed: set) -> Any:
    rs = readers.get(t, [])
    return rs[0] if len(rs) == 1 and t not in fetched and t not in fed else None


def find_epilogues(ops: list[Operation], fetched: set, fed: set) -> dict[Operation, Epilogue]:
    """Conv2D -> BiasAdd (-> Relu) chains whose intermediate values nothing else reads (nor fetches), with the
    pool after them (`_pool_reader`); MaxPoolGrad -> ReluGrad (-> bias gradient) chains."""
    readers: dict[Tensor, list[Operation]] = {}
    controls = {c for op in ops for c in op.control_inputs}
    for op in ops:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    found: dict[Operation, Epilogue] = {}
    at = {o: i for i, o in enumerate(ops)}  # plan order
    for op in ops:
        if op.type == "MaxPoolGrad":
            e = _relu_grad_epilogue(op, readers, controls, fetched, fed)
            if e is not None:
                found[op] = e
        if op.type != "Conv2D" or op.attrs.get("data_format", "NHWC") != "NHWC" or requested_gpu(op) is not None:
            continue
        b = _sole_reader(op.outputs[0], readers, fetched, fed)
        if b is None or b.type != "BiasAdd" or b.inputs[0] is not op.outputs[0] or b.outputs[0] in fed \
                or b.attrs.get("data_format", "NHWC") != "NHWC" or {op, b} & controls:
            continue
        r = _sole_reader(b.outputs[0], readers, fetched, fed)
        chain = [b, r] if r is not None and r.type == "Relu" and r not in controls and r.outputs[0] not in fed \
            else [b]
        t = chain[-1].outputs[0]
        p = _pool_reader(t, readers, controls, fetched, fed, at)
        if p is None:
            found[op] = Epilogue(chain, t)
            continue
        # the pool's input is read by others too (training: the pool's and the ReLU's gradients): it becomes
        # the step's second output
        found[op] = Epilogue([*chain, p], p.outputs[0], None if len(readers[t]) == 1 else t)
    return found


def _pool_reader(t: Tensor, readers: dict[Tensor, list[Operation]], controls: set, fetched: set, fed: set,
                 at: dict[Operation, int]) -> Operation | None:
    """The NHWC pooling op a conv's step can apply to its output `t`: the only reader of `t`, or one whose
    other readers all run after it (so the fused step, which runs at the pool's place, has written `t`)."""
    rs = readers.get(t, [])
    pools = [p for p in rs if p.type in _POOLS and p.inputs[0] is t]
    if len(pools) != 1 or t in fetched or t in fed:
        return None
    p = pools[0]
    if p in controls or p.outputs[0] in fed or p.attrs.get("data_format", "NHWC") != "NHWC" \
            or requested_gpu(p) is not None or any(at.get(r, -1) <= at[p] for r in rs if r is not p):
        return None
    return p


# Pooling ops a conv's step can apply to its own output.
_POOLS = ("MaxPool", "AvgPool")


def _tiled(op: Operation) -> bool:
    """True when a pool's windows never overlap (strides >= window) in NHWC: its gradient writes each
    input element once (`pool.max_pool_grad_tiled`)."""
    if op.attrs.get("data_format", "NHWC") != "NHWC" or "ksize" not in op.attrs:
        return False
    (kh, kw), (sh, sw) = N._spatial(op.attrs["ksize"], "NHWC"), N._spatial(op.attrs["strides"], "NHWC")
    return sh >= kh and sw >= kw


def _bias_grad_reader(t: Tensor, readers: dict[Tensor, list[Operation]], controls: set, fed: set) -> Any:
    """The op summing rank-4 NHWC `t` over all but its channels (BiasAdd's gradient), if one reads it."""
    for r in readers.get(t, []):
        if r in controls or r.outputs[0] in fed or r.inputs[0] is not t:
            continue
        if r.type == "BiasAddGrad" and r.attrs.get("data_format", "NHWC") == "NHWC":
            return r
        if r.type == "Sum" and tuple(r.attrs.get("axis") or ()) == (0, 1, 2) and not r.attrs.get("keep_dims"):
            return r
    return None


def _relu_grad_epilogue(op: Operation, readers: dict[Tensor, list[Operation]], controls: set, fetched: set,
                        fed: set) -> Epilogue | None:
    """MaxPoolGrad -> ReluGrad(., the pool's input) (+ the bias gradient of that): one pass, see `_tiled`."""
    if not _tiled(op) or requested_gpu(op) is not None or op in controls or op.inputs[0].shape.ndims != 4:
        return None
    r = _sole_reader(op.outputs[0], readers, fetched, fed)
    if r is None or r.type != "ReluGrad" or r.inputs[0] is not op.outputs[0] or r.inputs[1] is not op.inputs[0] \
            or r in controls or r.outputs[0] in fed or requested_gpu(r) is not None:
        return None
    b = _bias_grad_reader(r.outputs[0], readers, controls, fed)
    if b is None or requested_gpu(b) is not None:
        return Epilogue([r], r.outputs[0])
    return Epilogue([r, b], r.outputs[0], b.outputs[0])


class _ConvPlan(NamedTuple):
    """A Conv2D step's decisions for one tuple of input shapes and dtype (`WindowStep._conv_plan`)."""

    g: N._Geom
    cg: conv.ConvGeom
    shape: tuple[int, ...]  # the conv's output (NHWC)
    pooled: tuple[int, tuple[int, ...]] | None  # the direct kernel's pool mode and pooled shape
    one_chunk: bool  # a Winograd forward would run as one job of blocks (`winograd.one_chunk`)
    notes: dict[str, str]  # `explain` lines by the method a call took


class WindowStep:
    """One conv or pooling op through its fast kernel, into buffers reused across runs."""

    kind = "window"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, in_slots: list[int], out_slot: int, fresh: bool, fallback: Step,
                 report: dict[str, Any], bias_slot: int = -1, relu: bool = False, extra_slot: int = -1,
                 pool_op: Operation | None = None) -> None:
        self.op = op
        self.pool_op = pool_op  # a conv's fused pooling op (its output is this step's)
        self.pool_ksize = N._spatial(pool_op.attrs["ksize"], "NHWC") if pool_op is not None else (0, 0)
        self.pool_geoms: dict[tuple, N._Geom] = {}
        self.extra_slot = extra_slot  # a fused bias gradient's output (-1: none)
        self.ops = fallback.ops  # the op and its fused epilogue's ops: what the fallback runs
        self.reads = value_slots([*in_slots, bias_slot])
        self.writes = value_slots([out_slot, extra_slot])
        self.bias_slot = bias_slot  # a fused BiasAdd's bias (-1: no epilogue)
        self.relu = relu
        self.in_slots = in_slots
        self.out_slot = out_slot
        self.fresh = fresh
        self.fallback = fallback
        self.report = report
        self.fmt = op.attrs.get("data_format", "NHWC")
        self.key = id(self)
        self.recycler = Recycler()
        self.run = getattr(self, "_" + op.type)
        self.data_index = _DATA_INPUT.get(op.type, 0)  # the batch-sized input (not a filter or sizes)
        self.taps = _taps(op)  # elements touched per input element, roughly (a patch per tap for convs)
        self.width = _width(op)  # GEMM multiply-adds per patch element, roughly (0: no GEMM)
        self.ksize = N._spatial(op.attrs["ksize"], self.fmt) if "ksize" in op.attrs else (0, 0)
        self.geoms: dict[tuple, tuple[N._Geom, conv.ConvGeom]] = {}  # (input shape, kh, kw) -> `_geometries`
        self.conv_plans: dict[tuple, _ConvPlan] = {}  # (input shape, filter shape, dtype) -> `_conv_plan`
        self.wants_helpers = False  # the last run's conv shared its blocks (`winograd.one_chunk`)

    def __call__(self, ctx: Any, vals: list) -> None:
        ins = [vals[s] for s in self.in_slots]
        if self.bias_slot >= 0:
            ins.append(vals[self.bias_slot])
        arena = vals[ARENA_SLOT]
        data = ins[self.data_index]
        work = (data.size if type(data) is np.ndarray else 0) * self.taps
        try:
            with threads_for(work, work * self.width):
                res = self.run(ins, arena)
        except _NoFastPath:
            return self.fallback(ctx, vals)
        if self.extra_slot >= 0:
            res, vals[self.extra_slot] = res
        vals[self.out_slot] = res
        return None

    # -- geometry, buffers and layout ---------------------------------------------------------------------

    def _geometry(self, shape: tuple[int, ...], kh: int, kw: int) -> N._Geom:
        """The op's window geometry for an NHWC input `shape` and a kh x kw window, computed once per shape
        (a batch-1 CNN step spent ~3 us per window op recomputing it)."""
        return self._geometries(shape, kh, kw)[0]

    def _geometries(self, shape: tuple[int, ...], kh: int, kw: int) -> tuple[N._Geom, conv.ConvGeom]:
        """`_geometry` and its `conv.ConvGeom` (the conv kernels' form)."""
        key = (shape, kh, kw)
        both = self.geoms.get(key)
        if both is None:
            if len(self.geoms) >= _GEOMETRIES:
                self.geoms.clear()
            g = N._Geom(shape, kh, kw, self.op.attrs)
            both = self.geoms[key] = (g, _geom(g))
        return both

    # -- buffers and layout ---------------------------------------------------------------------------------

    def _out(self, arena: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        n = math.prod(shape)
        if self.fresh:  # handed to the user: never an arena buffer
            flat = self.recycler.get(n, dtype)
            self.recycler.put(flat)
            return flat.reshape(shape)
        return arena.buffer((self.key, 0), n, dtype).reshape(shape)

    def _scratch(self, arena: Any) -> conv.Alloc:
        return lambda n, dt: arena.buffer((self.key, 1), max(n, 1), dt)[:n]

    def _nhwc(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if self.fmt == "NCHW" else x)

    def _result(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if self.fmt == "NCHW" else y

    def _note(self, how: str) -> None:
        if self.report.get("source") != how:
            self.report["source"] = how

    # -- convolutions -----------------------------------------------------------------------------------------

    def _Conv2D(self, ins: list, arena: Any) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        dt = _float4(ins[0], ins[1])
        x, f = self._nhwc(ins[0]), np.ascontiguousarray(ins[1])
        cp = self.conv_plans.get((x.shape, f.shape, dt))
        if cp is None:
            cp = self._conv_plan(x.shape, f.shape, dt)
        bias = ins[2] if self.bias_slot >= 0 else None
        if self.bias_slot >= 0 and (type(bias) is not np.ndarray or bias.dtype != dt
                                    or bias.shape != (f.shape[3],)):
            raise _NoFastPath  # the interpreted BiasAdd raises the right error
        # with a fused pool, the conv's own output is an arena buffer of this step's: the pool's input only, or
        # also the step's second output (read later in the run: the pool's and the ReLU's gradients)
        keep = self.pool_op is not None and (cp.pooled is None or self.extra_slot >= 0)
        conv_out = arena.buffer((self.key, 2), math.prod(cp.shape), dt).reshape(cp.shape) if keep else None
        if cp.pooled is not None:  # the direct kernel pools its own output rows
            y = self._out(arena, cp.pooled[1], dt)
        elif conv_out is None:
            y = self._out(arena, cp.shape, dt)
        else:
            y = conv_out
        full = conv_out if cp.pooled is not None and self.extra_slot >= 0 else None
        how = conv.forward(x, f, cp.cg, y, self._scratch(arena), bias, self.relu, cp.pooled[0] if cp.pooled else 0,
                           full)
        # a small batch's Winograd conv shares its blocks with the helpers while they spin (`execute`)
        self.wants_helpers = how == "winograd" and cp.one_chunk
        if self.pool_op is not None and cp.pooled is None:
            y = self._fused_pool(y, arena)
        note = cp.notes.get(how)
        if note is None:
            note = cp.notes[how] = self._conv_note(how, cp.g, bias is not None)
        self._note(note)
        if self.extra_slot >= 0:  # (only a pooled conv has a second output)
            assert conv_out is not None
            return y, conv_out
        return self._result(y)

    def _conv_plan(self, x_shape: tuple[int, ...], f_shape: tuple[int, ...], dt: np.dtype) -> _ConvPlan:
        """What a Conv2D step decides once per input shapes (`conv_plans`); _NoFastPath for shapes the
        interpreted op must reject or that leave nothing to compute."""
        if x_shape[3] != f_shape[2]:
            raise _NoFastPath
        g, cg = self._geometries(x_shape, f_shape[0], f_shape[1])
        if g.oh <= 0 or g.ow <= 0 or x_shape[0] == 0 or f_shape[3] == 0:
            raise _NoFastPath
        shape = (x_shape[0], g.oh, g.ow, f_shape[3])
        one = winograd.one_chunk(x_shape[0], x_shape[3], f_shape[3], cg, dt.itemsize)
        cp = _ConvPlan(g, cg, shape, self._pixel_pool(shape, x_shape, cg), one, {})
        if len(self.conv_plans) >= _GEOMETRIES:
            self.conv_plans.clear()
        self.conv_plans[(x_shape, f_shape, dt)] = cp
        return cp

    def _conv_note(self, how: str, g: N._Geom, has_bias: bool) -> str:
        """The conv's line in `explain`: its method, epilogue and fused pool."""
        how = winograd.label(g.kh, g.kw, g.oh, g.ow) if how == "winograd" else how
        note = "kernels/conv: " + how + (" +bias" + ("+relu" if self.relu else "") if has_bias else "")
        return note + (" +" + self.pool_op.type.lower() if self.pool_op is not None else "")

    def _pool_geometry(self, shape: tuple[int, ...]) -> N._Geom:
        """The fused pool's window geometry over a conv output of NHWC `shape`, computed once per shape."""
        g = self.pool_geoms.get(shape)
        if g is None:
            if len(self.pool_geoms) >= _GEOMETRIES:
                self.pool_geoms.clear()
            assert self.pool_op is not None
            g = self.pool_geoms[shape] = N._Geom(shape, *self.pool_ksize, self.pool_op.attrs)
        return g

    def _pixel_pool(self, shape: tuple[int, ...], x_shape: tuple[int, ...],
                    cg: conv.ConvGeom) -> tuple[int, tuple[int, ...]] | None:
        """(pixel_conv's pool mode, the pooled NHWC shape) when the direct kernel can pool the output of
        shape `shape` itself (a 2 x 2 window at stride 2, every window inside it), else None."""
        if self.pool_op is None or conv.method(x_shape[3], cg, o=shape[3], hw=(x_shape[1], x_shape[2])) != "direct":
            return None
        p = self._pool_geometry(shape)
        if (p.kh, p.kw, p.sh, p.sw, p.ph[0], p.pw[0]) != (2, 2, 2, 2, 0, 0) or p.oh <= 0 or p.ow <= 0 \
                or 2 * p.oh > shape[1] or 2 * p.ow > shape[2]:
            return None
        mode = pixel_conv.MAX_2X2 if self.pool_op.type == "MaxPool" else pixel_conv.AVG_2X2
        return mode, (shape[0], p.oh, p.ow, shape[3])

    def _fused_pool(self, y: np.ndarray, arena: Any) -> np.ndarray:
        """The fused pooling op of a conv's output `y` (NHWC), into this step's output buffer."""
        op = self.pool_op
        assert op is not None
        g = self._pool_geometry(y.shape)
        if g.oh <= 0 or g.ow <= 0:
            raise _NoFastPath  # the interpreted chain raises the pool's error
        out = self._out(arena, (y.shape[0], g.oh, g.ow, y.shape[3]), y.dtype)
        run = pool.max_pool if op.type == "MaxPool" else pool.avg_pool
        run(y, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], out)
        return out

    def _Conv2DBackpropInput(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[1], ins[2])
        shape = N._nhwc_shape(_sizes(ins[0]), self.fmt)
        f, dy = np.ascontiguousarray(ins[1]), self._nhwc(ins[2])
        g, cg = self._geometries(shape, f.shape[0], f.shape[1])
        if shape[3] != f.shape[2] or dy.shape != (shape[0], g.oh, g.ow, f.shape[3]) or min(shape) <= 0:
            raise _NoFastPath
        dx = self._out(arena, shape, dt)
        how = conv.input_grad(dy, f, cg, dx, self._scratch(arena))
        how = winograd.label(g.kh, g.kw, shape[1], shape[2]) if how == "winograd" else how
        self._note("kernels/conv: " + how)
        return self._result(dx)

    def _Conv2DBackpropFilter(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[0], ins[2])
        fs = _sizes(ins[1])
        x, dy = self._nhwc(ins[0]), self._nhwc(ins[2])
        g, cg = self._geometries(x.shape, fs[0], fs[1])
        if x.shape[3] != fs[2] or dy.shape != (x.shape[0], g.oh, g.ow, fs[3]) or min(x.shape) <= 0 \
                or min(fs) <= 0:
            raise _NoFastPath
        df = self._out(arena, fs, dt)
        how = conv.filter_grad(x, dy, cg, df, self._scratch(arena), max(numba_threads(), 1))
        how = winograd.label(g.kh, g.kw, g.oh, g.ow) if how == "winograd" else how
        self._note("kernels/conv: " + how)
        return df

    # -- depthwise convolutions -------------------------------------------------------------------------------

    def _DepthwiseConv2dNative(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[0], ins[1])
        x, f = self._nhwc(ins[0]), np.ascontiguousarray(ins[1])
        if x.shape[3] != f.shape[2] or min(x.shape) <= 0 or min(f.shape) <= 0:
            raise _NoFastPath
        g = self._geometry(x.shape, f.shape[0], f.shape[1])
        if g.oh <= 0 or g.ow <= 0:
            raise _NoFastPath
        y = self._out(arena, (x.shape[0], g.oh, g.ow, x.shape[3] * f.shape[3]), dt)
        depthwise.forward(x, f, *_window(g), y)
        self._note("kernels/depthwise: direct")
        return self._result(y)

    def _DepthwiseConv2dNativeBackpropInput(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[1], ins[2])
        shape = N._nhwc_shape(_sizes(ins[0]), self.fmt)
        f, dy = np.ascontiguousarray(ins[1]), self._nhwc(ins[2])
        if shape[3] != f.shape[2] or min(shape) <= 0 or min(f.shape) <= 0:
            raise _NoFastPath
        g = self._geometry(shape, f.shape[0], f.shape[1])
        if g.oh <= 0 or g.ow <= 0 or dy.shape != (shape[0], g.oh, g.ow, shape[3] * f.shape[3]):
            raise _NoFastPath
        dx = self._out(arena, shape, dt)
        depthwise.backprop_input(dy, f, *_window(g), dx)
        self._note("kernels/depthwise: direct")
        return self._result(dx)

    def _DepthwiseConv2dNativeBackpropFilter(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[0], ins[2])
        fs = _sizes(ins[1])
        x, dy = self._nhwc(ins[0]), self._nhwc(ins[2])
        if x.shape[3] != fs[2] or min(x.shape) <= 0 or min(fs) <= 0:
            raise _NoFastPath
        g = self._geometry(x.shape, fs[0], fs[1])
        if g.oh <= 0 or g.ow <= 0 or dy.shape != (x.shape[0], g.oh, g.ow, fs[2] * fs[3]):
            raise _NoFastPath
        chunks = max(numba_threads(), 1)
        parts = self._scratch(arena)(chunks * math.prod(fs), dt).reshape(chunks, fs[0], fs[1], fs[2] * fs[3])
        df = self._out(arena, fs, dt)
        depthwise.backprop_filter(x, dy, _window(g), df, parts)
        self._note("kernels/depthwise: direct")
        return df

    # -- pooling ----------------------------------------------------------------------------------------------

    def _pool_geom(self, shape: tuple[int, ...]) -> N._Geom:
        g = self._geometry(shape, *self.ksize)
        if g.oh <= 0 or g.ow <= 0 or min(shape) <= 0:
            raise _NoFastPath
        return g

    def _MaxPool(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[0])
        x = self._nhwc(ins[0])
        g = self._pool_geom(x.shape)
        y = self._out(arena, (x.shape[0], g.oh, g.ow, x.shape[3]), dt)
        pool.max_pool(x, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], y)
        self._note("kernels/pool")
        return self._result(y)

    def _AvgPool(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[0])
        x = self._nhwc(ins[0])
        g = self._pool_geom(x.shape)
        y = self._out(arena, (x.shape[0], g.oh, g.ow, x.shape[3]), dt)
        pool.avg_pool(x, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], y)
        self._note("kernels/pool")
        return self._result(y)

    def _MaxPoolGrad(self, ins: list, arena: Any) -> Any:  # dx, or (dx, bias gradient) when fused
        dt = _float4(ins[0], ins[2])
        x, dy = self._nhwc(ins[0]), self._nhwc(ins[2])
        g = self._pool_geom(x.shape)
        if dy.shape != (x.shape[0], g.oh, g.ow, x.shape[3]):
            raise _NoFastPath
        dx = self._out(arena, x.shape, dt)
        if not _tiled(self.op):
            pool.max_pool_grad(x, dy, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], dx)
            self._note("kernels/pool")
            return self._result(dx)
        parts = self._scratch(arena)(numba_threads() * x.shape[3], dt).reshape(-1, x.shape[3])
        covered = g.sh == g.kh and g.sw == g.kw and (g.oh - 1) * g.sh - g.ph[0] + g.kh >= x.shape[1] \
            and (g.ow - 1) * g.sw - g.pw[0] + g.kw >= x.shape[2]
        rows = pool_grad_rows.applies(x, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0])
        if rows:
            pool_grad_rows.max_pool_2x2_grad(x, dy, self.relu, dx, parts)
        else:
            pool.max_pool_grad_tiled(x, dy, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], self.relu, not covered, dx,
                                     parts)
        self._note("kernels/pool: tiled" + (" 2x2 rows" if rows else "") + (" +relu grad" if self.relu else "")
                   + (" +bias grad" if self.extra_slot >= 0 else ""))
        return (dx, parts.sum(axis=0)) if self.extra_slot >= 0 else dx

    def _AvgPoolGrad(self, ins: list, arena: Any) -> np.ndarray:
        dt = _float4(ins[1])
        shape = N._nhwc_shape(_sizes(ins[0]), self.fmt)
        dy = self._nhwc(ins[1])
        g = self._pool_geom(shape)
        if dy.shape != (shape[0], g.oh, g.ow, shape[3]):
            raise _NoFastPath
        dx = self._out(arena, shape, dt)
        pool.avg_pool_grad(dy, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], dx)
        self._note("kernels/pool")
        return self._result(dx)


def _window(g: N._Geom) -> tuple[int, int, int, int, int, int]:
    """(sh, sw, dh, dw, top pad, left pad): what the depthwise kernels take."""
    return g.sh, g.sw, g.dh, g.dw, g.ph[0], g.pw[0]


def _taps(op: Operation) -> int:
    fmt = op.attrs.get("data_format", "NHWC")
    if "ksize" in op.attrs:
        kh, kw = N._spatial(op.attrs["ksize"], fmt)
    else:
        v = A._ints(op.inputs[1]) if op.type.endswith("BackpropFilter") else op.inputs[1].shape.as_tuple()
        known = [d for d in (v[:2] if v is not None else ()) if d is not None]
        kh, kw = (known[0], known[1]) if len(known) == 2 else (3, 3)  # unknown filter: assume 3x3
    return max(kh * kw, 1)


# A GEMM side (patch length kh*kw*C or output channels O) below which a conv's GEMMs run on one OpenBLAS
# thread: two threads on such thin GEMMs took 3.6-8 ms instead of 0.18 ms on a loaded machine (12544x4 @
# 4x64 and 12544x64 @ 64x4, dcgan's last transposed conv; bench/README.md).
THIN_GEMM = 16


def _width(op: Operation) -> int:
    """GEMM multiply-adds per patch element, roughly; 0 when the GEMMs are thin (see THIN_GEMM)."""
    if op.type in DEPTHWISE_OPS:
        return 1  # no GEMM: one multiply-add per tap and output channel
    if op.type not in CONV_OPS:
        return 0
    v = A._ints(op.inputs[1]) if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape.as_tuple()
    if v is None or len(v) != 4:
        return 64
    if None not in v:
        kh, kw, c, o = known_dims(v)
        if min(kh * kw * c, o) < THIN_GEMM:
            return 0
    return max(v[2] or 1, v[3] or 1)


def predicted_kernel(op: Operation) -> str:
    """The kernel the step will run, from the static shapes (updated at run time if they differ)."""
    if op.type in POOL_OPS:
        return "kernels/pool: tiled" if op.type == "MaxPoolGrad" and _tiled(op) else "kernels/pool"
    if op.type in DEPTHWISE_OPS:
        return "kernels/depthwise: direct"
    fmt = op.attrs.get("data_format", "NHWC")
    fshape = op.inputs[1].shape.as_tuple() if op.type != "Conv2DBackpropFilter" else None
    xshape = op.inputs[0].shape.as_tuple() if op.type != "Conv2DBackpropInput" else None
    c = (fshape[2] if fshape else None) if xshape is None else N._nhwc_shape(xshape, fmt)[3]
    o = (fshape[3] if fshape else None) or 0
    k: Sequence[int | None] | None = fshape[:2] if fshape else None
    if op.type == "Conv2DBackpropFilter" and (v := A._ints(op.inputs[1])) is not None:
        c, k, o = v[2], v[:2], v[3] or 0
    if c is None or k is None or None in k:
        return "kernels/conv (chosen by shape at the first run)"
    kh, kw = known_dims(k)
    sh, sw = N._spatial(op.attrs["strides"], fmt)
    dh, dw = N._spatial(op.attrs.get("dilations") or [1, 1, 1, 1], fmt)
    g = conv.ConvGeom(kh, kw, sh, sw, dh, dw, int(op.attrs["padding"] == "EXPLICIT"), 0, 1, 1)
    kind = {"Conv2DBackpropFilter": "filter_grad", "Conv2DBackpropInput": "input_grad"}.get(op.type, "forward")
    how = conv.method(c, g, kind, o)
    if op.type == "Conv2DBackpropInput" and how not in ("gemm", "winograd"):
        how = "gemm+col2im"
    return "kernels/conv: " + (_winograd_label(op, kh, kw) if how == "winograd" else how)


def _winograd_label(op: Operation, kh: int, kw: int) -> str:
    """"winograd F(2x2,5x5)" where the spatial size that the tiles cover is known, else "winograd"."""
    t = op.inputs[2] if op.type == "Conv2DBackpropFilter" else op.outputs[0]
    dims = t.shape.as_tuple()
    if dims is None or len(dims) != 4:
        return "winograd"
    _, h, w, _ = N._nhwc_shape(dims, op.attrs.get("data_format", "NHWC"))
    return "winograd" if h is None or w is None else winograd.label(kh, kw, h, w)


def window_step(op: Operation, slots: dict, fetched: set, fallback: Step,
                epilogue: Epilogue | None = None,
                op_steps: dict | None = None) -> tuple[WindowStep, dict[str, Any]]:
    """The step for a conv/pool `op` (with its fused epilogue, if any) and its plan-report entry."""
    entry: dict[str, Any] = {"ops": [op.name], "backend": "cpu", "key": "", "compile_seconds": 0.0,
                             "source": predicted_kernel(op)}
    if epilogue is None:
        t = op.outputs[0]
        step = WindowStep(op, [slots[x] for x in op.inputs], slots[t], t in fetched, fallback, entry)
        return step, entry
    assert op_steps is not None
    entry["ops"] += [m.name for m in epilogue.ops]
    entry["source"] += " +bias" + ("+relu" if epilogue.relu else "")
    if epilogue.pool is not None:
        entry["source"] += " +" + epilogue.pool.type.lower()
    # the chain op by op: the interpreter's values and errors
    interpreted = Chain([fallback] + [op_steps[m] for m in epilogue.ops])
    t = epilogue.out
    if op.type == "MaxPoolGrad":
        entry["source"] = "kernels/pool: tiled +relu grad" + (" +bias grad" if epilogue.extra is not None else "")
        extra = -1 if epilogue.extra is None else slots[epilogue.extra]
        step = WindowStep(op, [slots[x] for x in op.inputs], slots[t], t in fetched, interpreted, entry,
                          relu=True, extra_slot=extra)
        return step, entry
    extra = -1 if epilogue.extra is None else slots[epilogue.extra]
    step = WindowStep(op, [slots[x] for x in op.inputs], slots[t], t in fetched, interpreted, entry,
                      slots[epilogue.ops[0].inputs[1]], epilogue.relu, extra, pool_op=epilogue.pool)
    return step, entry
