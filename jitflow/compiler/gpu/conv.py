"""CUDA steps for convolution, pooling and BiasAddGrad ops placed on a GPU (kernels: `codegen/cuda_conv.py`).

`device_window_step` replaces a conv/pool/depthwise `WindowStep` (or BiasAddGrad's interpreted step) of an op on
/gpu:N by a `CudaWindowStep`. The step checks what its kernel needs (float32/64, rank 4, shapes that
agree, nothing empty); anything else runs the op interpreted on host copies, which gives the
interpreter's values and errors. Kernels are compiled per geometry (`cuda_conv.Window`) through the
compile cache; the plan report names the kernel, so `explain` shows it.

`fuse_conv_epilogues` gives a Conv2D the elementwise CUDA cluster that alone reads its output
(BiasAdd, Relu, ...): the fused kernel runs the cluster on each result element as it leaves the GEMM's
registers. Shapes that do not fit (the cluster broadcasts the conv's output) run the two steps in turn.
"""
from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from jitflow.codegen import cuda_conv as cc
from jitflow.codegen.cache import KernelCompileError
from jitflow.codegen.cuda_depthwise import generate_depthwise
from jitflow.compiler.gpu import runtime  # through the module: tests stand in for its functions
from jitflow.compiler.gpu.memory import DeviceIO, device_buffer, device_store, flat, host_inputs
from jitflow.compiler.gpu.runtime import is_device_array, launch_guard, target
from jitflow.compiler.gpu.steps import CudaClusterStep, _Entry, compile_cuda
from jitflow.compiler.plan import FIRST_SLOT, Step
from jitflow.framework.graph import Operation, Tensor
from jitflow.ops import nn_ops as N

CONV = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
POOL = ("MaxPool", "AvgPool", "MaxPoolGrad", "AvgPoolGrad")
DEPTHWISE = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter")
DEVICE_WINDOW_OPS = frozenset(CONV + POOL + DEPTHWISE + ("BiasAddGrad",))
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# per op: the inputs the kernel reads (device arrays) and the one that holds sizes (host ints), or -1
_ARRAYS = {"Conv2D": (0, 1), "Conv2DBackpropInput": (2, 1), "Conv2DBackpropFilter": (0, 2), "MaxPool": (0,),
           "AvgPool": (0,), "MaxPoolGrad": (0, 2), "AvgPoolGrad": (1,), "BiasAddGrad": (0,),
           DEPTHWISE[0]: (0, 1), DEPTHWISE[1]: (2, 1), DEPTHWISE[2]: (0, 2)}
_SIZES = {"Conv2DBackpropInput": 0, "Conv2DBackpropFilter": 1, "AvgPoolGrad": 0, DEPTHWISE[1]: 0, DEPTHWISE[2]: 1}


class Launch(NamedTuple):
    """What one run of a window op launches: geometry, batch, dtype, output shape, k splits."""

    window: cc.Window | None  # None: BiasAddGrad
    batch: int
    dtype: np.dtype
    out_shape: tuple[int, ...]
    splits: int = 1


def describe(op_type: str, fused: list[str] | None = None) -> str:
    """The kernel an op runs on the device, as the plan report (and `explain`) shows it."""
    if op_type in CONV:
        t = cc.tiles_for(target())
        how = f"implicit GEMM {t.tm}x{t.tn}x{t.tk}" + (", split k" if op_type == "Conv2DBackpropFilter" else "")
        return f"codegen/cuda_conv: {how}" + (" +" + "+".join(fused) if fused else "")
    if op_type == "BiasAddGrad":
        return "codegen/cuda_conv: channel sums"
    if op_type in DEPTHWISE:
        from jitflow.compiler.gpu.depthwise import describe as describe_depthwise  # (it imports this module)

        return describe_depthwise(op_type)
    return "codegen/cuda_conv: " + ("gather per input" if op_type.endswith("Grad") else "per output")


class CudaWindowStep:
    """A conv, depthwise conv, pooling or BiasAddGrad op on the device (optionally with a fused epilogue)."""

    kind = "window"
    backend = "cuda"
    stateful = False

    def __init__(self, base: Any, op: Operation, in_slots: list[int], out_slot: int, io: DeviceIO,
                 report: dict[str, Any]) -> None:
        self.base = base  # the host step it replaces: runs the op interpreted when the kernel cannot
        self.op = op
        self.ops: tuple[Operation, ...] = (op,)
        self.reads = tuple(dict.fromkeys(s for s in in_slots if s >= FIRST_SLOT))
        self.writes = (out_slot,) if out_slot >= FIRST_SLOT else ()
        self.in_slots = in_slots
        self.out_slot = out_slot
        self.io = io
        self.report = report
        self.fmt = op.attrs.get("data_format", "NHWC")
        self.key = ("cuda", id(self))
        self.io.owner = self.key
        self.kernels: dict[Any, Any] = {}
        self.epi: CudaClusterStep | None = None  # a fused epilogue cluster (Conv2D only)
        self.epi_input = -1  # the epilogue's input that is the conv's output
        self.entries: dict[tuple, _Entry | None] = {}
        self._lock = threading.Lock()

    def __call__(self, ctx: Any, vals: list) -> None:
        run = self.plan_launch(vals)
        if run is None:
            return self.interpret(ctx, vals)
        store = device_store(ctx)
        arrays = [self.io.device_input(k, vals[self.in_slots[k]], vals, store) for k in _ARRAYS[self.op.type]]
        if self.epi is not None and self._fused(ctx, vals, run, arrays, store):
            return None
        out = device_buffer(vals, (self.key, 0), run.out_shape, run.dtype)
        self._launch(run, arrays, out, vals)
        self.io.put_output(0, self.out_slot, out, vals)
        if self.epi is not None:
            self.epi(ctx, vals)
        return None

    def interpret(self, ctx: Any, vals: list) -> None:
        """The op's interpreted step on host copies (its values or errors), then any epilogue's step."""
        host_inputs(self.in_slots, vals)
        fallback = self.base.fallback if self.base.kind == "window" else self.base  # a WindowStep: its ops
        fallback(ctx, vals)
        if self.epi is not None:
            self.epi(ctx, vals)

    # -- what to launch ---------------------------------------------------------------------------------

    def plan_launch(self, vals: list) -> Launch | None:
        """The launch for these inputs, or None when the kernel does not apply (then: interpreted)."""
        ins = [vals[s] for s in self.in_slots]
        arrays = [ins[k] for k in _ARRAYS[self.op.type]]
        dt = getattr(arrays[0], "dtype", None)
        if dt not in _FLOATS or any(not _is_array(a) or a.dtype != dt for a in arrays):
            return None
        shapes = [tuple(int(d) for d in a.shape) for a in arrays]
        if self.op.type == "BiasAddGrad":
            return _bias_grad_launch(shapes[0], self.fmt, dt)
        sizes = _host_sizes(ins[_SIZES[self.op.type]]) if self.op.type in _SIZES else None
        if any(len(s) != 4 for s in shapes) or (self.op.type in _SIZES and sizes is None):
            return None
        if self.op.type in CONV:
            return _conv_launch(self.op, self.fmt, shapes, sizes, dt)
        if self.op.type in DEPTHWISE:
            from jitflow.compiler.gpu.depthwise import depthwise_launch  # (it imports this module)

            return depthwise_launch(self.op, self.fmt, shapes, sizes, dt)
        return _pool_launch(self.op, self.fmt, shapes, sizes, dt)

    def _kernel(self, run: Launch) -> Any:
        key = (run.window, run.dtype.name)
        fn = self.kernels.get(key)
        if fn is None:
            with self._lock:
                fn = self.kernels.get(key)
                if fn is None:
                    fn = self._compile(run)
                    self.kernels[key] = fn
        return fn

    def _compile(self, run: Launch) -> Any:
        t, dt = self.op.type, run.dtype.name
        if t == "BiasAddGrad":
            inner = 0 if run.window is None or run.window.fmt == "NHWC" else run.window.h
            source = cc.generate_bias_grad(dt, inner, target())
        elif t in CONV:
            assert run.window is not None
            source = cc.generate_conv(t, run.window, dt, target())
        elif t in DEPTHWISE:
            assert run.window is not None
            source = generate_depthwise(t, run.window, dt, target())
        else:
            assert run.window is not None
            source = cc.generate_pool(t, run.window, dt, target())
        parts = {"window": [t, dt] + (run.window.key() if run.window is not None else [])}
        fn = compile_cuda(source, parts, [t], self.report)
        self._note(self.report.get("source", ""))
        return fn

    def _note(self, origin: str) -> None:
        fused = [op.type for op in self.epi.c.ops] if self.epi is not None else None
        self.report["source"] = f"{describe(self.op.type, fused)} ({origin})"

    def _launch(self, run: Launch, arrays: list[Any], out: Any, vals: list) -> None:
        kernel = self._kernel(run)
        flats = [flat(a) for a in arrays]
        with launch_guard():
            if self.op.type == "BiasAddGrad":
                c = run.out_shape[0]
                kernel(flats[0], out, int(arrays[0].size) // c, c)
            elif self.op.type in CONV or self.op.type in DEPTHWISE:
                size = int(np.prod(run.out_shape))
                rest = [device_buffer(vals, (self.key, 1), (size * run.splits,), run.dtype)] if run.splits > 1 else []
                kernel(flats[0], flats[1], flat(out), run.batch, run.splits, *rest)
            else:
                kernel(*flats, flat(out), run.batch)

    # -- the fused epilogue -----------------------------------------------------------------------------

    def _fused(self, ctx: Any, vals: list, run: Launch, arrays: list[Any], store: Any) -> bool:
        """Runs the conv and its epilogue as one kernel; False when the shapes do not allow it."""
        epi = self.epi
        assert epi is not None
        ins = epi.gather(vals, store, skip=self.epi_input)
        if ins is None or run.splits != 1:
            return False
        shapes = tuple([run.out_shape if i == self.epi_input else tuple(a.shape) for i, a in enumerate(ins)])
        if shapes not in self.entries:
            if len(self.entries) > 64:
                self.entries.clear()
            self.entries[shapes] = self._fused_entry(shapes, run)
        ent = self.entries[shapes]
        if ent is None:
            return False
        outs = epi.outputs(ent, ins, vals)
        err = epi.err_buffer(vals)
        unused = device_buffer(vals, (self.key, 2), (1,), run.dtype)
        rest = [flat(a) for i, a in enumerate(ins) if i != self.epi_input]
        with launch_guard():
            ent.kernel(flat(arrays[0]), flat(arrays[1]), unused, run.batch, 1, *rest, *[flat(o) for o in outs],
                       ent.exts, err)
        if epi.has_checks and runtime.to_host(err)[0]:
            return False  # the unfused run gives the epilogue's interpreted error
        epi.publish(outs, vals, store)
        return True

    def _fused_entry(self, shapes: tuple, run: Launch) -> _Entry | None:
        """The fused kernel for these shapes, or None when the epilogue does not map 1:1 onto the output."""
        epi = self.epi
        assert epi is not None and run.window is not None
        try:
            layout, exts, out_shapes = epi.shape_plan(shapes)
            if not all(layout.masks[self.epi_input]):
                return None  # the epilogue broadcasts the conv's output: run the two steps
            with self._lock:
                source = cc.generate_conv("Conv2D", run.window, run.dtype.name, target(), epi.c, layout,
                                          self.epi_input)
                parts = {"window": ["Conv2D", run.dtype.name] + run.window.key(), "cluster": epi.c.signature(),
                         "layout": layout.key(), "conv_input": self.epi_input}
                kernel = compile_cuda(source, parts, ["Conv2D"] + [op.type for op in epi.c.ops], self.report)
                self._note(self.report.get("source", ""))
        except (ValueError, KernelCompileError):  # LayoutError included: run the two steps
            return None
        return _Entry(kernel, exts, out_shapes, [-1] * len(out_shapes))


def _is_array(a: Any) -> bool:
    return type(a) is np.ndarray or is_device_array(a)


def _host_sizes(v: Any) -> tuple[int, ...] | None:
    """A 4-element sizes input as ints (copied from the device if it lives there), or None."""
    if is_device_array(v):
        v = runtime.to_host(v)
    if type(v) is not np.ndarray or v.shape != (4,) or v.dtype.kind not in "iu":
        return None
    return tuple(int(s) for s in v)


def _window(g: N._Geom, c: int, o: int, fmt: str) -> cc.Window:
    return cc.Window(g.h, g.w, c, o, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph[0], g.pw[0], g.oh, g.ow, fmt)


def _conv_launch(op: Operation, fmt: str, shapes: list[tuple[int, ...]], sizes: tuple[int, ...] | None,
                 dt: np.dtype) -> Launch | None:
    """Conv2D (x, f), Conv2DBackpropInput (dy, f; input sizes) or Conv2DBackpropFilter (x, dy; filter sizes)."""
    t = op.type
    if t == "Conv2D":
        xs, fs = N._nhwc_shape(shapes[0], fmt), shapes[1]
    elif t == "Conv2DBackpropInput":
        assert sizes is not None
        xs, fs = N._nhwc_shape(sizes, fmt), shapes[1]
    else:
        assert sizes is not None
        xs, fs = N._nhwc_shape(shapes[0], fmt), sizes
    if xs[3] != fs[2] or min(xs) <= 0 or min(fs) <= 0:
        return None
    g = N._Geom(xs, fs[0], fs[1], op.attrs)
    if g.oh <= 0 or g.ow <= 0:
        return None
    win = _window(g, xs[3], fs[3], fmt)
    ys = N._fmt_shape((xs[0], g.oh, g.ow, fs[3]), fmt)
    if t == "Conv2D":
        return Launch(win, xs[0], dt, ys)
    if shapes[0 if t == "Conv2DBackpropInput" else 1] != ys:
        return None  # dy does not have the conv's output shape: the interpreter's error
    if t == "Conv2DBackpropInput":
        return Launch(win, xs[0], dt, N._fmt_shape(xs, fmt))
    return Launch(win, xs[0], dt, fs, cc.conv_splits(t, win, xs[0], target()))


def _pool_launch(op: Operation, fmt: str, shapes: list[tuple[int, ...]], sizes: tuple[int, ...] | None,
                 dt: np.dtype) -> Launch | None:
    """MaxPool / AvgPool (x), MaxPoolGrad (x, dy) or AvgPoolGrad (dy; input sizes)."""
    xs = N._nhwc_shape(sizes if sizes is not None else shapes[0], fmt)
    if min(xs) <= 0:
        return None
    g = N._Geom(xs, *N._spatial(op.attrs["ksize"], fmt), op.attrs)
    if g.oh <= 0 or g.ow <= 0 or g.ph[0] >= g.kh or g.pw[0] >= g.kw:
        return None  # (SAME/VALID windows always hold an input pixel: this guards odd explicit paddings)
    win = _window(g, xs[3], xs[3], fmt)
    ys = N._fmt_shape((xs[0], g.oh, g.ow, xs[3]), fmt)
    if op.type in ("MaxPool", "AvgPool"):
        return Launch(win, xs[0], dt, ys)
    if shapes[-1] != ys:
        return None
    return Launch(win, xs[0], dt, N._fmt_shape(xs, fmt))


def _bias_grad_launch(shape: tuple[int, ...], fmt: str, dt: np.dtype) -> Launch | None:
    """BiasAddGrad sums all but the channel axis (the last; NCHW of rank > 2: axis 1)."""
    if len(shape) < 2 or min(shape) <= 0:
        return None
    if fmt == "NCHW" and len(shape) > 2:
        inner = int(np.prod(shape[2:]))
        # the Window only carries the inner size (h) and the layout for the kernel's index arithmetic
        win = cc.Window(inner, 1, shape[1], shape[1], 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, "NCHW")
        return Launch(win, shape[0], dt, (shape[1],))
    return Launch(None, 0, dt, (shape[-1],))


# -- the rewrite's hooks ------------------------------------------------------------------------------------


def device_window_step(st: Step, op: Operation, slots: dict[Tensor, int], fed: set[Tensor],
                       consts: list[bool], var_of: Any, report: dict[str, Any]) -> CudaWindowStep:
    """The CUDA step replacing `st` (a WindowStep, or BiasAddGrad's interpreted step) of `op`."""
    in_slots = [slots[t] for t in op.inputs]
    io = DeviceIO(in_slots, consts, [var_of(t, fed) for t in op.inputs])
    t = op.outputs[0]
    out_slot = slots[t] if t not in fed else 1  # (1: the trash slot)
    report.update(backend="cuda", key="", compile_seconds=0.0, source=describe(op.type) + " (deferred)")
    return CudaWindowStep(st, op, in_slots, out_slot, io, report)


def fuse_conv_epilogues(steps: list[Step], readers: dict[Tensor, set[Operation]], fetched: set[Tensor]) -> None:
    """Gives each CUDA Conv2D the elementwise CUDA cluster that alone reads its output, in place.

    The fused step runs where the epilogue ran; only steps without side effects may sit between the two,
    so the conv's operands still hold the values it would have read.
    """
    from jitflow.compiler.cluster import ELEMENTWISE
    from jitflow.compiler.gpu.rewrite import _pure

    owner = {op: i for i, st in enumerate(steps) if isinstance(st, CudaClusterStep) for op in st.c.ops}
    drop: list[int] = []
    for i, cs in enumerate(steps):
        if not isinstance(cs, CudaWindowStep) or cs.op.type != "Conv2D" or cs.epi is not None:
            continue
        t = cs.op.outputs[0]
        rs = readers.get(t, set())
        j = owner.get(next(iter(rs))) if rs else None
        if j is None or t in fetched or j < i or any(owner.get(r) != j for r in rs):
            continue
        epi = steps[j]
        if not isinstance(epi, CudaClusterStep):
            continue
        ins = [k for k, inp in enumerate(epi.c.inputs) if inp.tensor is t]
        if epi.c.kind != ELEMENTWISE or len(ins) != 1 or any(v is not None for v in epi.stores) \
                or not all(_pure(steps[p]) for p in range(i + 1, j)):
            continue
        cs.epi, cs.epi_input = epi, ins[0]
        cs.ops = cs.ops + tuple(epi.c.ops)
        cs.reads = tuple(dict.fromkeys([*cs.reads, *(s for s in epi.in_slots if s >= FIRST_SLOT)]))
        cs.writes = tuple(dict.fromkeys([*cs.writes, *(s for s in epi.out_slots if s >= FIRST_SLOT)]))
        cs.report["fused"] = [op.name for op in epi.c.ops]
        cs._note("deferred")
        epi.report["source"] = f"fused into {cs.op.name}"
        steps[j] = cs
        drop.append(i)
    for i in sorted(drop, reverse=True):
        del steps[i]
