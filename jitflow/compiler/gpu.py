"""The device side of a plan: CUDA steps, variables mirrored on the device, and the transfers between.

`lower_gpu_clusters(plan)` runs at the end of `compiler/lower.py`'s `lower`. It replaces the compiled steps
whose ops are placed on an available GPU (`/gpu:N`, `/device:GPU:N`, see `compiler/placement.py`) by CUDA
steps (kernels of `codegen/cuda.py`, through the content-keyed cache): clusters (`CudaClusterStep`),
MatMul (`CudaMatMulStep`, or `FusedMatMulStep` with the elementwise cluster that alone reads it) and
sparse softmax cross-entropy (`CudaSparseXentStep`). Reads of variables consumed only on the device become
`DeviceReadStep`s; Identity, Reshape/ExpandDims/Squeeze and run-time UnbroadcastTo pass device arrays
through; Shape/Size/Rank read only shapes. Steps of ops on /gpu:N with N > 0 run with device N current.
Without numba-cuda (or Numba's bundled numba.cuda), a GPU or the simulator, nothing changes: those ops
stay on the CPU (soft placement).

Where values live
-----------------
* Variables: the session's ``variables`` dict becomes a `DeviceVariables` on the first CUDA run. It keeps
  a device array per variable; a CUDA update writes the device array (in place when the kernel reads and
  writes each element at the same point and no snapshot of the variable is read later in the run, else
  into a pooled array) and marks the host value stale; any host read (interpreted ops, CPU kernels, the
  Saver) copies it back first. Variables thus stay on the device between runs.
* Feeds and other host values are copied in when a CUDA step reads them; constants once per step.
* A CUDA step's output goes to the host only when it is fetched or read by a host step; otherwise the
  slot holds the device array and the next CUDA step reads it there: no round trip through the host
  within a run of GPU clusters. A value needed on both sides is copied out once and its device array is
  remembered for the CUDA readers.
* A CUDA step whose shapes do not check out, or whose kernel flags an error, runs its members
  interpreted on host copies of its inputs, exactly as the CPU `ClusterStep` does; a cluster with a node
  that has no device lowering keeps its CPU kernel (and its report says why).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
import types
import warnings
from typing import Any

import numpy as np

from jitflow.codegen import cuda as cg
from jitflow.codegen.cache import KernelCompileError
from jitflow.compiler.cluster import Cluster
from jitflow.compiler.interp import op_error
from jitflow.compiler.placement import gpu_count, requested_gpu
from jitflow.compiler.plan import ARENA_SLOT, TRASH_SLOT, Plan, Step
from jitflow.framework.graph import Operation, Tensor
from jitflow.ir.layout import Layout, LayoutError, compute_layout

# -- the CUDA runtime ------------------------------------------------------------------------------------

_target: cg.Target | None = None


def cuda_api() -> Any:
    """The `numba.cuda` module (numba-cuda when installed, else Numba's bundled one)."""
    from numba import cuda

    return cuda


def simulated() -> bool:
    """True when `numba.cuda` is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return "simulator" in type(cuda_api().gpus).__module__


def target() -> cg.Target:
    """What kernels are compiled for: "cudasim" on the simulator, else the current device's sm_XY."""
    global _target
    if _target is None:
        if simulated():
            # the simulator runs a Python thread per CUDA thread: small blocks keep it fast
            _target = cg.Target("cudasim", tpb=8, tile=4, max_blocks=4)
        else:
            cc = cuda_api().get_current_device().compute_capability
            _target = cg.Target(f"sm_{cc[0]}{cc[1]}", tpb=256, tile=16, max_blocks=4096)
    return _target


_sim_lock = threading.Lock()
_no_lock = contextlib.nullcontext()


def launch_guard() -> Any:
    """Held around kernel launches: the simulator runs one launch at a time (its thread state is global)."""
    return _sim_lock if target().arch == "cudasim" else _no_lock


def usable_gpu(op: Operation, n_gpus: int) -> int | None:
    """The CUDA device `op` runs on, or None (placed on the CPU, or its GPU does not exist)."""
    idx = requested_gpu(op)
    return idx if idx is not None and idx < n_gpus else None


def on_gpu(ops: list[Operation]) -> bool:
    """True when every op of `ops` is placed on one available GPU (their cluster will run on CUDA)."""
    if not ops or any(requested_gpu(op) is None for op in ops):
        return False
    n = gpu_count()
    devs = {usable_gpu(op, n) for op in ops}
    return len(devs) == 1 and None not in devs


_multi_device = False  # set once a plan places CUDA steps on a device other than 0


def current_device() -> int:
    """The CUDA device the calling thread launches on (0 on the simulator, which has one)."""
    getter = getattr(cuda_api(), "get_current_device", None)  # Numba's bundled simulator lacks it
    return int(getattr(getter(), "id", 0)) if getter is not None else 0


def array_device(a: Any) -> int:
    """The device that holds device array `a` (0 when it cannot tell, e.g. on the simulator)."""
    ctx = getattr(getattr(a, "gpu_data", None), "context", None)
    return int(getattr(getattr(ctx, "device", None), "id", 0))


def here(a: Any) -> Any:
    """Device array `a` on the current device (copied through the host when it lives on another GPU)."""
    if _multi_device and array_device(a) != current_device():
        return cuda_api().to_device(to_host(a))
    return a


class _OnDevice:
    """Runs a CUDA step with device N current (kernels, allocations and uploads go there)."""

    def __init__(self, step: Any, device: int) -> None:
        self.step = step
        self.device = device
        self.op = getattr(step, "op", None)
        self.c = getattr(step, "c", None)

    def __call__(self, ctx: Any, vals: list) -> None:
        with cuda_api().gpus[self.device]:
            self.step(ctx, vals)


def is_device_array(x: Any) -> bool:
    """True for a CUDA device array (or the simulator's stand-in)."""
    return type(x) is not np.ndarray and hasattr(x, "copy_to_host")


def _c_order(a: np.ndarray) -> np.ndarray:
    """`a` in C order, keeping its rank (np.ascontiguousarray makes rank 0 into rank 1)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def to_host(x: Any) -> np.ndarray:
    """A host copy of a device array."""
    out: np.ndarray = x.copy_to_host()
    return out


# -- variables on the device ---------------------------------------------------------------------------


class DeviceVariables(dict):  # type: ignore[type-arg]
    """A session's variable values (name -> read-only host array) with device mirrors synced lazily.

    Host reads of a variable whose device value is newer copy it back first; host writes make the mirror
    stale (it is uploaded again on the next device read).
    """

    def __init__(self, base: dict[str, Any]) -> None:
        super().__init__(base)
        self._mirror: dict[str, tuple[Any, Any]] = {}  # name -> (host array it equals or None, device array)
        self._dirty: set[str] = set()  # device value newer than the host one
        self._lock = threading.RLock()

    # host side
    def _sync(self, name: str) -> None:
        with self._lock:
            if name not in self._dirty:
                return
            dev = self._mirror[name][1]
            host = to_host(dev)
            host.flags.writeable = False
            dict.__setitem__(self, name, host)
            self._mirror[name] = (host, dev)
            self._dirty.discard(name)

    def sync_all(self) -> None:
        """Copies every variable whose device value is newer back to the host."""
        for name in list(self._dirty):
            self._sync(name)

    def __getitem__(self, name: str) -> Any:
        if self._dirty and name in self._dirty:
            self._sync(name)
        return dict.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        if self._dirty and name in self._dirty:
            self._sync(name)
        return dict.get(self, name, default)

    def __setitem__(self, name: str, value: Any) -> None:
        with self._lock:
            self._dirty.discard(name)
            dict.__setitem__(self, name, value)

    def __delitem__(self, name: str) -> None:
        with self._lock:
            self._dirty.discard(name)
            self._mirror.pop(name, None)
            dict.__delitem__(self, name)

    def pop(self, name: str, *default: Any) -> Any:
        with self._lock:
            self._sync(name)
            self._mirror.pop(name, None)
            return dict.pop(self, name, *default)

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name in self:
            return self[name]
        self[name] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def clear(self) -> None:
        with self._lock:
            self._dirty.clear()
            self._mirror.clear()
            dict.clear(self)

    def values(self) -> Any:
        self.sync_all()
        return dict.values(self)

    def items(self) -> Any:
        self.sync_all()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self.sync_all()
        return dict(dict.items(self))

    # device side
    def device_value(self, name: str) -> Any:
        """The device array holding the variable's current value (uploaded if stale); None if unset."""
        with self._lock:
            m = self._mirror.get(name)
            if m is not None and _multi_device and array_device(m[1]) != current_device():
                self._sync(name)  # used on another GPU: move it through the host
                m = None
            if name in self._dirty:
                return self._mirror[name][1]
            host = dict.get(self, name)
            if host is None:
                return None
            if m is not None and m[0] is host:
                return m[1]
            dev = cuda_api().to_device(_c_order(host))
            self._mirror[name] = (host, dev)
            return dev

    def device_assign(self, name: str, dev: Any) -> None:
        """Makes device array `dev` the variable's value; the host copy is made when a host step reads it."""
        with self._lock:
            self._mirror[name] = (None, dev)
            self._dirty.add(name)
            if not dict.__contains__(self, name):
                dict.__setitem__(self, name, None)  # the key exists (initialized); the value comes on read

    def is_current(self, name: str, host: Any) -> bool:
        """True when `host` is the variable's current host value (so its device mirror can stand in)."""
        return name not in self._dirty and dict.get(self, name) is host


_install_lock = threading.Lock()


def device_store(ctx: Any) -> DeviceVariables:
    """The session's variables as a `DeviceVariables` (installed on the first CUDA run)."""
    store = ctx.variables
    if type(store) is DeviceVariables:
        return store
    with _install_lock:
        store = ctx.variables
        if type(store) is not DeviceVariables:
            store = DeviceVariables(store)
            ctx.variables = store
    return store


# -- inputs and outputs of CUDA steps ------------------------------------------------------------------


# arena entry of the run's values copied out that CUDA steps also read: (producer, output) -> (host, device)
_PAIRS = "cuda-pairs"


class _IO:
    """How a CUDA step gets its inputs onto the device and where its outputs go."""

    def __init__(self, in_slots: list[int], const_inputs: list[bool], var_reads: list[str | None]) -> None:
        self.in_slots = in_slots
        self.const_inputs = const_inputs  # host input that never changes (a Const): uploaded once
        self.var_reads = var_reads  # input read from this variable's tensor: its mirror stands in
        self.const_cache: dict[int, tuple[Any, Any]] = {}
        self.host_out: list[bool] = []  # per output: fetched or read by a host step
        self.dev_out: list[bool] = []  # per output: read by a CUDA step
        self.owner: Any = None  # the key of the step these outputs belong to

    def device_input(self, k: int, v: Any, vals: list, store: DeviceVariables) -> Any:
        """The device array for input k whose slot holds `v` (copied in when it is a host value)."""
        if is_device_array(v):
            return here(v)
        if type(v) is not np.ndarray:
            v = np.asarray(v)
        pairs = vals[ARENA_SLOT].bufs.get(_PAIRS)
        if pairs:
            for host, dev in pairs.values():
                if host is v:
                    return here(dev)
        var = self.var_reads[k]
        if var is not None and store.is_current(var, v):
            return store.device_value(var)
        if self.const_inputs[k]:
            hit = self.const_cache.get(k)
            if hit is not None and hit[0] is v:
                return hit[1]
            dev = cuda_api().to_device(_c_order(v))
            self.const_cache[k] = (v, dev)
            return dev
        return cuda_api().to_device(_c_order(v))

    def put_output(self, j: int, slot: int, dev: Any, vals: list) -> None:
        """Writes output j (a device array) into its slot: on the host, the device, or both."""
        if slot < 0:
            return
        if self.host_out[j]:
            host = to_host(dev)
            vals[slot] = host
            if self.dev_out[j]:
                vals[ARENA_SLOT].bufs.setdefault(_PAIRS, {})[(self.owner, j)] = (host, dev)
        else:
            vals[slot] = dev


def _device_buffer(vals: list, key: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
    """A device array of the run's arena, reused across runs (reallocated when the shape changes)."""
    bufs = vals[ARENA_SLOT].bufs
    b = bufs.get(key)
    if b is None or tuple(b.shape) != shape or b.dtype != dtype:
        b = cuda_api().device_array(shape, dtype)
        bufs[key] = b
    return b


def _flat(a: Any) -> Any:
    """A 1-D view of a C-contiguous device array (kernels index flat arrays)."""
    return a if len(a.shape) == 1 else a.reshape(a.size)


class DevicePool:
    """Device arrays given out as variable values, taken back once nothing references them.

    A variable update writes a new array (earlier reads of the variable may still be in use in this run);
    the array it replaced is free again once the run that read it is over. Reference counts tell.
    """

    KEEP = 3
    _free_refs: int | None = None

    def __init__(self) -> None:
        self.pool: list[Any] = []
        self.lock = threading.Lock()

    def get(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """A device array of `shape` and `dtype` that nobody else references."""
        free = self._free()
        with self.lock:
            for k in range(len(self.pool)):  # not enumerate: its reused tuple would hold a reference
                a = self.pool[k]
                if sys.getrefcount(a) <= free and tuple(a.shape) == shape and a.dtype == dtype:
                    del self.pool[k]
                    break
            else:
                a = cuda_api().device_array(shape, dtype)
            self.pool.append(a)
            if len(self.pool) > self.KEEP:
                del self.pool[0]
            return a

    @classmethod
    def _free(cls) -> int:
        if cls._free_refs is None:
            probe = [cuda_api().device_array(1, np.float32)]
            cls._free_refs = sys.getrefcount(probe[0]) + 1  # + the loop variable that looks at it
        return cls._free_refs


def _host_inputs(in_slots: list[int], vals: list) -> None:
    """Replaces device arrays in `in_slots` by host copies (before running interpreted steps)."""
    for s in in_slots:
        if s >= 0 and is_device_array(vals[s]):
            vals[s] = to_host(vals[s])


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

    def __init__(self, base: Any, io: _IO) -> None:
        c: Cluster = base.c
        self.base = base
        self.c = c
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
            _host_inputs(self.in_slots, vals)
            return self.base(ctx, vals)  # type: ignore[no-any-return]
        outs = self.outputs(ent, arrays, vals)
        err = self.err_buffer(vals)
        with launch_guard():
            ent.kernel(*[_flat(a) for a in arrays], *[_flat(o) for o in outs], ent.exts, err)
        if self.has_checks and to_host(err)[0]:
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
                outs.append(_device_buffer(vals, (self.key, j), ent.out_shapes[j], dt))
        return outs

    def err_buffer(self, vals: list) -> Any:
        """The kernel's error flag, cleared when the cluster has checks."""
        err = _device_buffer(vals, (self.key, -1), (1,), np.dtype(np.int64))
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
        _host_inputs(self.in_slots, vals)
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
                source = cg.generate(self.c, layout, target())
                parts = {"cluster": self.c.signature(), "layout": layout.key()}
                fn = compile_cuda(source, parts, [op.type for op in self.c.ops], self.report)
                self.kernels[layout] = fn
        return fn


class CudaMatMulStep:
    """MatMul of two 2-D float arrays as a tiled CUDA kernel."""

    def __init__(self, base: Any, io: _IO, report: dict[str, Any]) -> None:
        self.base = base
        self.op: Operation = base.op
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
        out = _device_buffer(vals, (self.key, 0), (m, n), self.dtype)
        self.compile_predicted()
        with launch_guard():
            self.kernel(_flat(da), _flat(db), _flat(out), m, n, k)
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
        _host_inputs(self.in_slots, vals)
        self.base.fallback(ctx, vals)


class FusedMatMulStep:
    """A MatMul and the elementwise cluster that is its only reader, as one kernel (bias, activation...).

    The product never reaches memory: each result element runs the epilogue as it leaves the tile.
    Shapes that do not fit (the epilogue broadcasts the product) run the two steps one after the other.
    """

    def __init__(self, mm: CudaMatMulStep, epi: CudaClusterStep, mm_input: int) -> None:
        self.mm = mm
        self.epi = epi
        self.mm_input = mm_input
        self.c = epi.c
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
        unused_c = _device_buffer(vals, (self.key, 0), (1,), self.mm.dtype)
        rest = [_flat(a) for i, a in enumerate(arrays) if i != self.mm_input]
        with launch_guard():
            ent.kernel(_flat(da), _flat(db), unused_c, m, n, k, *rest, *[_flat(o) for o in outs], ent.exts, err)
        if self.epi.has_checks and to_host(err)[0]:
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

    def __init__(self, base: Any, io: _IO) -> None:
        self.base = base
        self.op: Operation = base.op
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
        loss = _device_buffer(vals, (self.key, 0), (n,), self.dtype)
        grad = _device_buffer(vals, (self.key, 1), (n, k), self.dtype)
        err = _device_buffer(vals, (self.key, -1), (1,), np.dtype(np.int64))
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
            self.kernel(_flat(df), dl, loss, _flat(grad), n, k, err)
        if not host_checked and to_host(err)[0]:
            return self.interpret(ctx, vals)  # a label out of range: the interpreter's error
        self.io.put_output(0, self.out_slots[0], loss, vals)
        self.io.put_output(1, self.out_slots[1], grad, vals)
        return None

    def interpret(self, ctx: Any, vals: list) -> None:
        """The reference kernel on host copies (its result or error)."""
        _host_inputs(self.in_slots, vals)
        self.base.fallback(ctx, vals)


class DeviceUnbroadcastDyn:
    """UnbroadcastTo(g, Shape(x)) when g may live on the device: g itself when it has x's shape (the common
    case), else the CPU step on host copies."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.op: Operation = base.op
        self.dtype = np.dtype(self.op.outputs[0].dtype.np)

    def __call__(self, ctx: Any, vals: list) -> None:
        b = self.base
        g, x = vals[b.sg], vals[b.sx]
        if g is not None and x is not None and tuple(np.shape(g)) == tuple(np.shape(x)) and g.dtype == self.dtype:
            vals[b.so] = g
            return None
        _host_inputs([b.sg], vals)
        b(ctx, vals)
        return None


class DeviceReshape:
    """Reshape, ExpandDims or Squeeze of a device array: the reference kernel decides the new shape (or
    raises its error) on a stand-in of the same shape, and the device array is reshaped without a copy."""

    def __init__(self, host_step: Step, in_slots: list[int], out_slot: int) -> None:
        op = getattr(host_step, "op", None)
        assert op is not None
        self.host_step = host_step
        self.op: Operation = op
        self.in_slots = in_slots
        self.out_slot = out_slot

    def __call__(self, ctx: Any, vals: list) -> None:
        x = vals[self.in_slots[0]]
        if not is_device_array(x):
            return self.host_step(ctx, vals)  # type: ignore[func-returns-value]
        _host_inputs(self.in_slots[1:], vals)  # the shape or axis argument is tiny
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

    def __init__(self, host_step: Step, name: str, slot: int) -> None:
        self.host_step = host_step
        self.op = getattr(host_step, "op", None)
        self.name = name
        self.slot = slot

    def __call__(self, ctx: Any, vals: list) -> None:
        dev = device_store(ctx).device_value(self.name)
        if dev is None:
            return self.host_step(ctx, vals)  # uninitialized: the interpreter's error
        vals[self.slot] = dev
        return None


# -- the hook into lower() -----------------------------------------------------------------------------


def lower_gpu_clusters(plan: Plan) -> None:
    """Moves the compiled steps of ops placed on an available GPU to CUDA, in place (see the module doc).

    Call it at the end of `lower(plan)`, once `plan.steps` holds the final ClusterSteps and MatMulSteps.
    """
    if not any(requested_gpu(op) is not None for op in plan.ops):
        return  # nothing asks for a GPU: never import numba.cuda
    n_gpus = gpu_count()
    if n_gpus == 0:
        return
    from jitflow.compiler import lower as low

    fetched = {t for t, s in plan.slots.items() if s in set(plan.fetch_slots)}
    feed_set = set(plan.feed_slots)
    fed = {t for t, s in plan.slots.items() if s in feed_set}
    readers: dict[Tensor, set[Operation]] = {}
    for op in plan.ops:
        for i, t in enumerate(op.inputs):
            if i not in op.opdef.ref_inputs:
                readers.setdefault(t, set()).add(op)
    steps: list[Step] = list(plan.steps)
    gpu_ops: set[Operation] = set()
    cuda_steps: list[tuple[Any, list[Tensor | None]]] = []
    listed = {name for entry in plan.report.get("clusters", []) for name in entry.get("ops", [])}
    through: set[Operation] = set()  # ops that hand their first input on unchanged (when shapes allow)
    for i, st in enumerate(steps):
        if isinstance(st, low.ClusterStep) and _all_on(st.c.ops, n_gpus):
            c = st.c
            io = _IO(st.in_slots, [inp.tensor is not None and inp.tensor.op.type == "Const" and inp.tensor not in fed
                                   for inp in c.inputs], [_var_of(inp.tensor, fed) for inp in c.inputs])
            c.backend = "cuda"
            st.report["backend"] = "cuda"
            st.report.update(key="", compile_seconds=0.0, source="deferred")  # the CPU kernel is not used
            steps[i] = CudaClusterStep(st, io)
            gpu_ops.update(c.ops)
            cuda_steps.append((steps[i], [o.tensor for o in c.outputs]))
        elif isinstance(st, low.MatMulStep) and usable_gpu(st.op, n_gpus) is not None:
            ins = list(st.op.inputs)
            io = _IO([st.sa, st.sb], [t.op.type == "Const" and t not in fed for t in ins],
                     [_var_of(t, fed) for t in ins])
            entry: dict[str, Any] = {"ops": [st.op.name], "backend": "cuda", "key": "", "compile_seconds": 0.0,
                                     "source": "deferred"}
            if st.op.name not in listed:
                plan.report.setdefault("clusters", []).append(entry)
            steps[i] = CudaMatMulStep(st, io, entry)
            gpu_ops.add(st.op)
            cuda_steps.append((steps[i], [st.op.outputs[0]]))
        elif isinstance(st, low.SparseXentStep) and usable_gpu(st.op, n_gpus) is not None:
            io = _IO([st.sf, st.sl], [False, False], [None, None])
            st.report.update(backend="cuda", key="", compile_seconds=0.0, source="deferred")
            steps[i] = CudaSparseXentStep(st, io)
            gpu_ops.add(st.op)
            cuda_steps.append((steps[i], [t if s > TRASH_SLOT else None
                                          for t, s in zip(st.op.outputs, st.out_slots)]))
        elif isinstance(st, low.UnbroadcastDynStep) and usable_gpu(st.op, n_gpus) is not None:
            steps[i] = DeviceUnbroadcastDyn(st)
            through.add(st.op)
        elif isinstance(st, types.FunctionType) and (op := getattr(st, "op", None)) is not None \
                and op.type in RESHAPES and usable_gpu(op, n_gpus) is not None:
            steps[i] = DeviceReshape(st, [plan.slots[t] for t in op.inputs],
                                     TRASH_SLOT if op.outputs[0] in fed else plan.slots[op.outputs[0]])
            through.add(op)
    if not cuda_steps:
        return
    dev_readers = _device_readers(plan.ops, gpu_ops, readers, fetched, fed, through)
    for cs, outs in cuda_steps:
        cs.io.host_out = [t is not None and (t in fetched or any(r not in dev_readers for r in readers.get(t, ())))
                          for t in outs]
        cs.io.dev_out = [t is not None and any(r in dev_readers and r.type not in SHAPE_ONLY
                                               for r in readers.get(t, ())) for t in outs]
    device_reads: set[str] = set()
    for i, st in enumerate(steps):
        op = getattr(st, "op", None)
        if isinstance(st, types.FunctionType) and op is not None and op.type == "VariableV2":
            t = op.outputs[0]
            rs = readers.get(t, set())
            if rs and rs <= dev_readers and t not in fetched and t not in fed:
                steps[i] = DeviceReadStep(st, op.name, plan.slots[t])
                device_reads.add(op.name)
    _limit_in_place(steps, [cs for cs, _ in cuda_steps], device_reads, readers, through)
    _fuse_epilogues(steps, readers, fetched)
    _place_on_devices(steps, n_gpus, readers)
    plan.steps = steps
    if plan.debug >= 3:
        for cs, _ in cuda_steps:
            print(f"jitflow: cuda step {cs.report.get('ops')}", file=sys.stderr)


# Host steps that only look at a value's shape (they work on device arrays), and ops passing it through.
SHAPE_ONLY = frozenset({"Shape", "Size", "Rank"})
PASS_THROUGH = frozenset({"Identity", "StopGradient"})
# Structural ops that only change a value's shape: on the device they reshape the device array.
RESHAPES = frozenset({"Reshape", "ExpandDims", "Squeeze"})


def _device_readers(ops: list[Operation], gpu_ops: set[Operation], readers: dict[Tensor, set[Operation]],
                    fetched: set[Tensor], fed: set[Tensor], through: set[Operation]) -> set[Operation]:
    """Ops that may read a device array: CUDA ops, shape queries, and pass-throughs read only by such."""
    dev = set(gpu_ops) | {op for op in ops if op.type in SHAPE_ONLY}
    changed = True
    while changed:
        changed = False
        for op in ops:
            if op in dev or (op.type not in PASS_THROUGH and op not in through) or op.control_inputs:
                continue
            t = op.outputs[0]
            rs = readers.get(t, set())
            if rs and rs <= dev and t not in fetched and t not in fed:
                dev.add(op)
                changed = True
    return dev


def _limit_in_place(steps: list[Step], cuda_steps: list[Any], device_reads: set[str],
                    readers: dict[Tensor, set[Operation]], through: set[Operation]) -> None:
    """No in-place update of a variable whose device snapshot (read through a pass-through) is used later.

    A variable read directly is read again before each consumer, so it always sees the current value; a
    pass-through's output keeps the value it was given, which an in-place update would change under it.
    """
    pos: dict[Operation, int] = {}
    for i, st in enumerate(steps):
        c = getattr(st, "c", None)
        for op in (c.ops if c is not None else [getattr(st, "op", None)]):
            if op is not None:
                pos.setdefault(op, i)
    last_use: dict[str, int] = {}
    for op in pos:
        if op.type != "VariableV2" or op.name not in device_reads:
            continue
        stack = [r for r in readers.get(op.outputs[0], ()) if r.type in PASS_THROUGH or r in through]
        seen: set[Operation] = set()
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            for r in readers.get(p.outputs[0], ()):
                last_use[op.name] = max(last_use.get(op.name, -1), pos.get(r, len(steps)))
                if r.type in PASS_THROUGH or r in through:
                    stack.append(r)
    for cs in cuda_steps:
        if isinstance(cs, CudaClusterStep):
            here = steps.index(cs)
            cs.in_place_ok = {v for v in cs.in_place_ok if last_use.get(v, -1) < here}


def _fuse_epilogues(steps: list[Step], readers: dict[Tensor, set[Operation]], fetched: set[Tensor]) -> None:
    """Fuses each CUDA MatMul into the elementwise CUDA cluster that alone reads its product, in place.

    The fused step runs where the epilogue ran (its other inputs are ready there); only steps without side
    effects may sit between the two, so the MatMul's operands still hold the values it would have read.
    """
    from jitflow.compiler.cluster import ELEMENTWISE

    owner: dict[Operation, int] = {}
    for i, st in enumerate(steps):
        if isinstance(st, CudaClusterStep):
            for op in st.c.ops:
                owner[op] = i
    drop: set[int] = set()
    for i, mm in enumerate(steps):
        if not isinstance(mm, CudaMatMulStep):
            continue
        t = mm.op.outputs[0]
        rs = readers.get(t, set())
        j = owner.get(next(iter(rs))) if rs else None
        if j is None or t in fetched or any(owner.get(r) != j for r in rs):
            continue
        epi = steps[j]
        assert isinstance(epi, CudaClusterStep)
        ins = [k for k, inp in enumerate(epi.c.inputs) if inp.tensor is t]
        if epi.c.kind != ELEMENTWISE or len(ins) != 1 or any(v is not None for v in epi.stores) \
                or j < i or not all(_pure(steps[p]) for p in range(i + 1, j)):
            continue
        steps[j] = FusedMatMulStep(mm, epi, ins[0])
        drop.add(i)
    for i in sorted(drop, reverse=True):
        del steps[i]


def _pure(step: Step) -> bool:
    """True for a step without side effects (no variable update, no stateful op)."""
    from jitflow.framework import registry

    if isinstance(step, (DeviceReadStep, CudaMatMulStep)):
        return True
    c = getattr(step, "c", None)
    if c is not None:
        return all(o.var is None for o in c.outputs) and all(op.opdef.kind != registry.STATEFUL for op in c.ops)
    op = getattr(step, "op", None)
    return op is not None and (op.type == "VariableV2" or op.opdef.kind != registry.STATEFUL)


def _place_on_devices(steps: list[Step], n_gpus: int, readers: dict[Tensor, set[Operation]]) -> None:
    """Steps of ops on /gpu:N (N > 0) run with device N current; device 0 is the default context.

    A device read of a variable goes to the device of the steps that consume it.
    """
    global _multi_device
    for i, st in enumerate(steps):
        c = getattr(st, "c", None)
        ops = list(c.ops) if c is not None else [op for op in [getattr(st, "op", None)] if op is not None]
        if isinstance(st, DeviceReadStep) and ops:
            ops = list(readers.get(ops[0].outputs[0], ()))
        devs = {usable_gpu(op, n_gpus) for op in ops} - {None}
        if isinstance(st, (CudaClusterStep, CudaMatMulStep, FusedMatMulStep, CudaSparseXentStep, DeviceReadStep,
                           DeviceReshape, DeviceUnbroadcastDyn)) and len(devs) == 1 and devs != {0}:
            dev = devs.pop()
            assert dev is not None
            steps[i] = _OnDevice(st, dev)
            _multi_device = True


def _all_on(ops: list[Operation], n_gpus: int) -> bool:
    devs = {usable_gpu(op, n_gpus) for op in ops}
    return len(devs) == 1 and None not in devs


def _var_of(t: Tensor | None, fed: set[Tensor]) -> str | None:
    """The variable whose value tensor `t` is (its device mirror can stand in for the host value)."""
    if t is None or t in fed or t.op.type != "VariableV2":
        return None
    return t.op.name
