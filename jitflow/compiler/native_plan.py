"""A small plan run as one compiled call: batch-1 serving without Python between the kernels.

A batch-1 run of a small CNN (W7i) spent about as long in Python around its kernels as in them: 27 steps of
a few microseconds each, every one two to three times slower than warm once the dense layer's 12.8 MB of
weights had streamed through the caches. Once a plan has run `flags.native_plan_runs()` times (50) with the
same feed shapes, `run` translates its steps into one Numba function, compiled through the kernel cache: the
steps compiled loops take (`native_loop.Translator`: fused clusters, GEMMs, slices, aliases) and those of a
top-level plan:

* a variable read: the variable's current array is an argument of every run;
* Shape of an array of the shape the plan was made for: a constant;
* RandomUniform (float32, a constant shape): TF's Philox numbers from the counter reserved for the run;
* a Conv2D step (NHWC, with its fused bias, ReLU and pool) by the kernel the step takes for these shapes:
  the direct kernel (`pixel_conv`, one image), or the one-chunk Winograd job the helpers share
  (`winograd_jobs`), then the pool's row kernel (`kernels/pool.py`);
* a vector-matrix product (a batch-1 dense layer) in row blocks shared with the helpers (`packed_gemm.gemv`);
* Softmax / LogSoftmax by the step's row kernel (`codegen/rows.py`, its module inlined), ArgMax / ArgMin
  (a loop with NumPy's ties and NaNs: the first extreme, the first NaN).

Each tuple of feed shapes gets its own function (up to `MAX_SHAPES`: a few batch sizes). A run checks that the
feeds and variables have the shapes and dtypes the function was made for, then calls it with the helpers
spinning. Whatever the function cannot do (a kernel's failed check, a conv input with an inf, a NaN or a value
so large the Winograd transforms could overflow) makes it return `BAIL` before any result is visible: the plan
then runs step by step, its random ops' counters given back first, and that gives the interpreter's result or
error. The function calls the steps' own kernels in plan order, so its values are the step-by-step run's, but
for the order of BLAS's sums: a small MatMul goes through OpenBLAS's GEMM (the step: NumPy's matmul, which may
take GEMV), and a batch-1 MatMul always takes the row-block product (the step: while the helpers spin). A call
that raises (made for arguments it does not get) leaves its shapes step by step.
"""
from __future__ import annotations

import ast
import re
import sys
import time
from typing import Any

import numpy as np

from jitflow import flags
from jitflow.compiler import native_blas
from jitflow.compiler.loop_invariants import InvariantTransposeMatMul
from jitflow.compiler.native_loop import HELPERS, NATIVE_OPS, Module, SlotInfo, Translator, Unsupported, slot_info
from jitflow.compiler.plan import ARENA_SLOT, Plan
from jitflow.compiler.slice_steps import ConcatStep, SplitStep
from jitflow.compiler.step import CPU, IdentityStep, OpStep, ReshapeStep, ShapeStep, VarReadStep
from jitflow.compiler.steps import ClusterStep, MatMulStep, SoftmaxStep
from jitflow.compiler.window_steps import WindowStep, _NoFastPath
from jitflow.ops import philox
from jitflow.ops.random_ops import philox_for

NATIVE_PLAN_VERSION = 1
BAIL = 2  # what the generated function returns when the plan must run step by step
_HEAD = ["import math", "import numpy as np", "from numba import njit, prange, types",
         "from jitflow.codegen import vmath as V",
         "from jitflow.kernels import packed_gemm", "from jitflow.kernels import packed_gemm as _pg",
         "from jitflow.kernels import pixel_conv as _pc", "from jitflow.kernels import pool as _pool",
         "from jitflow.kernels import winograd as _wg", "from jitflow.kernels import winograd_jobs as _wj"]
# The generated function's matrix-vector products: the size from which a batch-1 MatMul step shares its rows
# with the helpers (`MatMulStep`).
_GEMV_MACS = 1 << 21
# Interpreted ops the translation takes besides the loops' (`native_loop.NATIVE_OPS`)
_PLAN_OPS = NATIVE_OPS | {"VariableV2", "RandomUniform", "Shape", "PlaceholderWithDefault", "ArgMax", "ArgMin"}
# Functions every generated plan module defines: ArgMax / ArgMin over the middle axis of an (outer, k, inner)
# array as NumPy's argmax / argmin (the first extreme; a NaN wins, the first one).
_PLAN_HELPERS = """

@njit(nogil=True, error_model="numpy")
def _arg_extreme(x, out, outer, k, inner, largest):
    for a in range(outer):
        for b in range(inner):
            best = 0
            m = x[a * k * inner + b]
            for j in range(1, k):
                v = x[(a * k + j) * inner + b]
                if m == m and (v != v or (v > m if largest else v < m)):
                    m = v
                    best = j
            out[a * inner + b] = best
"""


# Feed shapes a plan keeps a compiled call for (serving with a few batch sizes); others run step by step.
MAX_SHAPES = 4


class _Counting:
    """A plan's runs so far with one tuple of feed shapes (before it is translated), and how many it takes
    (`flags.native_plan_runs`, read when the count starts)."""

    __slots__ = ("shapes", "runs", "needed")

    def __init__(self, shapes: tuple) -> None:
        self.shapes = shapes
        self.runs = 0
        self.needed = flags.native_plan_runs()


class Broken(Exception):
    """A compiled call that raised: its plan runs step by step for those shapes (and this run too)."""


class Translations:
    """A plan's compiled calls by tuple of feed shapes (`plan.native`), the shapes none could be made for, and
    the count of runs toward the next."""

    __slots__ = ("calls", "failed", "counting")

    def __init__(self) -> None:
        self.calls: dict[tuple, NativePlan] = {}
        self.failed: set[tuple] = set()
        self.counting: _Counting | None = None

    def latest(self) -> NativePlan | None:
        """The compiled call made last (None: none yet)."""
        return next(reversed(self.calls.values()), None)


def run(plan: Plan, ctx: Any, feed_values: list[Any]) -> list[Any] | None:
    """The fetched values of a run of `plan` as one compiled call, or None: the caller runs the steps.

    Counts the runs with the same feed shapes; the run that reaches `flags.native_plan_runs()`
    (JITFLOW_NATIVE_PLAN, default 50; 0: never) translates the plan for those shapes (into
    ``plan.native.calls``, up to `MAX_SHAPES` tuples of shapes; `plan.native` becomes False when the plan's
    steps cannot be translated at all; the reason, or the last translation, in ``plan.report["native"]``).
    Translating and compiling takes ~1-3 s, once: a later process loads the function from the kernel cache."""
    state = plan.native
    if state is False or plan.debug >= 2:
        return None
    if state is None:
        state = plan.native = Translations()
    shapes = tuple([v.shape if type(v) is np.ndarray else np.shape(v) for v in feed_values])
    call = state.calls.get(shapes)
    if call is not None:
        try:
            return call.run(ctx, feed_values)
        except Broken as e:  # (these shapes run step by step from now on)
            state.calls.pop(shapes, None)  # (another thread's run may have failed too)
            state.failed.add(shapes)
            if not state.calls:
                plan.report["native"] = {"why_not": f"the compiled call failed: {e}"}
            return None
    if shapes in state.failed or len(state.calls) >= MAX_SHAPES:
        return None
    count = state.counting
    if count is None or count.shapes != shapes:
        count = state.counting = _Counting(shapes)
    count.runs += 1
    if count.needed <= 0 or count.runs < count.needed:
        return None
    why = why_not(plan)
    if why is not None:
        _give_up(plan, why)
        return None
    return _capture(plan, ctx, feed_values, state, shapes)


def _give_up(plan: Plan, why: str) -> None:
    plan.native = False
    plan.report["native"] = {"why_not": why}


def why_not(plan: Plan) -> str | None:
    """Why `plan`'s steps cannot run as one compiled call (None: they can, shapes permitting)."""
    if plan.dead_aware or plan.device_fetches or plan.device_used:
        return "the plan has conditional or device values"
    for st in plan.steps:
        if isinstance(st, (VarReadStep, IdentityStep, ReshapeStep, ShapeStep, MatMulStep, InvariantTransposeMatMul,
                           SplitStep, ConcatStep, SoftmaxStep)):
            continue
        if isinstance(st, ClusterStep):
            if st.backend != CPU or any(v is not None for v in st.stores) or st.in_place:
                return f"cluster {st.ops[0].name} assigns a variable or does not run on the CPU"
            continue
        if isinstance(st, WindowStep):
            if st.op.type not in ("Conv2D", "MaxPool", "AvgPool") or st.extra_slot >= 0 or st.fmt != "NHWC":
                return f"{st.op.type} ({st.op.name}) is not an NHWC Conv2D or pool of an inference run"
            continue
        if isinstance(st, OpStep) and st.ops[0].type in _PLAN_OPS:
            continue
        op = st.ops[0] if st.ops else None
        return f"{op.type} ({op.name}) runs as a {st.kind} step" if op is not None else f"a {st.kind} step"
    return None


def _capture(plan: Plan, ctx: Any, feed_values: list[Any], state: Translations, shapes: tuple) -> list[Any]:
    """Runs `plan` step by step in order and translates it for these feed `shapes` from the values the run
    left in its slots; returns the run's fetched values."""
    from jitflow.compiler.execute import run_in_order

    res, vals = run_in_order(plan, ctx, feed_values)
    state.counting = None
    t0 = time.perf_counter()
    why = None
    try:
        state.calls[shapes] = NativePlan(plan, ctx, vals)
        plan.report["native"] = {"steps": len(plan.steps), "compile_seconds": round(time.perf_counter() - t0, 3),
                                 "shapes": len(state.calls)}
    except Unsupported as e:  # (these shapes: a batch the conv's kernel cannot take, ...)
        why = str(e)
    except Exception as e:  # a step the translation misreads must not fail the user's run: it goes step by step
        why = f"the translation failed: {type(e).__name__}: {e}"
        if plan.debug >= 1:
            print(f"jitflow: plan not translated: {type(e).__name__}: {e}", file=sys.stderr)
    if why is not None:
        state.failed.add(shapes)
        if not state.calls:
            plan.report["native"] = {"why_not": why}
    return res


class _Random:
    """A RandomUniform op of the plan: each run reserves its counters (TF reserves 256 per element)."""

    def __init__(self, op: Any, size: int) -> None:
        self.op, self.reserve = op, size * 256


class _WinogradFilter:
    """The job arguments (`winograd_jobs._template`) of a Winograd conv for the filter's current value, kept
    while the filter is the same stored variable array (variables' arrays are read-only, and an update in
    place needs the array to have no other holder: holding it here keeps its values as they were)."""

    def __init__(self, p: Any, dtype: np.dtype, source: tuple[str, Any], at: int) -> None:
        self.p, self.dtype, self.source, self.at = p, dtype, source, at
        self.kept: tuple[Any, ...] | None = None  # (the filter array, its transform, packed, the template)

    def template(self, f: np.ndarray) -> np.ndarray | None:
        kept = self.kept
        if kept is not None and kept[0] is f:
            return kept[3]
        from jitflow.kernels import winograd, winograd_jobs

        u = winograd._FILTERS.get("forward", self.p, f)
        if u is None:
            return None  # a filter the transforms cannot take: the step takes another method
        up = winograd_jobs._packed(u)
        t = winograd_jobs._template(self.p, up, self.dtype)
        if self.source[0] != "feed":  # (a fed array may change under the same object)
            self.kept = (f, u, up, t)
        return t


class _PlanTranslator(Translator):
    """`native_loop.Translator` for a whole top-level plan (see the module doc). The arguments it adds are
    named ``n_...``: the loops' translation names its own ``s<slot>``, ``e<line>``, ``k<slot>``, ``z<slot>``."""

    def __init__(self, mod: Module, plan: Plan, infos: dict[int, SlotInfo], env: dict[int, Any],
                 vals: list[Any], variables: dict[str, Any]) -> None:
        super().__init__(mod, plan, "", infos, env, f"return {BAIL}")
        self.vals = vals
        self.variables = variables
        self.vars: dict[str, str] = {}  # variable -> its argument
        self.var_slots: dict[int, str] = {}  # slot -> the variable whose array it holds
        self.alias_of: dict[int, int] = {}  # an Identity's slot -> the slot it copies (transitively)
        self.randoms: list[_Random] = []
        self.filters: list[_WinogradFilter] = []
        self.helped = False  # a step shares its work with the helpers
        self.blas_macs = 0  # the largest GEMM through OpenBLAS
        self.modules: dict[str, str] = {}  # a kernel module's source -> its inlined entry (`module_kernel`)
        self.prologue: list[str] = []  # the flat names of the arrays passed as they are (`given`)
        self.flat_of: dict[str, str] = {}  # such a flat name -> its argument

    def cluster_input(self, st: ClusterStep, slot: int, var: str | None, dt: Any) -> SlotInfo:
        if var is None:
            return super().cluster_input(st, slot, None, dt)
        v = self.vals_var(var)
        if v.dtype != dt:
            raise Unsupported(f"cluster {st.ops[0].name}: variable {var} of another dtype")
        return slot_info(v)

    def vals_var(self, var: str) -> np.ndarray:
        v = self.variables.get(var)
        if type(v) is not np.ndarray or not v.flags.c_contiguous:
            raise Unsupported(f"variable {var} holds no C-contiguous array")
        return v

    def var_name(self, var: str) -> str:
        name = self.vars.get(var)
        if name is None:
            name = self.vars[var] = self.given(f"n_v{len(self.vars)}", ("var", len(self.vars)), self.vals_var(var))
        return name

    def given(self, name: str, spec: tuple, value: np.ndarray) -> str:
        """An array each run passes as it is (`value`: this run's): the argument ``<name>_in`` of its own
        shape, read as the flat `name` (a reshape in Numba costs nothing, in Python ~0.5 us an array)."""
        # (typed here, not by `Module.arg`'s readonly flag: that marks a loop's captures, whose GEMMs are packed)
        arg = self.mod.arg(f"{name}_in", "runtime", spec, value.dtype)
        self.mod.types[arg] = f"types.Array(types.{value.dtype.name}, {value.ndim}, 'C', readonly=True)"
        self.prologue.append(f"{name} = {arg}.reshape({value.size})")
        self.flat_of[name] = arg
        return name

    def run(self) -> list[str]:
        for st in self.plan.steps:
            handler = _HANDLERS.get(type(st))
            if handler is None:
                raise Unsupported(f"step {st.kind} of {[op.name for op in st.ops]}")
            handler(self, st)
        return self.lines

    def var_read(self, st: VarReadStep) -> None:
        self.env[st.dst] = self.var_name(st.name)
        self.infos[st.dst] = slot_info(self.vals_var(st.name))
        self.var_slots[st.dst] = st.name

    def identity(self, st: IdentityStep) -> None:
        self.env[st.dst] = self.env.get(st.src)
        self.alias_of[st.dst] = self.alias_of.get(st.src, st.src)
        if st.src in self.var_slots:
            self.var_slots[st.dst] = self.var_slots[st.src]

    def reshape(self, st: ReshapeStep) -> None:
        if not isinstance(st.fallback, OpStep):
            raise Unsupported(f"Reshape {st.ops[0].name}")
        self.op(st.fallback)

    def window(self, st: WindowStep) -> None:
        try:
            if st.op.type == "Conv2D":
                self.conv(st)
                return
            x = self.array(st.in_slots[0])
            if len(x.shape) != 4 or x.dtype.name not in ("float32", "float64"):
                raise Unsupported(f"{st.op.type} {st.op.name} of {x.shape}")
            self._pool(st, st.op.type, st._pool_geom(x.shape), self.name(st.in_slots[0]), x.shape, x.dtype)
        except _NoFastPath as e:  # (shapes the step leaves to the interpreted ops)
            raise Unsupported(f"{st.op.type} {st.op.name}: the interpreted op runs") from e

    def op_step(self, st: OpStep) -> None:
        t = st.ops[0].type
        if t in ("VariableV2", "Shape", "RandomUniform"):
            self.state_op(st)
        elif t in ("ArgMax", "ArgMin"):
            self.arg_extreme(st)
        elif t == "PlaceholderWithDefault":  # (not fed: its default)
            self.infos[st.out] = self.array(st.in_slots[0])
            self.env[st.out] = self.name(st.in_slots[0])
        elif t in NATIVE_OPS:
            self.op(st)
        else:
            raise Unsupported(f"{t} ({st.ops[0].name}) runs interpreted")

    def arg_extreme(self, st: OpStep) -> None:
        """ArgMax / ArgMin along the op's axis (`_arg_extreme`)."""
        op = st.ops[0]
        x = self.array(st.in_slots[0])
        nd = len(x.shape)
        ax = op.attrs["axis"] % nd if nd else 0
        if nd == 0 or x.shape[ax] == 0:
            raise Unsupported(f"{op.type} {op.name} of shape {x.shape}")  # (the op's error: step by step)
        out_shape = x.shape[:ax] + x.shape[ax + 1:]
        self.infos[st.out] = SlotInfo("array", out_shape, np.dtype(op.attrs["output_type"].np))
        outer, inner = int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax + 1:]))
        self.lines.append(f"_arg_extreme({self.name(st.in_slots[0])}, {self.out(st.out)}, "
                          f"np.int64({outer}), np.int64({x.shape[ax]}), np.int64({inner}), {op.type == 'ArgMax'})")
        self.mod.fused.append(op.type)

    def softmax(self, st: SoftmaxStep) -> None:
        """Softmax / LogSoftmax by the step's own row kernel, inlined (one thread)."""
        from jitflow.codegen import rows

        x = self.array(st.si)
        if not x.shape or x.dtype != st.dtype or x.size == 0:
            raise Unsupported(f"{st.op.type} {st.op.name} of shape {x.shape}")
        k = x.shape[-1]
        src = rows.softmax_source(st.dtype.name, st.log)
        fn = self.module_kernel(src, rows.ENTRY)
        ext = self.mod.arg(f"n_rows{st.so}", "const", np.array([x.size // k, k], np.int64), readonly=True)
        self.infos[st.so] = SlotInfo("array", x.shape, st.dtype)
        self.lines.append(f"{fn}({self.name(st.si)}, {self.out(st.so)}, {ext}, err)")
        self.mod.fused.append(st.op.type)

    def module_kernel(self, source: str, entry: str) -> str:
        """The entry function of a kernel module's `source` (helpers and all) inlined into the generated module:
        its top-level names prefixed, its imports dropped (the generated module has them), its explicit
        signature too (typed at the call), one thread."""
        known = self.modules.get(source)
        if known is not None:
            return known
        prefix = f"_m{len(self.modules)}"
        tree = ast.parse(source)
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        drop = {ln for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                for ln in range(n.lineno, (n.end_lineno or n.lineno) + 1)}
        body = "\n".join(ln for i, ln in enumerate(source.splitlines(), 1) if i not in drop)
        if names:
            body = re.sub(r"(?<![.\w\"'])(" + "|".join(sorted(names)) + r")\b", prefix + r"\1", body)
        body = re.sub(r"@njit\(types\.\w+\([^)]*\),\s*", "@njit(", body)  # (typed at the call: its own types)
        self.mod.kernel_src.append(body.replace("parallel=True", "parallel=False"))
        self.modules[source] = prefix + entry
        return prefix + entry

    def constant(self, s: int, value: np.ndarray) -> None:
        """Slot `s` holds `value` in every run of these shapes."""
        self.infos[s] = slot_info(value)
        self.env[s] = self.mod.arg(f"n_k{s}", "const", value.reshape(-1), readonly=True)

    def state_op(self, st: OpStep) -> None:
        op = st.ops[0]
        if op.type == "VariableV2":
            self.env[st.out] = self.var_name(op.name)
            self.infos[st.out] = slot_info(self.vals_var(op.name))
            self.var_slots[st.out] = op.name
            return
        if op.type == "Shape":
            self.constant(st.out, np.array(self.array(st.in_slots[0]).shape, op.attrs["out_type"].np))
            return
        shape_name = self.env.get(st.in_slots[0])
        if not (isinstance(shape_name, str) and self.mod.args.get(shape_name, ("",))[0] == "const"):
            raise Unsupported(f"RandomUniform {op.name} of a shape computed in the run")
        out = self.vals[st.out]
        if type(out) is not np.ndarray or out.dtype != np.float32:
            raise Unsupported(f"RandomUniform {op.name}: not float32")
        self.infos[st.out] = slot_info(out)
        k = len(self.randoms)
        words = [self.mod.arg(f"n_r{k}_{i}", "runtime", ("random", k, i), np.uint64, ndim=0) for i in range(6)]
        self.randoms.append(_Random(op, out.size))
        uniform = self.module_kernel(philox._entry_source("uniform32"), "uniform32")  # (TF's numbers, `philox`)
        self.lines.append(f"{uniform}({', '.join(words)}, {self.out(st.out)})")
        self.mod.fused.append("RandomUniform")

    def matmul(self, st: MatMulStep, invariant: int | None) -> None:
        a, b = self.array(st.sa), self.array(st.sb)
        if invariant is not None or st.ta or st.tb or len(a.shape) != 2 or len(b.shape) != 2 or a.shape[0] != 1 \
                or a.shape[1] != b.shape[0] or a.dtype != st.dtype or b.dtype != st.dtype \
                or a.shape[1] * b.shape[1] < _GEMV_MACS or st.dtype.name not in ("float32", "float64"):
            if len(a.shape) == 2 and len(b.shape) == 2:  # (OpenBLAS's GEMM: `_call` decides its threads by this)
                self.blas_macs = max(self.blas_macs, a.shape[0] * a.shape[1] * (b.shape[0] if st.tb else b.shape[1]))
            super().matmul(st, invariant)
            return
        k, n = b.shape
        from jitflow.kernels import packed_gemm

        self.infos[st.out_slot] = SlotInfo("array", (1, n), st.dtype)
        c = self.out(st.out_slot)
        parts = self.mod.arg(f"n_p{st.out_slot}", "scratch", (packed_gemm.gemv_blocks(k) * n, st.dtype))
        ctrl = self.mod.arg("gemm_ctrl", "ctrl", None, np.int64)
        self.lines.append(f"_pg.gemv({self.name(st.sa)}, {self.name(st.sb)}, np.int64({n}), {c}, {parts}, "
                          f"np.int64({n}), np.int64({k}), {ctrl})")
        self.mod.fused.append("MatMul (row blocks)")
        self.helped = True

    def conv(self, st: WindowStep) -> None:
        """A Conv2D step with its fused epilogue, by the kernel the step takes for these shapes."""
        from jitflow.kernels import conv, pixel_conv, winograd, winograd_jobs
        from jitflow.kernels.packed_gemm import VECTOR_BITS

        sx, sf = st.in_slots
        x, f = self.array(sx), self.array(sf)
        dt = x.dtype
        if len(x.shape) != 4 or len(f.shape) != 4 or f.dtype != dt or dt.name not in ("float32", "float64"):
            raise Unsupported(f"Conv2D {st.op.name} of {x.shape}, {f.shape}")
        cp = st.conv_plans.get((x.shape, f.shape, dt)) or st._conv_plan(x.shape, f.shape, dt)
        n, h, w, c = x.shape
        kh, kw, _, o = f.shape
        bias = self.name(st.bias_slot) if st.bias_slot >= 0 else None
        if bias is not None and (self.array(st.bias_slot).shape != (o,) or self.array(st.bias_slot).dtype != dt):
            raise Unsupported(f"Conv2D {st.op.name}: a bias of another shape")
        how = conv.method(c, cp.cg, o=o, hw=(h, w))
        xn, fn = self.name(sx), self.name(sf)
        x4, k = f"{xn}.reshape({x.shape})", kh * kw * c
        pooled = st.pool_op is not None
        if how == "direct" and n == 1:
            geo, off = pixel_conv._geometry(cp.cg, c)
            xp_shape = pixel_conv._padded_shape(x.shape, cp.cg)
            y_shape = cp.pooled[1] if cp.pooled is not None else cp.shape
            y = self._conv_out(st, y_shape, dt, pooled and cp.pooled is None)
            xp = self.mod.arg(f"n_xp{st.out_slot}", "scratch", (int(np.prod(xp_shape)), dt))
            full = self.mod.arg(f"n_full{st.out_slot}", "const", np.empty((0, 0, 0, 0), dt), ndim=4)
            f2 = f"{fn}.reshape(({k}, {o}))"
            self.lines.append(
                f"_pc._images({x4}, {f2}, {bias or f2 + '[0]'}, {bias is not None}, {st.relu}, "
                f"{self.mod.arg(f'n_geo{st.out_slot}', 'const', geo, readonly=True)}, "
                f"{self.mod.arg(f'n_off{st.out_slot}', 'const', off, readonly=True)}, {VECTOR_BITS == 512}, "
                f"np.int64({cp.pooled[0] if cp.pooled is not None else pixel_conv.NO_POOL}), "
                f"{xp}.reshape({xp_shape}), {y}.reshape({y_shape}), {full}, np.int64(0), np.int64(1))")
            self.mod.fused.append("Conv2D (direct)")
            if pooled and cp.pooled is None:
                self._fused_pool(st, y, cp.shape, dt)
            return
        if how == "winograd" and cp.one_chunk:
            from jitflow.kernels import packed_helpers

            source = self._source(sf)
            p = winograd._typed(kh, kw, cp.g.oh, cp.g.ow, dt)
            group = max(1, p.th // winograd_jobs.BLOCKS_PER_IMAGE)
            blocks = n * -(-p.th // group)
            per_block = winograd_jobs.block_scratch(p, c, o, group)
            wf = _WinogradFilter(p, dt, source, len(self.filters))
            self.filters.append(wf)
            tpl = self.mod.arg(f"n_t{wf.at}", "runtime", ("filter", wf.at), np.int64, readonly=True)
            y = self._conv_out(st, cp.shape, dt, pooled)
            flat = self.mod.arg(f"n_wino{st.out_slot}", "scratch", (blocks * per_block, dt))
            zero = self.mod.arg(f"n_zero{st.out_slot}", "const", np.zeros(1, dt), readonly=True)
            ctrl = self.mod.arg("gemm_ctrl", "ctrl", None, np.int64)
            limit = float(np.finfo(dt).max / 1e6)
            self.lines.append(f"if _wg._out_of_range({xn}, {limit!r}) != 0: {self.bail}")
            # (the block function's address is an argument: in the source, it would key a new cache entry per process)
            fn_at = self.mod.arg("n_wblock", "const", np.array([packed_helpers.block_function(winograd_jobs._block)],
                                                              np.int64), readonly=True)
            self.lines.append(
                f"_wj._post({fn_at}[0], {tpl}, {x4}, "
                f"{y}.reshape({cp.shape}), {bias or zero}, {flat}, np.int64({per_block}), "
                f"np.int64({int(bias is not None)}), np.int64({int(st.relu)}), np.int64({cp.g.ph[0]}), "
                f"np.int64({cp.g.pw[0]}), np.int64({blocks}), {ctrl})")
            self.mod.fused.append("Conv2D (winograd)")
            self.helped = True
            if pooled:
                self._fused_pool(st, y, cp.shape, dt)
            return
        raise Unsupported(f"Conv2D {st.op.name} by {how} for a batch of {n}")

    def _source(self, s: int) -> tuple[str, Any]:
        """Where a run gets slot `s`'s value before the call: a variable, a feed or a constant (a frozen graph's
        filter)."""
        if s in self.var_slots:
            return "var", self.var_slots[s]
        if s in self.plan.feed_slots:
            return "feed", self.plan.feed_slots.index(s)
        s = self.alias_of.get(s, s)
        const = self.plan.template[s] if self.plan.template is not None else None
        if type(const) is np.ndarray:
            return "const", const
        raise Unsupported(f"a Winograd conv's filter computed in the run (slot {s})")

    def _conv_out(self, st: WindowStep, shape: tuple[int, ...], dt: np.dtype, pooled_after: bool) -> str:
        """The flat buffer a conv writes: its own when a pool follows, else the step's output slot's."""
        if pooled_after:
            return self.mod.arg(f"n_conv{st.out_slot}", "scratch", (int(np.prod(shape)), dt))
        self.infos[st.out_slot] = SlotInfo("array", tuple(shape), dt)
        return self.out(st.out_slot)

    def _fused_pool(self, st: WindowStep, y: str, shape: tuple[int, ...], dt: np.dtype) -> None:
        """A conv step's fused pool of the conv's output `y` (NHWC `shape`) into the step's output slot."""
        assert st.pool_op is not None
        self._pool(st, st.pool_op.type, st._pool_geometry(shape), y, shape, dt)

    def _pool(self, st: WindowStep, op_type: str, g: Any, y: str, shape: tuple[int, ...], dt: np.dtype) -> None:
        """`op_type` (MaxPool or AvgPool) of geometry `g` over `y` (NHWC `shape`) into the step's output slot."""
        if g.oh <= 0 or g.ow <= 0:
            raise Unsupported(f"{st.op.name}: an empty pool")
        out_shape = (shape[0], g.oh, g.ow, shape[3])
        self.infos[st.out_slot] = SlotInfo("array", out_shape, dt)
        out = self.out(st.out_slot)
        from jitflow.kernels import pool

        kind = "max" if op_type == "MaxPool" else "avg"
        rows = shape[0] * g.oh
        ys, outs = f"{y}.reshape({shape})", f"{out}.reshape({out_shape})"
        if pool.tiles_2x2(shape, g.kh, g.kw, g.sh, g.sw, g.ph[0], g.pw[0], out_shape):
            self.lines.append(f"_pool._{kind}_pool_2x2_rows({ys}, {outs}, np.int64(0), np.int64({rows}))")
        else:
            self.lines.append(f"_pool._{kind}_pool_rows({ys}, np.int64({g.kh}), np.int64({g.kw}), np.int64({g.sh}), "
                              f"np.int64({g.sw}), np.int64({g.ph[0]}), np.int64({g.pw[0]}), {outs}, np.int64(0), "
                              f"np.int64({rows}))")
        self.mod.fused.append(op_type)


# How the translation takes each kind of step.
_HANDLERS: dict[type, Any] = {
    VarReadStep: _PlanTranslator.var_read, IdentityStep: _PlanTranslator.identity,
    ShapeStep: lambda tr, st: tr.constant(st.dst, np.array(tr.array(st.src).shape, st.dtype)),
    ReshapeStep: _PlanTranslator.reshape, ClusterStep: _PlanTranslator.cluster,
    MatMulStep: lambda tr, st: tr.matmul(st, None),
    InvariantTransposeMatMul: lambda tr, st: tr.matmul(st.inner, st.slot),
    SplitStep: _PlanTranslator.split, ConcatStep: _PlanTranslator.concat, WindowStep: _PlanTranslator.window,
    OpStep: _PlanTranslator.op_step, SoftmaxStep: _PlanTranslator.softmax,
}


class NativePlan:
    """A plan's steps as one compiled function for one tuple of feed shapes (see the module doc)."""

    def __init__(self, plan: Plan, ctx: Any, vals: list[Any]) -> None:
        infos = {s: slot_info(v) for s, v in enumerate(vals) if s != ARENA_SLOT and v is not None}
        env: dict[int, Any] = {}
        mod = Module()
        tr = _PlanTranslator(mod, plan, infos, env, vals, ctx.variables)
        self.feeds: list[tuple[int, np.dtype]] = []
        for i, s in enumerate(plan.feed_slots):
            v = vals[s]
            if type(v) is not np.ndarray:
                raise Unsupported(f"feed {i} is not an array")
            env[s] = tr.given(f"n_f{i}", ("feed", i), v if v.flags.c_contiguous else np.ascontiguousarray(v))
            self.feeds.append((i, v.dtype))
        steps = tr.run()
        lines = tr.prologue + steps  # (the flat names of the feeds and of the variables the steps read)
        self.names = list(mod.args)
        self.kinds = [mod.args[n] for n in self.names]
        # per fetch: None (an op), or (its position in the arguments, its shape and size, the argument's kind)
        self.outputs: list[tuple[int, tuple[int, ...], int, str] | None] = []
        for s in plan.fetch_slots:
            name = env.get(s)
            name = tr.flat_of.get(name, name) if isinstance(name, str) else None
            if s < 0:
                self.outputs.append(None)
            elif name is not None and name in mod.args:
                info = tr.array(s)
                self.outputs.append((self.names.index(name) + 1, info.shape, info.size, mod.args[name][0]))
            else:
                raise Unsupported(f"fetched slot {s} is no array of the compiled call")
        self.vars = [(name, ctx.variables[name].shape, ctx.variables[name].dtype) for name in tr.vars]
        self.randoms = tr.randoms
        self.filters = tr.filters
        self.helped = tr.helped
        # OpenBLAS threads a GEMM from ~2^18 multiply-adds: smaller ones need no one-thread setting per run
        self.blas_local = tr.blas_macs >= 1 << 16
        src = "\n".join(_HEAD) + "\n" + native_blas.PREAMBLE + HELPERS + _PLAN_HELPERS + "\n\n" + \
            "\n\n\n".join(mod.kernel_src)
        types = ", ".join(["types.Array(types.int64, 1, 'C')"] + [mod.types[n] for n in self.names])
        body = "\n".join("    " + ln for ln in [*lines, "return 0"])
        self.source = (f"{src}\n\n\n_SIG = types.int64({types})\n\n\n@njit(_SIG, cache=True, nogil=True, "
                       f"error_model='numpy')\ndef plan(err, {', '.join(self.names)}):\n{body}\n")
        if "_gemm_f" in body and not native_blas.ensure_symbols():
            raise Unsupported("NumPy's OpenBLAS (numpy.libs) is not available to call GEMM from compiled code")
        from jitflow.codegen.cache import KernelCompileError, get_kernel

        try:
            self.fn, _ = get_kernel(self.source, "plan", {"native_plan": NATIVE_PLAN_VERSION},
                                    {"ops": [op.type for op in plan.ops][:20]})
        except KernelCompileError as e:
            raise Unsupported(f"the compiled plan did not compile: {e}") from e
        self.fused = list(mod.fused)
        self.pool: list[list[Any]] = []
        # (argument position, (what, which[, word])) of the arguments each run gives: a feed, a variable (in
        # `vars` order), a random op's Philox word, a Winograd conv's job template
        self.run_positions = [(i + 1, spec) for i, (kind, spec) in enumerate(self.kinds) if kind == "runtime"]
        # the helpers' control array, taken at each call (a forked child makes its own)
        self.ctrl_positions = [i + 1 for i, (kind, _) in enumerate(self.kinds) if kind == "ctrl"]

    def _args(self) -> list[Any]:
        """A fresh argument list: the error flag, constants, new scratch (the others are set per run)."""
        out: list[Any] = [np.zeros(1, np.int64)]
        for kind, spec in self.kinds:
            out.append(np.empty(max(spec[0], 1), spec[1]) if kind == "scratch" else spec if kind == "const" else None)
        return out

    def run(self, ctx: Any, feed_values: list[Any]) -> list[Any] | None:
        """The fetched values, or None when this run must go step by step (see the module doc)."""
        var_values = self._inputs(ctx.variables, feed_values)
        if var_values is None:
            return None
        try:
            args = self.pool.pop()
        except IndexError:
            args = self._args()
        reserved: list[tuple[Any, int, int]] = []
        try:
            words = []
            for r in self.randoms:
                state = philox_for(ctx, r.op)
                start = state.reserve(r.reserve)
                reserved.append((state, start, r.reserve))
                words.append(philox._key_counter(state.key, start))
            templates = []
            for wf in self.filters:
                kind, where = wf.source
                t = wf.template(ctx.variables[where] if kind == "var" else feed_values[where] if kind == "feed"
                                else where)
                if t is None:
                    return self._bail(reserved)
                templates.append(t)
            given = {"feed": feed_values, "var": var_values, "random": words, "filter": templates}
            for pos, (kind, i, *word) in self.run_positions:
                args[pos] = given[kind][i][word[0]] if word else given[kind][i]
            try:
                status = self._call(args)
            except Exception as e:  # the function rejects what it was not made for: never the user's run
                self._bail(reserved)
                raise Broken(f"{type(e).__name__}: {e}") from e
            if status != 0:
                return self._bail(reserved)
            return [None if spec is None else self._result(args, *spec) for spec in self.outputs]
        finally:
            for pos, _ in self.run_positions:  # (no feed or variable kept alive by a pooled list)
                args[pos] = None
            self.pool.append(args)

    def _inputs(self, variables: dict[str, Any], feed_values: list[Any]) -> list[np.ndarray] | None:
        """The variables' arrays, when they have the shapes and dtypes of the compiled call and the feeds its
        dtypes (`run` found the call by the feeds' shapes; a feed that is no C-contiguous array is copied into
        one in `feed_values`)."""
        for i, dt in self.feeds:
            v = feed_values[i]
            if type(v) is not np.ndarray or v.dtype != dt:
                return None
            if not v.flags.c_contiguous:
                feed_values[i] = np.ascontiguousarray(v)
        out = []
        for name, shape, dt in self.vars:
            v = variables.get(name)
            if type(v) is not np.ndarray or v.shape != shape or v.dtype != dt or not v.flags.c_contiguous:
                return None
            out.append(v)
        return out

    @staticmethod
    def _result(args: list[Any], pos: int, shape: tuple[int, ...], size: int, kind: str) -> np.ndarray:
        """A fetched value: a copy of a scratch buffer (the next run writes it again), or a feed's, a variable's
        or a constant's array (reshaped where the fetch is a reshape of it)."""
        a = args[pos]
        if kind == "scratch":
            return a[:size].reshape(shape).copy()
        return a if a.shape == shape else a.reshape(shape)

    def _call(self, args: list[Any]) -> int:
        if not self.helped:  # (only steps the helpers share take their control array)
            return int(self.fn(*args))
        from jitflow.kernels import packed_helpers

        for pos in self.ctrl_positions:
            args[pos] = packed_helpers.HELPERS.ctrl
        with packed_helpers.serving(self.blas_local):
            return int(self.fn(*args))

    @staticmethod
    def _bail(reserved: list[tuple[Any, int, int]]) -> None:
        """Gives the run's random counters back (the step-by-step run reserves them again)."""
        for state, start, n in reversed(reserved):
            state.give_back(start, n)
        return None
