"""Compiled plan steps: a fused cluster, a BLAS matmul, a row kernel, a run-time unbroadcast.

A `ClusterStep` picks a kernel per input-shape pattern (`compiler/layout.py`) and caches that choice
by input shapes, so a replayed plan only looks up a dict before calling the kernel. One-element
iteration spaces run as Python over NumPy scalars (`codegen/scalar.py`); other tiny ones run the
members' interpreted steps (a kernel call costs more than a few NumPy calls). Whenever shapes do not
check out, a variable is missing, or a kernel flags an error, a step re-runs its ops interpreted,
which raises exactly the interpreter's error (nothing has been stored yet at that point).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from jitflow.codegen import cpu, scalar
from jitflow.codegen import lowering as L
from jitflow.compiler.arena import Arena, Recycler
from jitflow.compiler.backend import backend
from jitflow.compiler.cluster import Cluster
from jitflow.compiler.in_place import sole_buffer
from jitflow.compiler.plan import ARENA_SLOT, Step
from jitflow.compiler.step import CPU, Call, bound_calls, has_effects, value_slots
from jitflow.framework.graph import Operation, Tensor
from jitflow.ir.layout import LayoutError, broadcast_shape, compute_layout
from jitflow.kernels import gemm
from jitflow.kernels.adaptive import ALL, ThreadChoice, run_with
from jitflow.kernels.threads import _SET_BLAS_LOCAL as SET_BLAS_LOCAL
from jitflow.kernels.threads import PARALLEL_ELEMENTS, PARALLEL_MACS, blas_threads_for, threads_for

# Iteration spaces up to this many elements run interpreted (measured: bench/probes/small_probe.py).
SMALL_SIZE = 64
# Clusters with at least this much work (elements x nodes) run the parallel (prange) kernel variant:
# below it, waking the thread pool costs more than it saves (and competes with BLAS threads).
PARALLEL_WORK = 1 << 23
# Size assumed for unknown static dims when predicting which kernel a plan needs.
_GUESS_DIM = 64
_ZERO_ERR = np.zeros(1, np.int64)  # for kernels without checks: never written


class _Entry:
    """What a ClusterStep decided for one tuple of input shapes."""

    __slots__ = ("mode", "exts", "out_shapes", "out_sizes", "kernel", "threads", "work")

    def __init__(self, mode: str, exts: Any = None, out_shapes: Any = None, kernel: Any = None,
                 work: int = 0) -> None:
        self.mode = mode  # "kernel", "small" (interpret members) or "interp" (shapes do not check out)
        self.exts = exts
        self.out_shapes = out_shapes
        self.out_sizes = [int(np.prod(s)) for s in out_shapes] if out_shapes is not None else None
        self.kernel = kernel
        self.work = work
        # a parallel kernel runs on one thread or all, whichever the current load makes faster
        self.threads = ThreadChoice(ALL) if work >= PARALLEL_WORK else None


def _launch(ent: _Entry, flat: list, outs: list, err: np.ndarray) -> None:
    """Calls the entry's kernel (a parallel one with the thread count its ThreadChoice picks)."""
    if ent.threads is None:
        ent.kernel(*flat, *outs, ent.exts, err)
    else:
        run_with(ent.threads, ent.work, None, ent.kernel, *flat, *outs, ent.exts, err)


_INTERP = _Entry("interp")
_SMALL = _Entry("small")


class ClusterStep:
    """Runs one cluster: its kernel for the current input shapes, or its members interpreted."""

    kind = "cluster"
    backend = CPU  # a cluster built for CUDA (`c.backend`) is replaced by its CUDA step (`compiler/gpu/`)

    def __init__(self, c: Cluster, in_slots: list[int], out_slots: list[int], fresh: list[bool],
                 member_steps: list[Step], report: dict[str, Any], var_shapes: dict[str, Any]) -> None:
        self.c = c
        self.ops = tuple(c.ops)
        self.reads = value_slots(in_slots)
        self.writes = value_slots(out_slots)
        self.stateful = any(o.var is not None for o in c.outputs) or has_effects(c.ops)
        self.in_slots = in_slots  # -1 for a variable's current value
        self.out_slots = out_slots  # -1 when the output only stores a variable
        self.fresh = fresh  # outputs that must be new arrays (fetched or stored in a variable)
        self.member_steps = member_steps
        self.bound: tuple[Sequence[Step], list[Call]] | None = None  # member_steps and their bound calls
        self.report = report
        self.var_shapes = var_shapes
        self.entries: dict[tuple, _Entry] = {}
        self.kernels: dict[tuple, Any] = {}
        self.out_dtypes = [np.dtype(c.nodes[o.node].dtype) for o in c.outputs]
        self.has_checks = False
        self.in_dtypes = [np.dtype(i.dtype) for i in c.inputs]
        self.var_names = [i.var for i in c.inputs]
        self.stores = [o.var for o in c.outputs]
        self.deps = [sorted(c.deps(c.n_inputs + o.node)) for o in c.outputs]
        self.key = id(self)
        self._lock = threading.Lock()
        self.recyclers = [Recycler() for _ in c.outputs]
        self.node_checks = [(k, chk) for k, n in enumerate(c.nodes) if (chk := L.shape_check(n.op_type))]
        self.one_fn: Any = None
        self.fast_one: Any = None  # the generated one-element step for the first one-element shapes
        self.in_spec = list(zip(in_slots, self.var_names, self.in_dtypes))
        self.need_array = [True] * len(c.outputs)  # outputs read by interpreted steps stay arrays
        # (output, variable) updates that may write over the variable's array, and the dead slots that may
        # still hold it (`compiler/in_place.py`)
        self.in_place: tuple[tuple[int, str], ...] = ()
        self.clears: tuple[int, ...] = ()

    # the hot path
    def __call__(self, ctx: Any, vals: list) -> None:
        fast = self.fast_one
        if fast is not None and fast(ctx, vals):
            return None
        variables = ctx.variables
        claimed = self.claim(variables, vals) if self.in_place else None
        arrays = []
        for slot, var, dt in self.in_spec:
            a = vals[slot] if var is None else variables.get(var)
            if type(a) is not np.ndarray and not isinstance(a, np.generic):
                if a is None:
                    return self.interpret(ctx, vals)
                a = np.asarray(a)
            if a.dtype is not dt and a.dtype != dt:  # dtypes are nearly always the canonical instances
                return self.interpret(ctx, vals)
            arrays.append(a)
        shapes = tuple([a.shape for a in arrays])
        ent = self.entries.get(shapes)
        if ent is None:
            ent = self.prepare(shapes)
        if ent.kernel is None:
            return self.run_one(ctx, vals, arrays, ent) if ent.mode == "one" else self.interpret(ctx, vals)
        flat = [a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1) for a in arrays]
        arena: Arena = vals[ARENA_SLOT]
        outs = self.outputs(ent, arena, claimed)
        if self.has_checks:
            err = arena.buffer((self.key, -1), 1, np.dtype(np.int64))
            err[0] = 0
        else:
            err = _ZERO_ERR
        _launch(ent, flat, outs, err)
        if self.has_checks and err[0]:
            return self.interpret(ctx, vals)
        for j, o in enumerate(outs):
            arr = o.reshape(ent.out_shapes[j])
            var = self.stores[j]
            if var is not None:
                arr.flags.writeable = False
                variables[var] = arr
            s = self.out_slots[j]
            if s >= 0:
                vals[s] = arr
        return None

    def outputs(self, ent: _Entry, arena: Arena, claimed: list[Any] | None) -> list[np.ndarray]:
        """The flat arrays the kernel writes: a claimed variable buffer, a recycled array for a fresh output
        (fetched or stored), else the arena's buffer."""
        outs = []
        sizes = ent.out_sizes
        assert sizes is not None  # a compiled entry knows its output sizes
        for j, dt in enumerate(self.out_dtypes):
            n = sizes[j]
            own = claimed[j] if claimed is not None else None
            if own is not None and own.size == n:
                outs.append(own)
            elif self.fresh[j]:
                o = self.recyclers[j].get(n, dt)
                self.recyclers[j].put(o)  # (held by `outs` until the run hands it on: no other run takes it)
                outs.append(o)
            else:
                outs.append(arena.buffer((self.key, j), n, dt))
        return outs

    def claim(self, variables: dict[str, Any], vals: list) -> list[Any] | None:
        """Per output, the buffer of the variable it updates when nothing else can see it (written over in
        place), else None; clears the slots that hold the variable's array but are read no more."""
        for s in self.clears:
            vals[s] = None
        claimed: list[Any] = [None] * len(self.out_dtypes)
        for j, var in self.in_place:
            with self.recyclers[j].lock:
                claimed[j] = sole_buffer(variables, var, self.recyclers[j].pool)
        return claimed

    def run_one(self, ctx: Any, vals: list, arrays: list, ent: _Entry) -> None:
        """A one-element iteration space: the generated NumPy-scalar function (`codegen/scalar.py`)."""
        fn = self.one_fn
        if fn is None:
            fn = self.one_fn = scalar.build(self.c)
        if self.fast_one is None:  # next time, one generated function for exactly these shapes
            shapes = tuple(a.shape for a in arrays)
            self.fast_one = scalar.build_step(self.c, self.in_slots, shapes, self.out_slots, ent.out_shapes,
                                              self.need_array)
        try:
            res = fn(*[a if type(a) is not np.ndarray else (a[()] if a.ndim == 0 else a.flat[0])
                       for a in arrays])
        except scalar.CheckFailed:
            return self.interpret(ctx, vals)
        for j, v in enumerate(res):
            shape = ent.out_shapes[j]
            var = self.stores[j]
            if var is not None or shape or self.need_array[j]:
                v = np.array(v, self.out_dtypes[j])
                if shape:
                    v = v.reshape(shape)
                if var is not None:
                    v.flags.writeable = False
                    ctx.variables[var] = v
            s = self.out_slots[j]
            if s >= 0:
                vals[s] = v
        return None

    def interpret(self, ctx: Any, vals: list) -> None:
        """Runs the members' interpreted steps (exactly the interpreter's semantics and errors)."""
        bound = self.bound
        if bound is None or bound[0] is not self.member_steps:  # (prune_shape_ops prepends steps)
            bound = self.bound = bound_calls(self.member_steps)
        for call in bound[1]:
            call(ctx, vals)

    # decisions per shape tuple
    def prepare(self, shapes: tuple) -> _Entry:
        """Decides (and caches) how to run for these input shapes; compiles the kernel if needed."""
        try:
            ent = self._decide(shapes)
        except LayoutError:
            ent = _INTERP
        if len(self.entries) > 64:
            self.entries.clear()  # shape-polymorphic callers: keep the table small
        self.entries[shapes] = ent
        return ent

    def output_shapes(self, shapes: tuple) -> tuple[tuple[int, ...], tuple[int, ...] | None, list[tuple[int, ...]]]:
        """(iteration space, reduced axes, output shapes) for these input shapes, after every check a
        kernel relies on; LayoutError when the shapes do not fit (the members then run interpreted)."""
        c = self.c
        space = broadcast_shape(list(shapes))
        red = c.reduction()
        axes = reduce_axes(red, len(space)) if red is not None else None
        out_shapes: list[tuple[int, ...]] = []
        for j, o in enumerate(c.outputs):
            if red is not None and o.node == len(c.nodes) - 1:
                keep = bool(red.attr("keep_dims", False))
                assert axes is not None
                shp = tuple((1 if d in axes else n) for d, n in enumerate(space) if keep or d not in axes)
                target = red.attr("target")
                if target is not None:  # UnbroadcastTo: the kept dims must be the target's
                    extra = len(space) - len(target)
                    if any(d != 1 and space[extra + i] != d for i, d in enumerate(target)):
                        raise LayoutError("gradient does not reduce to the target shape")
                    shp = tuple(target)
            else:
                shp = broadcast_shape([shapes[i] for i in self.deps[j]])
            out_shapes.append(shp)
            if o.var is not None:
                self._check_update(o, shp, shapes)
        if self.node_checks:
            self._check_nodes(shapes)
        return space, axes, out_shapes

    def _decide(self, shapes: tuple) -> _Entry:
        c = self.c
        space, axes, out_shapes = self.output_shapes(shapes)
        size = int(np.prod(space)) if space else 1
        if size == 1:
            return _Entry("one", None, out_shapes)
        if size <= SMALL_SIZE:
            return _SMALL
        layout, exts = compute_layout(list(shapes), space, axes)
        # prange runs over the first group (in chunks with partial results when it is reduced)
        work = size * len(c.nodes)
        kernel = self._kernel(layout, work >= PARALLEL_WORK)
        return _Entry("kernel", np.array(exts, np.int64), out_shapes, kernel, work)

    def _check_update(self, o: Any, shp: tuple[int, ...], shapes: tuple) -> None:
        c = self.c
        node = c.nodes[o.node]
        rule = L.UPDATES[node.op_type]
        if rule.reads:
            cur = shapes[node.args[0]]
            if shp != cur:
                raise LayoutError("update does not have the variable's shape")
            if rule.same_shape_refs and any(shapes[node.args[k]] != cur for k in range(len(rule.refs))):
                raise LayoutError("slot variables do not have the variable's shape")
            for p in rule.scalar_args:
                k = len(rule.refs) + p - sum(1 for r in rule.refs if r < p)
                if k < len(node.args) and self.value_shape(node.args[k], shapes) != ():
                    raise LayoutError("hyperparameter is not a scalar")
            for p in rule.exact_shape:
                # op input p -> node arg: the read refs come first, then the non-ref inputs in order
                k = len(rule.refs) + p - sum(1 for r in rule.refs if r < p)
                if k >= len(node.args):
                    continue
                a = node.args[k]
                if self.value_shape(a, shapes) != cur:
                    raise LayoutError("update value does not have the variable's shape")
        else:
            want = self.var_shapes.get(o.var)
            if want is not None and not want.is_compatible_with(shp):
                raise LayoutError("assigned value does not have the variable's shape")

    def value_shape(self, vid: int, shapes: tuple) -> tuple[int, ...]:
        """The runtime shape of value `vid`: an input's own, a node's the broadcast of its inputs'."""
        if vid < self.c.n_inputs:
            return tuple(shapes[vid])
        return broadcast_shape([shapes[i] for i in self.c.deps(vid)])

    def _check_nodes(self, shapes: tuple) -> None:
        """Shape rules of single ops beyond broadcasting (BiasAdd's bias length, AddN's equal shapes)."""
        for k, check in self.node_checks:
            args = [self.value_shape(a, shapes) for a in self.c.nodes[k].args]
            if not check(args):
                raise LayoutError(f"shapes {args} rejected by {self.c.nodes[k].op_type}")

    def _kernel(self, layout: Any, parallel: bool) -> Any:
        k = (layout, parallel)
        fn = self.kernels.get(k)
        if fn is not None:
            return fn
        with self._lock:
            fn = self.kernels.get(k)
            if fn is None:
                fn = compile_kernel(self.c, layout, parallel, self.report)
                self.kernels[k] = fn
        return fn


def compile_kernel(c: Cluster, layout: Any, parallel: bool, report: dict[str, Any]) -> Any:
    """Generates, compiles (or loads) the CPU kernel of `c` for `layout`; records it in `report`."""
    cpu_backend = backend(CPU)
    source = cpu_backend.render(c, layout, parallel)
    parts = {"cluster": c.signature(), "layout": layout.key(), "parallel": parallel,
             "codegen": cpu.CODEGEN_VERSION}
    return cpu_backend.compile(source, parts, [op.type for op in c.ops], report)


class MatMulStep:
    """MatMul through NumPy's BLAS into a buffer reused across runs."""

    kind = "matmul"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, in_slots: list[int], out_slot: int, fresh: bool, fallback: Step) -> None:
        self.op = op
        self.ops = (op,)
        self.reads = value_slots(in_slots)
        self.writes = value_slots([out_slot])
        self.sa, self.sb = in_slots
        self.out_slot = out_slot
        self.fresh = fresh
        self.fallback = fallback
        self.ta = bool(op.attrs.get("transpose_a") or op.attrs.get("adj_x"))
        self.tb = bool(op.attrs.get("transpose_b") or op.attrs.get("adj_y"))
        self.dtype = np.dtype(op.outputs[0].dtype.np)
        self.key = id(self)
        self.recycler = Recycler()
        self.threads = ThreadChoice(ALL)
        self.all_threads = gemm.AllThreads()  # OpenBLAS's threads or slices, by measurement
        self.wants_helpers = False  # the last run's product was one the helpers can share (`_gemv`)

    def __call__(self, ctx: Any, vals: list) -> None:
        a = vals[self.sa]
        b = vals[self.sb]
        if type(a) is not np.ndarray or type(b) is not np.ndarray or a.ndim != 2 or b.ndim != 2 \
                or a.dtype != self.dtype or b.dtype != self.dtype:
            return self.fallback(ctx, vals)
        if self.ta:
            a = a.T
        if self.tb:
            b = b.T
        m, k = a.shape
        if b.shape[0] != k:
            return self.fallback(ctx, vals)
        n = b.shape[1]
        if self.fresh:
            flat = self.recycler.get(m * n, self.dtype)
            self.recycler.put(flat)
            out = flat.reshape(m, n)
        else:
            out = vals[ARENA_SLOT].buffer((self.key, 0), m * n, self.dtype).reshape(m, n)
        macs = m * n * k
        # a big vector-matrix product (batch-1 serving): both cores stream the weights when helpers spin
        self.wants_helpers = m == 1 and macs >= PARALLEL_MACS and b.flags.c_contiguous and a.strides[1] == b.itemsize
        if self.wants_helpers and self._gemv(a, b, out, vals[ARENA_SLOT]):
            vals[self.out_slot] = out
            return None
        if macs < PARALLEL_MACS:
            with blas_threads_for(macs):  # small GEMMs on one thread (jitflow/kernels/threads.py)
                np.matmul(a, b, out=out)
        else:  # big ones on as many threads as the current load makes fastest
            run_with(self.threads, macs, SET_BLAS_LOCAL, self.all_threads, a, b, out)
        vals[self.out_slot] = out
        return None

    def _gemv(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, arena: Arena) -> bool:
        """out = a @ b in row blocks shared with `packed_helpers.HELPERS` when the run has them spinning
        (`execute` arms them for a plan whose steps ask: `wants_helpers`); False when it has not."""
        from jitflow.kernels import packed_gemm, packed_helpers  # (imports start Numba's CPU target)

        ctrl = packed_helpers.HELPERS.ctrl
        if ctrl[packed_gemm.ARMED] == 0:
            return False
        k, n = b.shape
        parts = arena.buffer((self.key, 1), packed_gemm.gemv_blocks(k) * n, self.dtype)
        packed_gemm.gemv(a.reshape(-1), b.reshape(-1), n, out.reshape(-1), parts, n, k, ctrl)
        return True


# What the split cross-entropy step leaves in its gradient's slot: the `XentGradStep` computes the gradient.
DEFERRED = object()


class SparseXentStep:
    """SparseSoftmaxCrossEntropyWithLogits as one row kernel (`codegen/rows.py`) into reused buffers."""

    kind = "sparse_xent"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, in_slots: list[int], out_slots: list[int], fetched: list[bool],
                 fallback: Step, report: dict[str, Any], bias_slot: int = -1) -> None:
        self.op = op
        self.ops = fallback.ops  # the op, after the bias Add it computes (`bias_slot`), if any
        self.reads = value_slots([*in_slots, bias_slot])
        self.writes = value_slots(out_slots)
        self.sf, self.sl = in_slots  # with a bias: the Add's matrix operand, not the op's own logits
        self.sb = bias_slot
        self.out_slots = out_slots
        self.fetched = fetched
        self.fallback = fallback
        self.report = report
        self.dtype = np.dtype(op.inputs[0].dtype.np)
        self.ldtype = np.dtype(op.inputs[1].dtype.np)
        self.key = id(self)
        self.kernel: Any = None
        self.recyclers = [Recycler(), Recycler()]
        self.threads = ThreadChoice(ALL)
        # True when an `XentGradStep` computes the gradient: this step then stores the loss, the exponentials
        # and their per-row sums, and marks the gradient's slot (`compiler/xent_grad.py`)
        self.split = False

    def _compile(self) -> Any:
        from jitflow.codegen import rows

        bias = self.sb >= 0
        if self.split:
            src = rows.xent_loss_source(self.dtype.name, self.ldtype.name, bias)
        else:
            src = rows.sparse_xent_source(self.dtype.name, self.ldtype.name, bias)
        parts = {"rows": "xent_loss" if self.split else "sparse_xent", "dtype": self.dtype.name,
                 "labels": self.ldtype.name, "version": rows.ROWS_VERSION, **({"bias": True} if bias else {})}
        return _row_kernel(src, parts, self.op, self.report)

    def sums(self, arena: Arena, n: int) -> np.ndarray:
        """The per-row sums of exponentials of the split form, in this run's arena."""
        return arena.buffer((self.key, 2), n, self.dtype)

    def exps(self, arena: Arena, size: int) -> np.ndarray:
        """The exponentials buffer of the split form (the logits' size), in this run's arena."""
        return arena.buffer((self.key, 3), size, self.dtype)

    def bias_row(self, vals: list) -> np.ndarray:
        """The fused bias, contiguous (checked by `__call__`)."""
        b = vals[self.sb]
        return b if b.flags.c_contiguous else np.ascontiguousarray(b)

    def __call__(self, ctx: Any, vals: list) -> None:
        f = vals[self.sf]
        lab = vals[self.sl]
        if type(f) is not np.ndarray or type(lab) is not np.ndarray or f.ndim != 2 or lab.ndim != 1 \
                or lab.shape[0] != f.shape[0] or f.dtype != self.dtype or lab.dtype != self.ldtype \
                or f.size <= SMALL_SIZE:
            return self.fallback(ctx, vals)
        bias: tuple[np.ndarray, ...] = ()
        if self.sb >= 0:
            b = vals[self.sb]
            if type(b) is not np.ndarray or b.dtype != self.dtype or b.shape != f.shape[1:]:
                return self.fallback(ctx, vals)  # the interpreted Add broadcasts, or raises TF's error
            bias = (self.bias_row(vals),)
        if self.kernel is None:
            self.kernel = self._compile()
        n, k = f.shape
        arena: Arena = vals[ARENA_SLOT]
        outs = []
        for j, size in enumerate((n, n * k) if not self.split else (n,)):
            if self.fetched[j]:
                o = self.recyclers[j].get(size, self.dtype)
                self.recyclers[j].put(o)
            else:
                o = arena.buffer((self.key, j), size, self.dtype)
            outs.append(o)
        if self.split:  # the loss, per-row sums and exponentials: the gradient is the XentGradStep's
            outs += [self.sums(arena, n), self.exps(arena, n * k)]
        err = arena.buffer((self.key, -1), 1, np.dtype(np.int64))
        err[0] = 0
        fl = f.reshape(-1) if f.flags.c_contiguous else np.ascontiguousarray(f).reshape(-1)
        ll = lab if lab.flags.c_contiguous else np.ascontiguousarray(lab)
        _run_rows(self.threads, n * k, self.kernel, fl, *bias, ll, *outs, np.array((n, k), np.int64), err)
        if err[0]:
            return self.fallback(ctx, vals)  # raises the reference kernel's error for the bad label
        vals[self.out_slots[0]] = outs[0]
        vals[self.out_slots[1]] = DEFERRED if self.split else outs[1].reshape(n, k)
        return None


class SoftmaxStep:
    """Softmax / LogSoftmax along the last axis as one row kernel (`codegen/rows.py`)."""

    kind = "softmax"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, in_slot: int, out_slot: int, fetched: bool, fallback: Step,
                 report: dict[str, Any]) -> None:
        self.op = op
        self.ops = (op,)
        self.reads = value_slots([in_slot])
        self.writes = value_slots([out_slot])
        self.si, self.so = in_slot, out_slot
        self.fetched = fetched
        self.fallback = fallback
        self.report = report
        self.log = op.type == "LogSoftmax"
        self.dtype = np.dtype(op.inputs[0].dtype.np)
        self.key = id(self)
        self.kernel: Any = None
        self.recycler = Recycler()
        self.threads = ThreadChoice(ALL)

    def _compile(self) -> Any:
        from jitflow.codegen import rows

        src = rows.softmax_source(self.dtype.name, self.log)
        parts = {"rows": "log_softmax" if self.log else "softmax", "dtype": self.dtype.name,
                 "version": rows.ROWS_VERSION}
        return _row_kernel(src, parts, self.op, self.report)

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.si]
        if type(x) is not np.ndarray or x.ndim < 1 or x.dtype != self.dtype or x.size <= SMALL_SIZE:
            return self.fallback(ctx, vals)
        if self.kernel is None:
            self.kernel = self._compile()
        k = x.shape[-1]
        n = x.size // k if k else 0
        if self.fetched:
            o = self.recycler.get(x.size, self.dtype)
            self.recycler.put(o)
        else:
            o = vals[ARENA_SLOT].buffer((self.key, 0), x.size, self.dtype)
        xf = x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
        _run_rows(self.threads, x.size, self.kernel, xf, o, np.array((n, k), np.int64), _ZERO_ERR)
        vals[self.so] = o.reshape(x.shape)
        return None


class UnbroadcastDynStep:
    """UnbroadcastTo whose target is `Shape(x)` known only at run time: the gradient itself when it
    already has x's shape (the common case), else the Shape and UnbroadcastTo steps interpreted (the
    reference kernel's NumPy sum, which is what a kernel would do for a reduction decided so late).
    It is not reported as a fallback."""

    kind = "unbroadcast"
    backend = CPU
    stateful = False

    def __init__(self, op: Operation, g_slot: int, x_slot: int, out_slot: int, fallback: list[Step]) -> None:
        self.op = op
        self.ops = (op,)
        self.reads = value_slots([g_slot, x_slot])
        self.writes = value_slots([out_slot])
        self.sg, self.sx, self.so = g_slot, x_slot, out_slot
        self.fallback = fallback
        self.dtype = np.dtype(op.outputs[0].dtype.np)

    def __call__(self, ctx: Any, vals: list) -> None:
        g = vals[self.sg]
        x = vals[self.sx]
        if isinstance(g, (np.ndarray, np.generic)) and isinstance(x, (np.ndarray, np.generic)) \
                and g.shape == x.shape and (g.dtype is self.dtype or g.dtype == self.dtype):
            vals[self.so] = g
            return None
        for st in self.fallback:
            st(ctx, vals)
        return None


def _dynamic_unbroadcast(op: Operation, fed: set[Tensor]) -> bool:
    """True for an UnbroadcastTo whose target is the Shape of a tensor (not fed) we can read."""
    if op.type != "UnbroadcastTo" or len(op.inputs) < 2:
        return False
    sh = op.inputs[1]
    return sh.op.type == "Shape" and sh not in fed and not sh.op.control_inputs and op.outputs[0] not in fed


def reduce_axes(red: Any, rank: int) -> tuple[int, ...]:
    """The dims a reduction node reduces for an input of `rank` (LayoutError when they do not fit)."""
    target = red.attr("target")
    if target is not None:  # UnbroadcastTo: sum the leading extra dims and where the target has 1s
        extra = rank - len(target)
        if extra < 0:
            raise LayoutError("gradient has a lower rank than its target")
        return tuple(range(extra)) + tuple(i + extra for i, d in enumerate(target) if d == 1)
    ax = red.attr("axis")
    if ax is None:
        return tuple(range(rank))
    if rank == 0:
        if any(a not in (0, -1) for a in ax):
            raise LayoutError("reduction axis out of range")
        return ()
    if any(a >= rank or a < -rank for a in ax):
        raise LayoutError("reduction axis out of range")
    return tuple(sorted({a % rank for a in ax}))


def compile_lazy(step: Any) -> None:
    """Compiles now what `step` would compile on its first run (for `explain`): the kernel the static
    shapes predict for a cluster left to the interpreter while tiny, a row step's kernel."""
    if step.kind == "cluster" and step.backend == "cpu" and step.report.get("source") == "deferred":
        compile_predicted(step)
    elif step.kind in ("softmax", "sparse_xent") and step.backend == "cpu" and step.kernel is None:
        step.kernel = step._compile()


def compile_predicted(step: ClusterStep) -> None:
    """Compiles the kernel that the static shapes predict even for tiny clusters."""
    shapes = _predicted_shapes(step)
    if shapes is None:
        return
    try:
        space = broadcast_shape(list(shapes))
        red = step.c.reduction()
        axes = reduce_axes(red, len(space)) if red is not None else None
        layout, _ = compute_layout(list(shapes), space, axes)
    except LayoutError:
        return
    step._kernel(layout, False)


def _predicted_shapes(step: ClusterStep) -> tuple | None:
    shapes = []
    for i in step.c.inputs:
        if i.var is not None:
            shp = step.var_shapes.get(i.var)
            dims = shp.as_tuple() if shp is not None else None
        else:
            assert i.tensor is not None
            dims = i.tensor.shape.as_tuple()
        if dims is None:
            return None
        shapes.append(tuple(_GUESS_DIM if d is None else int(d) for d in dims))
    return tuple(shapes)


def _warm(step: ClusterStep) -> None:
    """Compiles the kernel the static shapes predict, so the first run does not (unknown rank: skip)."""
    shapes = []
    for i in step.c.inputs:
        if i.var is not None:
            shp = step.var_shapes.get(i.var)
            dims = shp.as_tuple() if shp is not None else None
        else:
            assert i.tensor is not None
            dims = i.tensor.shape.as_tuple()
        if dims is None:
            return
        shapes.append(tuple(_GUESS_DIM if d is None else int(d) for d in dims))
    try:
        step.prepare(tuple(shapes))
    except Exception:  # noqa: BLE001 - a failed warm-up compiles (or reports) again on the first run
        step.entries.clear()


def _run_rows(choice: ThreadChoice, work: int, kernel: Any, *args: Any) -> None:
    """Runs a row kernel (rows under prange): small ones on this thread, big ones on the thread count
    that the current load makes fastest (`kernels/adaptive.py`)."""
    if work < PARALLEL_ELEMENTS:
        with threads_for(work):
            kernel(*args)
    else:
        run_with(choice, work, None, kernel, *args)


def _row_kernel(src: str, parts: dict[str, Any], op: Operation, report: dict[str, Any]) -> Any:
    """Loads (or compiles) a row kernel through the cache and records key, time and origin for explain."""
    from jitflow.codegen import rows

    report["compile_seconds"] = 0.0  # the report's entry is this kernel's alone
    return backend(CPU).compile(src, parts, [op.type], report, rows.ENTRY)
