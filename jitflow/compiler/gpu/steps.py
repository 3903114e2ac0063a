"""The CUDA steps: clusters, MatMul (alone or with a fused epilogue), sparse cross-entropy, pass-throughs."""
from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import numpy as np

from jitflow.codegen import cuda as cg
from jitflow.codegen.cache import KernelCompileError
from jitflow.compiler.backend import backend
from jitflow.compiler.cluster import Cluster
from jitflow.compiler.gpu import runtime  # through the module: tests stand in for its functions
from jitflow.compiler.gpu.memory import (
    DeviceIO,
    DevicePool,
    DeviceVariables,
    device_buffer,
    device_store,
    flat,
    host_inputs,
)
from jitflow.compiler.gpu.runtime import is_device_array, launch_guard, target
from jitflow.compiler.interp import op_error
from jitflow.compiler.plan import Step
from jitflow.compiler.step import CUDA, value_slots
from jitflow.framework.graph import Operation
from jitflow.ir.layout import Layout, LayoutError, compute_layout

# -- kernels ---------------------------------------------------------------------------------------------


def compile_cuda(source: str, parts: dict[str, Any], ops: list[str], report: dict[str, Any]) -> Any:
    """Compiles (or loads) a generated CUDA module through the compile cache; records it in `report`."""
    from jitflow.codegen.cache import get_kernel, kernel_key

    t0 = time.perf_counter()
    parts = {**parts, "target": target().key(), "codegen": cg.CODEGEN_VERSION}
    with warnings.catch_warnings():
        # simulated kernels are plain Python: Numba writes no cache files for them to store on disk
        warnings.filterwarnings("ignore", message=".*wrote no Numba cache files.*")
        fn, origin = get_kernel(source, cg.ENTRY, parts, {"ops": ops}, "cuda")
    dt = time.perf_counter() - t0
    report["key"] = kernel_key({**parts, "source": source, "entry": cg.ENTRY, "backend": "cuda"})
    report["compile_seconds"] = round(report.get("compile_seconds", 0.0) + (dt if origin != "memory" else 0.0), 6)
    report["source"] = origin
    return fn


class _Entry:
    """What a CUDA cluster step decided for one tuple of input shapes."""

    __slots__ = ("kernel", "exts", "out_shapes", "out_sizes", "in_place")

    def __init__(self, kernel: Any, exts: tuple[int, ...], out_shapes: list[tuple[int, ...]],
                 in_place: list[int]) -> None:
        self.kernel = kernel
        self.exts = exts
        self.out_shapes = out_shapes
        self.out_sizes = [int(np.prod(s)) for s in out_shapes]
        self.in_place = in_place  # per output: the input whose device array it overwrites, or -1


_ON_CPU = _Entry(None, (), [], [])  # the CUDA kernel cannot be generated: run the CPU step


class CudaClusterStep:
    """Runs a cluster placed on a GPU as a CUDA kernel (the CPU `ClusterStep` it replaces runs fallbacks)."""

    kind = "cluster"
    backend = CUDA

    def __init__(self, base: Any, io: DeviceIO) -> None:
        c: Cluster = base.c
        self.base = base
        self.c = c
        self.ops, self.reads, self.writes, self.stateful = base.ops, base.reads, base.writes, base.stateful
        self.io = io
        self.in_slots: list[int] = base.in_slots
        self.out_slots: list[int] = base.out_slots
        self.report: dict[str, Any] = base.report
        self.var_shapes: dict[str, Any] = base.var_shapes
        self.var_names = [i.var for i in c.inputs]
        self.in_dtypes = [np.dtype(i.dtype) for i in c.inputs]
        self.out_dtypes = [np.dtype(c.nodes[o.node].dtype) for o in c.outputs]
        self.stores = [o.var for o in c.outputs]
        self.deps = [sorted(c.deps(c.n_inputs + o.node)) for o in c.outputs]
        self.has_checks = bool(base.has_checks)
        self.entries: dict[tuple, _Entry | None] = {}
        self.kernels: dict[Any, Any] = {}
        self.key = ("cuda", id(self))
        self.io.owner = self.key
        self._lock = threading.Lock()
        stored = [v for v in self.stores if v is not None]
        # variables this step may overwrite in place (no snapshot of them is read after it: see lower_gpu_clusters)
        self.in_place_ok = {v for v in stored if stored.count(v) == 1}
        self.pools = [DevicePool() if v is not None else None for v in self.stores]

    def __call__(self, ctx: Any, vals: list) -> None:
        store = device_store(ctx)
        arrays = self.gather(vals, store)
        if arrays is None:
            return self.interpret(ctx, vals)
        shapes = tuple([tuple(a.shape) for a in arrays])
        if shapes in self.entries:
            ent = self.entries[shapes]
        else:
            ent = self.prepare(shapes)
        if ent is None:
            return self.interpret(ctx, vals)
        if ent is _ON_CPU:
            host_inputs(self.in_slots, vals)
            return self.base(ctx, vals)  # type: ignore[no-any-return]
        outs = self.outputs(ent, arrays, vals)
        err = self.err_buffer(vals)
        with launch_guard():
            ent.kernel(*[flat(a) for a in arrays], *[flat(o) for o in outs], ent.exts, err)
        if self.has_checks and runtime.to_host(err)[0]:
            return self.interpret(ctx, vals)
        self.publish(outs, vals, store)
        return None

    def gather(self, vals: list, store: DeviceVariables, skip: int = -1) -> list[Any] | None:
        """The inputs as device arrays (input `skip` left None); None when one is missing or mistyped."""
        arrays: list[Any] = []
        for k, (slot, var, dt) in enumerate(zip(self.in_slots, self.var_names, self.in_dtypes)):
            if k == skip:
                arrays.append(None)
                continue
            if var is not None:
                a = store.device_value(var)
            else:
                a = vals[slot]
                if a is None:
                    return None
                a = self.io.device_input(k, a, vals, store)
            if a is None or a.dtype != dt:
                return None
            arrays.append(a)
        return arrays

    def outputs(self, ent: _Entry, arrays: list[Any], vals: list) -> list[Any]:
        """Device arrays for the outputs: a variable's own array (in place), a pooled one, or the arena's."""
        outs = []
        for j, dt in enumerate(self.out_dtypes):
            src = ent.in_place[j]
            pool = self.pools[j]
            if src >= 0:
                outs.append(arrays[src])
            elif pool is not None:
                outs.append(pool.get(ent.out_shapes[j], dt))
            else:
                outs.append(device_buffer(vals, (self.key, j), ent.out_shapes[j], dt))
        return outs

    def err_buffer(self, vals: list) -> Any:
        """The kernel's error flag, cleared when the cluster has checks."""
        err = device_buffer(vals, (self.key, -1), (1,), np.dtype(np.int64))
        if self.has_checks:
            err.copy_to_device(np.zeros(1, np.int64))
        return err

    def publish(self, outs: list[Any], vals: list, store: DeviceVariables) -> None:
        """Stores variable values and hands the outputs to their readers."""
        for j, o in enumerate(outs):
            var = self.stores[j]
            if var is not None:
                store.device_assign(var, o)
            self.io.put_output(j, self.out_slots[j], o, vals)

    def interpret(self, ctx: Any, vals: list) -> None:
        """Runs the members' interpreted steps on host copies of the inputs (the interpreter's errors)."""
        host_inputs(self.in_slots, vals)
        for step in self.base.member_steps:
            step(ctx, vals)

    def compile_predicted(self) -> None:
        """Compiles the kernel the static shapes predict (unknown dims taken as 64), for `explain`."""
        shapes = []
        for i in self.c.inputs:
            shp = i.tensor.shape if i.tensor is not None else self.var_shapes.get(i.var or "")
            dims = shp.as_tuple() if shp is not None else None
            if dims is None:
                return
            shapes.append(tuple(64 if d is None else int(d) for d in dims))
        self.prepare(tuple(shapes))

    # decisions per shape tuple
    def prepare(self, shapes: tuple) -> _Entry | None:
        """Decides (and caches) the kernel for these input shapes; None: run interpreted."""
        try:
            ent: _Entry | None = self._decide(shapes)
        except LayoutError:
            ent = None
        except (ValueError, KernelCompileError) as e:
            # no device lowering for some node: the cluster keeps its CPU kernel, and says why
            ent = _ON_CPU
            self.report.update(backend="cpu", cuda_fallback=str(e))
        if len(self.entries) > 64:
            self.entries.clear()
        self.entries[shapes] = ent
        return ent

    def _decide(self, shapes: tuple) -> _Entry:
        layout, exts, out_shapes = self.shape_plan(shapes)
        kernel = self._kernel(layout)
        return _Entry(kernel, exts, out_shapes, self._in_place(layout, out_shapes, shapes))

    def shape_plan(self, shapes: tuple) -> tuple[Layout, tuple[int, ...], list[tuple[int, ...]]]:
        """(layout, group extents, output shapes) for these input shapes; LayoutError if they do not fit."""
        # the validity rules are the CPU step's (its checks raise LayoutError): both backends agree
        space, axes, out_shapes = self.base.output_shapes(shapes)
        layout, exts = compute_layout(list(shapes), space, axes)
        return layout, tuple(int(e) for e in exts), out_shapes

    def _in_place(self, layout: Layout, out_shapes: list[tuple[int, ...]], shapes: tuple) -> list[int]:
        """Per output: the variable input it may overwrite (each element read and written by one point)."""
        res = [-1] * len(self.c.outputs)
        if self.has_checks or self.c.reduction() is not None:
            return res  # a failed check re-runs the cluster from the old values: they must survive
        for j, var in enumerate(self.stores):
            if var is None or var not in self.in_place_ok:
                continue
            for k, v in enumerate(self.var_names):
                if v == var and all(layout.masks[k]) and shapes[k] == out_shapes[j]:
                    res[j] = k
        return res

    def _kernel(self, layout: Layout) -> Any:
        fn = self.kernels.get(layout)
        if fn is not None:
            return fn
        with self._lock:
            fn = self.kernels.get(layout)
            if fn is None:
                cuda_backend = backend(CUDA)
                source = cuda_backend.render(self.c, layout)
                parts = {"cluster": self.c.signature(), "layout": layout.key()}
                fn = cuda_backend.compile(source, parts, [op.type for op in self.c.ops], self.report)
                self.kernels[layout] = fn
        return fn


class CudaMatMulStep:
    """MatMul of two 2-D float arrays as a tiled CUDA kernel."""

    kind = "matmul"
    backend = CUDA
    stateful = False

    def __init__(self, base: Any, io: DeviceIO, report: dict[str, Any]) -> None:
        self.base = base
        self.op: Operation = base.op
        self.ops, self.reads, self.writes = base.ops, base.reads, base.writes
        self.io = io
        self.in_slots = [base.sa, base.sb]
        self.out_slot: int = base.out_slot
        self.ta, self.tb = bool(base.ta), bool(base.tb)
        self.dtype = np.dtype(base.dtype)
        self.report = report
        self.key = ("cuda", id(self))
        self.io.owner = self.key
        self.kernel: Any = None

    def __call__(self, ctx: Any, vals: list) -> None:
        store = device_store(ctx)
        dims = self.dims(vals)
        if dims is None:
            return self.interpret(ctx, vals)
        m, n, k = dims
        da, db = self.operands(vals, store)
        out = device_buffer(vals, (self.key, 0), (m, n), self.dtype)
        self.compile_predicted()
        with launch_guard():
            self.kernel(flat(da), flat(db), flat(out), m, n, k)
        self.io.put_output(0, self.out_slot, out, vals)
        return None

    def compile_predicted(self) -> None:
        """Compiles the kernel (it does not depend on shapes), for `explain`."""
        if self.kernel is None:
            source = cg.generate_matmul(self.dtype.name, self.ta, self.tb, target())
            self.kernel = compile_cuda(source, {"matmul": [self.dtype.name, self.ta, self.tb]}, ["MatMul"],
                                       self.report)

    def dims(self, vals: list) -> tuple[int, int, int] | None:
        """(m, n, k) of the product, or None when the operands are not two matching 2-D arrays."""
        a, b = vals[self.in_slots[0]], vals[self.in_slots[1]]
        if a is None or b is None or len(np.shape(a)) != 2 or len(np.shape(b)) != 2 \
                or a.dtype != self.dtype or b.dtype != self.dtype:
            return None
        m, k = (a.shape[1], a.shape[0]) if self.ta else a.shape
        k2, n = (b.shape[1], b.shape[0]) if self.tb else b.shape
        return (int(m), int(n), int(k)) if k == k2 else None

    def operands(self, vals: list, store: DeviceVariables) -> tuple[Any, Any]:
        """Both operands as device arrays."""
        return (self.io.device_input(0, vals[self.in_slots[0]], vals, store),
                self.io.device_input(1, vals[self.in_slots[1]], vals, store))

    def interpret(self, ctx: Any, vals: list) -> None:
        """The interpreted MatMul on host copies (the interpreter's result or error)."""
        host_inputs(self.in_slots, vals)
        self.base.fallback(ctx, vals)


class FusedMatMulStep:
    """A MatMul and the elementwise cluster that is its only reader, as one kernel (bias, activation...).

    The product never reaches memory: each result element runs the epilogue as it leaves the tile.
    Shapes that do not fit (the epilogue broadcasts the product) run the two steps one after the other.
    """

    kind = "fused_matmul"
    backend = CUDA

    def __init__(self, mm: CudaMatMulStep, epi: CudaClusterStep, mm_input: int) -> None:
        self.mm = mm
        self.epi = epi
        self.mm_input = mm_input
        self.c = epi.c
        self.ops = mm.ops + epi.ops
        self.reads = value_slots([*mm.reads, *epi.reads])
        self.writes = value_slots([*mm.writes, *epi.writes])
        self.stateful = epi.stateful
        self.report = epi.report
        self.entries: dict[tuple, _Entry | None] = {}
        self.key = ("cuda-fused", id(self))
        self._lock = threading.Lock()

    def __call__(self, ctx: Any, vals: list) -> None:
        store = device_store(ctx)
        dims = self.mm.dims(vals)
        arrays = self.epi.gather(vals, store, skip=self.mm_input) if dims is not None else None
        if dims is None or arrays is None:
            return self.unfused(ctx, vals)
        m, n, k = dims
        shapes = tuple([(m, n) if i == self.mm_input else tuple(a.shape) for i, a in enumerate(arrays)])
        ent = self.entries[shapes] if shapes in self.entries else self.prepare(shapes)
        if ent is None:
            return self.unfused(ctx, vals)
        da, db = self.mm.operands(vals, store)
        outs = self.epi.outputs(ent, arrays, vals)
        err = self.epi.err_buffer(vals)
        unused_c = device_buffer(vals, (self.key, 0), (1,), self.mm.dtype)
        rest = [flat(a) for i, a in enumerate(arrays) if i != self.mm_input]
        with launch_guard():
            ent.kernel(flat(da), flat(db), unused_c, m, n, k, *rest, *[flat(o) for o in outs], ent.exts, err)
        if self.epi.has_checks and runtime.to_host(err)[0]:
            return self.unfused(ctx, vals)  # the epilogue's interpreted run reports the error
        self.epi.publish(outs, vals, store)
        return None

    def unfused(self, ctx: Any, vals: list) -> None:
        """The MatMul step, then the epilogue's step."""
        self.mm(ctx, vals)
        self.epi(ctx, vals)

    def prepare(self, shapes: tuple) -> _Entry | None:
        """The fused kernel for these shapes, or None when the epilogue does not map 1:1 onto the product."""
        try:
            layout, exts, out_shapes = self.epi.shape_plan(shapes)
            if not all(layout.masks[self.mm_input]):
                raise LayoutError("the epilogue broadcasts the product")
            with self._lock:
                mm = self.mm
                source = cg.generate_matmul(mm.dtype.name, mm.ta, mm.tb, target(), self.c, layout, self.mm_input,
                                            store_c=False)
                parts = {"matmul": [mm.dtype.name, mm.ta, mm.tb], "cluster": self.c.signature(),
                         "layout": layout.key(), "mm_input": self.mm_input}
                kernel = compile_cuda(source, parts, ["MatMul"] + [op.type for op in self.c.ops], self.report)
            ent: _Entry | None = _Entry(kernel, exts, out_shapes, [-1] * len(out_shapes))
        except (ValueError, KernelCompileError):  # LayoutError included: run the two steps
            ent = None
        if len(self.entries) > 64:
            self.entries.clear()
        self.entries[shapes] = ent
        return ent


class CudaSparseXentStep:
    """SparseSoftmaxCrossEntropyWithLogits on the device: loss and backprop per row."""

    kind = "sparse_xent"
    backend = CUDA
    stateful = False

    def __init__(self, base: Any, io: DeviceIO) -> None:
        self.base = base
        self.op: Operation = base.op
        self.ops, self.reads, self.writes = base.ops, base.reads, base.writes
        self.io = io
        self.in_slots = [base.sf, base.sl]
        self.out_slots: list[int] = base.out_slots
        self.dtype = np.dtype(base.dtype)
        self.ldtype = np.dtype(base.ldtype)
        self.report: dict[str, Any] = base.report
        self.key = ("cuda", id(self))
        self.io.owner = self.key
        self.kernel: Any = None

    def __call__(self, ctx: Any, vals: list) -> None:
        store = device_store(ctx)
        f, lab = vals[self.in_slots[0]], vals[self.in_slots[1]]
        if f is None or lab is None or len(np.shape(f)) != 2 or len(np.shape(lab)) != 1 \
                or lab.shape[0] != f.shape[0] or f.dtype != self.dtype or lab.dtype != self.ldtype:
            return self.interpret(ctx, vals)
        n, k = (int(d) for d in f.shape)
        df = self.io.device_input(0, f, vals, store)
        dl = self.io.device_input(1, lab, vals, store)
        loss = device_buffer(vals, (self.key, 0), (n,), self.dtype)
        grad = device_buffer(vals, (self.key, 1), (n, k), self.dtype)
        err = device_buffer(vals, (self.key, -1), (1,), np.dtype(np.int64))
        # labels fed from the host are checked there: no device flag to read back (a sync) on every run
        host_checked = type(lab) is np.ndarray
        if host_checked and n and (lab.min() < 0 or lab.max() >= k):
            return self.interpret(ctx, vals)
        if not host_checked:
            err.copy_to_device(np.zeros(1, np.int64))
        if self.kernel is None:
            source = cg.generate_sparse_xent(self.dtype.name, self.ldtype.name, target())
            self.kernel = compile_cuda(source, {"rows": ["sparse_xent", self.dtype.name, self.ldtype.name]},
                                       [self.op.type], self.report)
        with launch_guard():
            self.kernel(flat(df), dl, loss, flat(grad), n, k, err)
        if not host_checked and runtime.to_host(err)[0]:
            return self.interpret(ctx, vals)  # a label out of range: the interpreter's error
        self.io.put_output(0, self.out_slots[0], loss, vals)
        self.io.put_output(1, self.out_slots[1], grad, vals)
        return None

    def interpret(self, ctx: Any, vals: list) -> None:
        """The reference kernel on host copies (its result or error)."""
        host_inputs(self.in_slots, vals)
        self.base.fallback(ctx, vals)


class DeviceUnbroadcastDyn:
    """UnbroadcastTo(g, Shape(x)) when g may live on the device: g itself when it has x's shape (the common
    case), else the CPU step on host copies."""

    kind = "unbroadcast"
    backend = CUDA
    stateful = False

    def __init__(self, base: Any) -> None:
        self.base = base
        self.op: Operation = base.op
        self.ops, self.reads, self.writes = base.ops, base.reads, base.writes
        self.dtype = np.dtype(self.op.outputs[0].dtype.np)

    def __call__(self, ctx: Any, vals: list) -> None:
        b = self.base
        g, x = vals[b.sg], vals[b.sx]
        if g is not None and x is not None and tuple(np.shape(g)) == tuple(np.shape(x)) and g.dtype == self.dtype:
            vals[b.so] = g
            return None
        host_inputs([b.sg], vals)
        b(ctx, vals)
        return None


class DeviceReshape:
    """Reshape, ExpandDims or Squeeze of a device array: the reference kernel decides the new shape (or
    raises its error) on a stand-in of the same shape, and the device array is reshaped without a copy."""

    kind = "reshape"
    backend = CUDA
    stateful = False

    def __init__(self, host_step: Step, in_slots: list[int], out_slot: int) -> None:
        op = host_step.ops[0]
        self.host_step = host_step
        self.op: Operation = op
        self.ops, self.reads, self.writes = host_step.ops, host_step.reads, host_step.writes
        self.in_slots = in_slots
        self.out_slot = out_slot

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.in_slots[0]]
        if not is_device_array(x):
            return self.host_step(ctx, vals)  # type: ignore[func-returns-value]
        host_inputs(self.in_slots[1:], vals)  # the shape or axis argument is tiny
        # zero strides: a stand-in of x's shape and dtype without x's memory
        stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, x.dtype), shape=tuple(x.shape),
                                                   strides=(0,) * len(x.shape))
        ins = [stand_in] + [vals[s] for s in self.in_slots[1:]]
        kernel = self.op.opdef.kernel
        assert kernel is not None
        try:
            shape = tuple(np.shape(kernel(ctx, self.op, ins)))
        except Exception as e:  # noqa: BLE001 - reported as the op's error, as the interpreter does
            raise op_error(self.op, ins, e) from e
        vals[self.out_slot] = x.reshape(shape) if shape != tuple(x.shape) else x
        return None


class DeviceReadStep:
    """A read of a variable consumed only by CUDA steps: its device array goes into the slot."""

    kind = "device_read"
    backend = CUDA
    stateful = False

    def __init__(self, host_step: Step, name: str, slot: int) -> None:
        self.host_step = host_step
        self.op = host_step.ops[0]
        self.ops, self.reads, self.writes = host_step.ops, host_step.reads, host_step.writes
        self.name = name
        self.slot = slot

    def __call__(self, ctx: Any, vals: list) -> None:
        dev = device_store(ctx).device_value(self.name)
        if dev is None:
            return self.host_step(ctx, vals)  # uninitialized: the interpreter's error
        vals[self.slot] = dev
        return None
