"""The JIT stage of plan building: replace groups of interpreted steps by compiled ones.

`lower(plan)` clusters the plan's ops (`compiler/cluster.py`), builds the cluster IR, and replaces the
members' interpreted steps by one `ClusterStep` per cluster (placed where its last member was). MatMul
runs through BLAS into a reused buffer. Everything else keeps its interpreted step; the reasons are in
`plan.report["fallbacks"]`.

A `ClusterStep` picks a kernel per input-shape pattern (`compiler/layout.py`) and caches that choice
by input shapes, so a replayed plan only looks up a dict before calling the kernel. Tiny iteration
spaces run the members' interpreted steps instead (a kernel call costs more than a few NumPy calls on
scalars). Whenever shapes do not check out, a variable is missing, or a kernel flags an error, the
step re-runs its members interpreted, which raises exactly the interpreter's error (nothing has been
stored yet at that point).
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np

from jitflow import errors, flags
from jitflow.codegen import cpu, scalar
from jitflow.codegen import lowering as L
from jitflow.compiler.arena import Arena, Recycler
from jitflow.compiler.cluster import REDUCTION, STRUCTURAL, Cluster, build_cluster, cluster
from jitflow.compiler.layout import LayoutError, broadcast_shape, compute_layout
from jitflow.compiler.placement import gpu_count, requested_gpu
from jitflow.compiler.plan import ARENA_SLOT, TRASH_SLOT, Plan, Step, var_reads
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor

# Iteration spaces up to this many elements run interpreted (measured: bench/probes/small_probe.py).
SMALL_SIZE = 64
# Clusters with at least this much work (elements x nodes) run the parallel (prange) kernel variant:
# below it, waking the thread pool costs more than it saves (and competes with BLAS threads).
PARALLEL_WORK = 1 << 23
# Size assumed for unknown static dims when predicting which kernel a plan needs.
_GUESS_DIM = 64

_ZERO_ERR = np.zeros(1, np.int64)
# Ops whose reference kernel already is a BLAS call with reused buffers: their own step, not a fallback.
_BLAS_KERNELS = frozenset({"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"})
_AXIS_REDUCTIONS = ("Sum", "Mean", "Max", "Min", "Prod", "All", "Any")  # for kernels without checks: never written


def member_reason(op: Operation) -> str | None:
    """None if `op` can join a cluster; "" if it is lowered as its own step; else why it cannot."""
    t = op.type
    if t in STRUCTURAL:
        return "structural"
    if t in _BLAS_KERNELS:
        return ""  # its reference kernel is the BLAS path (im2col + GEMM into reused scratch)
    if t in _ROW_OPS:
        dt = np.dtype(op.inputs[0].dtype.np).name
        ok = dt in ("float32", "float64") and np.dtype(op.inputs[1].dtype.np).name in ("int32", "int64")
        return "" if ok else f"{t} on {dt} is interpreted"
    if t in _BLAS:
        dts = {np.dtype(x.dtype.np).name for x in op.inputs}
        return "" if dts <= {"float32", "float64"} and len(dts) == 1 else f"{t} on {sorted(dts)} is interpreted"
    try:
        in_dts = [np.dtype(x.dtype.np).name for x in op.inputs]
        out_dts = [np.dtype(x.dtype.np).name for x in op.outputs]
    except TypeError:
        return "dtype not supported by the compiler"
    for dt in in_dts + out_dts:
        if dt not in L.SUPPORTED:
            return f"dtype {dt} not supported by the compiler"
    rule = L.update_rule(t)
    if rule is not None:
        var_dt = in_dts[rule.refs[0]]
        if rule.reads and var_dt not in L.NUMERIC:
            return f"{t} of a {var_dt} variable is interpreted"
        if any(op.inputs[r].op.type != "VariableV2" for r in rule.refs):
            return f"{t} of a reference that is not a variable"
        return None
    kind = op.opdef.kind
    if L.derived_attrs(op) is None:
        return (f"{t} target shape is known only at run time (identity when the shapes already match, "
                "else interpreted)")
    if kind == registry.REDUCTION:
        rule_r = L.REDUCTIONS.get(t)
        if rule_r is None:
            return f"no lowering for reduction {t}"
        if in_dts[0] not in rule_r.dtypes:
            return f"{t} on {in_dts[0]} is interpreted"
        axes = op.attrs.get("axis") if t in _AXIS_REDUCTIONS else None
        if axes is not None and any(a < 0 for a in axes):
            return "reduction axes are not known when the plan is built"
        return None
    if kind == registry.STATEFUL:
        return f"stateful op {t} runs as its own step"
    tpl = L.ELEMENTWISE.get(t)
    if kind != registry.ELEMENTWISE and tpl is None:
        return f"no lowering for {t} ({kind})"
    if tpl is None:
        return f"no lowering for elementwise op {t}"
    if t == "Select" and op.inputs[0].shape.ndims == 1 and (op.inputs[1].shape.ndims or 0) > 1:
        return "Select with a vector condition picks rows (interpreted)"
    if t == "Select" and op.inputs[0].shape.ndims is None:
        return "Select with a condition of unknown rank"
    names = [f"a{i}" for i in range(len(in_dts))]
    if tpl(names, in_dts, out_dts[0], None) is None:
        return f"{t} on {', '.join(in_dts)} has no lowering"
    return None


# -- steps -------------------------------------------------------------------------------------------------


class _Entry:
    """What a ClusterStep decided for one tuple of input shapes."""

    __slots__ = ("mode", "exts", "out_shapes", "out_sizes", "kernel")

    def __init__(self, mode: str, exts: Any = None, out_shapes: Any = None, kernel: Any = None) -> None:
        self.mode = mode  # "kernel", "small" (interpret members) or "interp" (shapes do not check out)
        self.exts = exts
        self.out_shapes = out_shapes
        self.out_sizes = [int(np.prod(s)) for s in out_shapes] if out_shapes is not None else None
        self.kernel = kernel


_INTERP = _Entry("interp")
_SMALL = _Entry("small")


class ClusterStep:
    """Runs one cluster: its kernel for the current input shapes, or its members interpreted."""

    def __init__(self, c: Cluster, in_slots: list[int], out_slots: list[int], fresh: list[bool],
                 member_steps: list[Step], report: dict[str, Any], var_shapes: dict[str, Any]) -> None:
        self.c = c
        self.in_slots = in_slots  # -1 for a variable's current value
        self.out_slots = out_slots  # -1 when the output only stores a variable
        self.fresh = fresh  # outputs that must be new arrays (fetched or stored in a variable)
        self.member_steps = member_steps
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
        self.node_checks = [(k, L.SHAPE_CHECKS[n.op_type]) for k, n in enumerate(c.nodes)
                            if n.op_type in L.SHAPE_CHECKS]
        self.one_fn: Any = None
        self.in_spec = list(zip(in_slots, self.var_names, self.in_dtypes))
        self.need_array = [True] * len(c.outputs)  # outputs read by interpreted steps stay arrays

    # the hot path
    def __call__(self, ctx: Any, vals: list) -> None:
        arrays = []
        variables = ctx.variables
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
            if ent.mode == "one":
                return self.run_one(ctx, vals, arrays, ent)
            return self.interpret(ctx, vals)
        flat = [a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1) for a in arrays]
        arena: Arena = vals[ARENA_SLOT]
        outs = []
        for j, dt in enumerate(self.out_dtypes):
            n = ent.out_sizes[j]
            outs.append(self.recyclers[j].get(n, dt) if self.fresh[j] else arena.buffer((self.key, j), n, dt))
        if self.has_checks:
            err = arena.buffer((self.key, -1), 1, np.dtype(np.int64))
            err[0] = 0
            ent.kernel(*flat, *outs, ent.exts, err)
            if err[0]:
                return self.interpret(ctx, vals)
        else:
            ent.kernel(*flat, *outs, ent.exts, _ZERO_ERR)
        for j, o in enumerate(outs):
            if self.fresh[j]:
                self.recyclers[j].put(o)
            arr = o.reshape(ent.out_shapes[j])
            var = self.stores[j]
            if var is not None:
                arr.flags.writeable = False
                variables[var] = arr
            s = self.out_slots[j]
            if s >= 0:
                vals[s] = arr
        return None

    def run_one(self, ctx: Any, vals: list, arrays: list, ent: _Entry) -> None:
        """A one-element iteration space: the generated NumPy-scalar function (`codegen/scalar.py`)."""
        fn = self.one_fn
        if fn is None:
            fn = self.one_fn = scalar.build(self.c)
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
        for step in self.member_steps:
            step(ctx, vals)

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

    def _decide(self, shapes: tuple) -> _Entry:
        c = self.c
        space = broadcast_shape(list(shapes))
        axes = None
        out_shapes: list[tuple[int, ...]] = []
        red = c.reduction()
        if red is not None:
            axes = reduce_axes(red, len(space))
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
        size = int(np.prod(space)) if space else 1
        if size == 1:
            return _Entry("one", None, out_shapes)
        if size <= SMALL_SIZE:
            return _SMALL
        layout, exts = compute_layout(list(shapes), space, axes)
        # prange runs over the first group, which must not be reduced
        kernel = self._kernel(layout, size * len(c.nodes) >= PARALLEL_WORK and not layout.reduced[0])
        return _Entry("kernel", np.array(exts, np.int64), out_shapes, kernel)

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
    """Generates, compiles (or loads) the kernel of `c` for `layout`; records it in `report`."""
    from jitflow.codegen.cache import get_kernel

    t0 = time.perf_counter()
    source = cpu.generate(c, layout, parallel)
    parts = {"cluster": c.signature(), "layout": layout.key(), "parallel": parallel,
             "codegen": cpu.CODEGEN_VERSION}
    fn, origin = get_kernel(source, cpu.ENTRY, parts, {"ops": [op.type for op in c.ops]}, "cpu")
    dt = time.perf_counter() - t0
    from jitflow.codegen.cache import kernel_key

    report["key"] = kernel_key({**parts, "source": source, "entry": cpu.ENTRY, "backend": "cpu"})
    report["compile_seconds"] = round(report.get("compile_seconds", 0.0) + (dt if origin != "memory" else 0.0), 6)
    report["source"] = origin
    return fn


class MatMulStep:
    """MatMul through NumPy's BLAS into a buffer reused across runs."""

    def __init__(self, op: Operation, in_slots: list[int], out_slot: int, fresh: bool, fallback: Step) -> None:
        self.op = op
        self.sa, self.sb = in_slots
        self.out_slot = out_slot
        self.fresh = fresh
        self.fallback = fallback
        self.ta = bool(op.attrs.get("transpose_a") or op.attrs.get("adj_x"))
        self.tb = bool(op.attrs.get("transpose_b") or op.attrs.get("adj_y"))
        self.dtype = np.dtype(op.outputs[0].dtype.np)
        self.key = id(self)
        self.recycler = Recycler()

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
        np.matmul(a, b, out=out)
        vals[self.out_slot] = out
        return None


class SparseXentStep:
    """SparseSoftmaxCrossEntropyWithLogits as one row kernel (`codegen/rows.py`) into reused buffers."""

    def __init__(self, op: Operation, in_slots: list[int], out_slots: list[int], fetched: list[bool],
                 fallback: Step, report: dict[str, Any]) -> None:
        self.op = op
        self.sf, self.sl = in_slots
        self.out_slots = out_slots
        self.fetched = fetched
        self.fallback = fallback
        self.report = report
        self.dtype = np.dtype(op.inputs[0].dtype.np)
        self.ldtype = np.dtype(op.inputs[1].dtype.np)
        self.key = id(self)
        self.kernel: Any = None
        self.recyclers = [Recycler(), Recycler()]

    def _compile(self) -> Any:
        from jitflow.codegen import rows
        from jitflow.codegen.cache import get_kernel, kernel_key

        t0 = time.perf_counter()
        src = rows.sparse_xent_source(self.dtype.name, self.ldtype.name)
        parts = {"rows": "sparse_xent", "dtype": self.dtype.name, "labels": self.ldtype.name,
                 "version": rows.ROWS_VERSION}
        fn, origin = get_kernel(src, rows.ENTRY, parts, {"ops": [self.op.type]}, "cpu")
        self.report.update(key=kernel_key({**parts, "source": src, "entry": rows.ENTRY, "backend": "cpu"}),
                           compile_seconds=round(time.perf_counter() - t0, 6) if origin != "memory" else 0.0,
                           source=origin)
        return fn

    def __call__(self, ctx: Any, vals: list) -> None:
        f = vals[self.sf]
        lab = vals[self.sl]
        if type(f) is not np.ndarray or type(lab) is not np.ndarray or f.ndim != 2 or lab.ndim != 1 \
                or lab.shape[0] != f.shape[0] or f.dtype != self.dtype or lab.dtype != self.ldtype \
                or f.size <= SMALL_SIZE:
            return self.fallback(ctx, vals)
        if self.kernel is None:
            self.kernel = self._compile()
        n, k = f.shape
        arena: Arena = vals[ARENA_SLOT]
        outs = []
        for j, size in enumerate((n, n * k)):
            if self.fetched[j]:
                o = self.recyclers[j].get(size, self.dtype)
                self.recyclers[j].put(o)
            else:
                o = arena.buffer((self.key, j), size, self.dtype)
            outs.append(o)
        err = arena.buffer((self.key, -1), 1, np.dtype(np.int64))
        err[0] = 0
        fl = f.reshape(-1) if f.flags.c_contiguous else np.ascontiguousarray(f).reshape(-1)
        ll = lab if lab.flags.c_contiguous else np.ascontiguousarray(lab)
        self.kernel(fl, ll, outs[0], outs[1], np.array((n, k), np.int64), err)
        if err[0]:
            return self.fallback(ctx, vals)  # raises the reference kernel's error for the bad label
        vals[self.out_slots[0]] = outs[0]
        vals[self.out_slots[1]] = outs[1].reshape(n, k)
        return None


class UnbroadcastDynStep:
    """UnbroadcastTo whose target is `Shape(x)` known only at run time: the gradient itself when it
    already has x's shape (the common case), else the Shape and UnbroadcastTo steps interpreted."""

    def __init__(self, op: Operation, g_slot: int, x_slot: int, out_slot: int, fallback: list[Step]) -> None:
        self.op = op
        self.sg, self.sx, self.so = g_slot, x_slot, out_slot
        self.fallback = fallback

    def __call__(self, ctx: Any, vals: list) -> None:
        g = vals[self.sg]
        x = vals[self.sx]
        if isinstance(g, (np.ndarray, np.generic)) and isinstance(x, (np.ndarray, np.generic)) \
                and g.shape == x.shape and g.dtype == self.op.outputs[0].dtype.np:
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


_BLAS = {"MatMul": MatMulStep}
_ROW_OPS = ("SparseSoftmaxCrossEntropyWithLogits",)


# -- the entry -----------------------------------------------------------------------------------------------


def lower(plan: Plan) -> None:
    """Replaces the plan's interpreted steps by compiled clusters and BLAS steps, in place."""
    ops = plan.ops
    feed_set = set(plan.feed_slots)
    fed = {t for t, s in plan.slots.items() if s in feed_set}
    fetched = {t for t, s in plan.slots.items() if s in set(plan.fetch_slots)}
    res = cluster(ops, fed, member_reason)
    report: dict[str, Any] = {"clusters": [], "fallbacks": [
        {"op": f.op.name, "type": f.op.type, "reason": f.reason} for f in res.fallbacks]}
    plan.report = report
    if res.fallbacks and flags.fallback_is_error():
        f = res.fallbacks[0]
        raise errors.UnimplementedError(f.op.node_def, f.op, f"JITFLOW_FALLBACK=error: op {f.op.name} "
                                                             f"({f.op.type}) would run interpreted: {f.reason}")
    readers: dict[Tensor, set[Operation]] = {}
    for op in ops:
        for i, t in enumerate(op.inputs):
            if i not in op.opdef.ref_inputs:
                readers.setdefault(t, set()).add(op)
    own: dict[Operation, Step] = {}  # ops lowered as their own step (BLAS)
    matmul_of: dict[Tensor, Operation] = {}
    for op in ops:
        if op.type in _BLAS and member_reason(op) == "":
            t = op.outputs[0]
            own[op] = _BLAS[op.type](op, [plan.slots[x] for x in op.inputs], plan.slots[t], t in fetched,
                                     plan.op_steps[op])
            matmul_of[t] = op
        elif _dynamic_unbroadcast(op, fed) and member_reason(op):
            shape_op = op.inputs[1].op
            own[op] = UnbroadcastDynStep(op, plan.slots[op.inputs[0]], plan.slots[shape_op.inputs[0]],
                                         plan.slots[op.outputs[0]], [plan.op_steps[shape_op], plan.op_steps[op]])
        elif op.type in _ROW_OPS and member_reason(op) == "":
            row_entry: dict[str, Any] = {"ops": [op.name], "backend": "cpu", "key": "", "compile_seconds": 0.0,
                                         "source": "deferred"}
            report["clusters"].append(row_entry)
            outs = [TRASH_SLOT if t in fed else plan.slots[t] for t in op.outputs]
            own[op] = SparseXentStep(op, [plan.slots[x] for x in op.inputs], outs,
                                     [t in fetched for t in op.outputs], plan.op_steps[op], row_entry)
    var_shapes = {op.name: op.attrs.get("shape") for op in ops if op.type == "VariableV2"}
    gpu_plan = any(requested_gpu(op) is not None for op in ops)
    n_gpus = gpu_count() if gpu_plan else 0
    cluster_steps: list[ClusterStep] = []
    cluster_at: dict[Operation, ClusterStep] = {}  # last member -> its cluster's step
    clustered: set[Operation] = set()
    for members in res.clusters:
        mset = set(members)
        needed = {t for m in members for t in m.outputs
                  if t in fetched or any(r not in mset for r in readers.get(t, ()))}
        for m in members:
            for r in m.opdef.ref_inputs:
                v = m.inputs[r].op
                var_shapes.setdefault(v.name, v.attrs.get("shape"))
        upd_refs = {t: (r.refs, r.reads) for t, r in L.UPDATES.items()}
        c = build_cluster(members, fed, needed, upd_refs, L.ATTRS, "cpu", L.DATA_INPUTS, L.derived_attrs)
        in_slots = [plan.slots[i.tensor] if i.tensor is not None else -1 for i in c.inputs]
        out_slots = [plan.slots[o.tensor] if o.tensor is not None else -1 for o in c.outputs]
        fresh = [o.var is not None or (o.tensor is not None and o.tensor in fetched) for o in c.outputs]
        epilogue_of = [matmul_of[i.tensor].name for i in c.inputs if i.tensor in matmul_of]
        entry: dict[str, Any] = {"ops": epilogue_of + [m.name for m in members], "backend": c.backend,
                                 "key": "", "compile_seconds": 0.0, "source": "deferred"}
        report["clusters"].append(entry)
        member_steps = [plan.op_steps[m] for m in members]
        step = ClusterStep(c, in_slots, out_slots, fresh, member_steps, entry, var_shapes)
        step.has_checks = any(_has_checks(c, k) for k in range(len(c.nodes)))
        cluster_steps.append(step)
        cluster_at[members[-1]] = step
        clustered |= mset
        if not (n_gpus and all(requested_gpu(m) is not None for m in members)):
            _warm(step)  # (a GPU cluster compiles for CUDA instead)
        if flags.debug_level() >= 3:
            print(f"jitflow: cluster {entry['ops']} ({c.kind}, {len(c.inputs)} inputs, "
                  f"{len(c.outputs)} outputs)", file=sys.stderr)
    if flags.debug_level() >= 3:
        for f in report["fallbacks"]:
            print(f"jitflow: fallback {f['op']} ({f['type']}): {f['reason']}", file=sys.stderr)
    folded = _fold_constants(plan, fed)
    unused = _unused_shape_ops(ops, clustered | {o for o, st in own.items() if isinstance(st, UnbroadcastDynStep)},
                               cluster_steps, fetched)
    for st in cluster_steps:  # the interpreted fallback of a cluster still needs those values
        pre = [plan.op_steps[t.op] for m in st.c.ops for t in m.inputs if t.op in unused]
        if pre:
            st.member_steps = pre + st.member_steps
    steps: list[Step] = []
    for op in ops:
        if op in plan.lazy_vars or op in folded or op in unused:
            continue
        cstep = cluster_at.get(op)
        if cstep is not None:
            done: set[Operation] = set()
            for m in cstep.c.ops:  # variables are read just before the step that consumes them
                steps.extend(var_reads(m, plan.lazy_vars, plan.op_steps, done))
            steps.append(cstep)
        elif op not in clustered:
            own_step = own.get(op)
            if isinstance(own_step, UnbroadcastDynStep) and op.inputs[1].op not in unused:
                own_step.fallback = own_step.fallback[1:]  # the Shape step runs anyway
            steps.extend(var_reads(op, plan.lazy_vars, plan.op_steps))
            steps.append(own_step or plan.op_steps[op])
    plan.steps = steps
    _mark_array_outputs(cluster_steps, readers)
    if gpu_plan:
        try:
            from jitflow.compiler.gpu import lower_gpu_clusters
        except ImportError:  # no CUDA backend in this build: everything stays on the CPU
            return
        lower_gpu_clusters(plan)


def _unused_shape_ops(ops: list[Operation], clustered: set[Operation], cluster_steps: list[ClusterStep],
                      fetched: set[Tensor]) -> set[Operation]:
    """Shape/Size/Rank ops whose value nothing reads any more (e.g. targets folded into a cluster)."""
    read: set[Tensor] = {i.tensor for st in cluster_steps for i in st.c.inputs if i.tensor is not None}
    controls: set[Operation] = set()
    for op in ops:
        controls.update(op.control_inputs)
        if op not in clustered:
            read.update(op.inputs)
    return {op for op in ops if op.type in ("Shape", "Size", "Rank") and op not in controls
            and not any(t in read or t in fetched for t in op.outputs)}


def _fold_constants(plan: Plan, fed: set[Tensor]) -> set[Operation]:
    """Const values go into the plan's initial slots: no step runs for them. Returns the folded ops."""
    template: list[Any] = [None] * plan.n_slots
    folded: set[Operation] = set()
    for op in plan.ops:
        if op.type == "Const" and not op.control_inputs and op.outputs[0] not in fed:
            value = op.attrs["value"]
            if isinstance(value, np.ndarray):
                template[plan.slots[op.outputs[0]]] = value
                folded.add(op)
    if folded:
        plan.template = template
    return folded


def _mark_array_outputs(cluster_steps: list[ClusterStep], readers: dict[Tensor, set[Operation]]) -> None:
    """One-element outputs read only by clusters (or only fetched) may stay NumPy scalars."""
    in_cluster = {m for st in cluster_steps for m in st.c.ops}
    for st in cluster_steps:
        mine = set(st.c.ops)
        st.need_array = [o.tensor is not None and any(r not in in_cluster and r not in mine
                                                      for r in readers.get(o.tensor, ()))
                         for o in st.c.outputs]


def _has_checks(c: Cluster, k: int) -> bool:
    node = c.nodes[k]
    if node.op_type in L.UPDATES or c.kind == REDUCTION and k == len(c.nodes) - 1:
        return False
    tpl = L.ELEMENTWISE[node.op_type]
    e = tpl([f"a{i}" for i in range(len(node.args))], [c.value_dtype(a) for a in node.args], node.dtype, node)
    return bool(e is not None and e.checks)


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


def compile_predicted(step: ClusterStep) -> None:
    """Compiles the kernel that the static shapes predict even for tiny clusters (for `explain`)."""
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
