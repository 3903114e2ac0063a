"""One iteration of a loop sub-plan as Numba source: the translation behind compiled loops.

A compiled loop (`ops/while_native.py`) runs all iterations of a `while_loop` inside one generated Numba
function. Its body is the translation of the loop's lowered sub-plans (cond, body, or the gradient
body), step by step, for the value shapes one example iteration produced:

* a fused cluster calls its kernel (the cluster's own generated source, inlined into the module);
* a MatMul calls OpenBLAS's GEMM directly (`compiler/native_blas.py`);
* Split / SplitV / ConcatV2 with a constant axis copy blocks; Reshape, ExpandDims, Squeeze, Identity
  and StopGradient rename a flat buffer; Select picks elements (or rows, for a vector condition);
* TensorArray reads and writes index a preallocated ``[size, element]`` buffer with a state per row
  (0 unwritten, 1 written, 2 read and cleared); their gradients read and sum rows of such buffers.

Every value is a flat C-contiguous array (a scalar has one element). Whatever the run-time checks of
the replayed plan would reject (an index out of range, a row read twice, a kernel's own check) makes the
generated code stop with status `BAIL`: the caller then runs the whole loop again, replayed, which gives
the interpreter's result or error (nothing a compiled loop does is visible before it finishes).
`why_not(plan)` gives the reason a plan cannot be translated (None when it can), without running it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jitflow.codegen import cpu
from jitflow.compiler.backend import backend
from jitflow.compiler.loop_invariants import InvariantTransposeMatMul
from jitflow.compiler.plan import Plan, Step
from jitflow.compiler.slice_steps import ConcatStep, SplitStep
from jitflow.compiler.step import CPU, IdentityStep, OpStep, ReshapeStep, ShapeStep
from jitflow.compiler.steps import ClusterStep, MatMulStep
from jitflow.ir.layout import LayoutError, compute_layout
from jitflow.ops.tensor_array_ops import TAGrad, TAValue

NATIVE_VERSION = 4
DONE, CHUNK, BAIL = 1, 0, 2  # statuses the generated loop leaves in st[0]
ALIAS_OPS = frozenset({"Reshape", "ExpandDims", "Squeeze", "Identity", "StopGradient"})
TA_OPS = frozenset({"TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayGradRead", "TensorArrayGradFrom"})
NATIVE_OPS = ALIAS_OPS | TA_OPS | {"Select"}

# Helpers every generated module defines (after numba_blas.PREAMBLE).
HELPERS = f'''
@njit
def _bail(st, it):
    st[0] = {BAIL}
    return it


@njit
def _copy_part(dst, src, outer, dtot, doff, stot, soff, inner):
    for r in range(outer):
        dv = dst[r * dtot + doff:r * dtot + doff + inner]  # row views: vectorized, no wraparound checks
        sv = src[r * stot + soff:r * stot + soff + inner]
        for j in range(inner):
            dv[j] = sv[j]


@njit
def _copy(dst, src):  # an explicit loop: Numba's slice assignment is ~6x slower on 4,000 floats
    if dst.size != src.size:
        raise ValueError("compiled loop: copy between buffers of different sizes")
    for j in range(src.size):
        dst[j] = src[j]


@njit
def _add_to(dst, src):
    if dst.size != src.size:
        raise ValueError("compiled loop: sum of buffers of different sizes")
    for j in range(src.size):
        dst[j] += src[j]


@njit
def _zero(dst):
    for j in range(dst.size):
        dst[j] = 0


@njit
def _packed_gemm(a, bp, c, m, n, k, lda, ctrl):
    packed_gemm.gemm(a, bp, c, m, n, k, lda, ctrl)


@njit
def _select(c, x, y, out):
    n = out.size
    inner = n // c.size
    for i in range(n):
        out[i] = x[i] if c[i // inner] else y[i]
'''
BAIL_STMT = "return _bail(st, it)"  # the statement that stops a generated loop with status BAIL


def _ints(*values: int) -> str:
    """Integer arguments as int64 values: a literal would compile the callee once per distinct value."""
    return ", ".join(f"np.int64({v})" for v in values)


class Unsupported(Exception):
    """A step the translation cannot compile (the message says which and why)."""


@dataclass(frozen=True)
class SlotInfo:
    """What one example iteration left in a slot: an array (shape, dtype), a TensorArray or its gradient."""

    kind: str  # "array", "ta", "tagrad", "none"
    shape: tuple[int, ...] = ()
    dtype: Any = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


def slot_info(v: Any) -> SlotInfo:
    """The `SlotInfo` of one run-time value."""
    if type(v) is np.ndarray or isinstance(v, np.generic):
        return SlotInfo("array", tuple(np.shape(v)), np.dtype(v.dtype))
    if isinstance(v, TAValue):
        return SlotInfo("ta", tuple(v.element_shape or ()), np.dtype(v.np_dtype))
    if isinstance(v, TAGrad):
        return SlotInfo("tagrad")
    return SlotInfo("none")


@dataclass
class TARef:
    """A TensorArray (or its gradient) as the generated code sees it: the names of its buffers."""

    kind: str  # "ta": a forward array; "tagrad": an incoming gradient; "from": a TensorArrayGradFrom result
    buf: str = ""  # [size, element] rows
    mask: str = ""  # row states (forward arrays)
    size: str = ""  # its number of rows (an int argument)
    clear: bool = False  # reads clear the row (clear_after_read)
    elem: tuple[int, ...] | None = None  # element shape, set by the first write or read
    dtype: Any = None
    index: str = ""  # ("from") the indices and values summed into a capture's gradient
    value: str = ""
    written: bool = False  # the loop writes rows (their shape must fit the array's element shape)


@dataclass
class Module:
    """The generated module being built: arguments (name -> how the caller gets them), kernels, lines."""

    args: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (kind, spec)
    kernels: dict[str, str] = field(default_factory=dict)  # kernel source -> its function name
    kernel_src: list[str] = field(default_factory=list)
    fused: list[str] = field(default_factory=list)  # what the loop compiles, for explain
    tas: dict[str, TARef] = field(default_factory=dict)
    readonly: set[str] = field(default_factory=set)  # read-only runtime arguments: the loop's captures

    types: dict[str, str] = field(default_factory=dict)  # name -> its Numba type (the explicit signature)

    def arg(self, name: str, kind: str, spec: Any, dtype: Any = None, ndim: int = 1, readonly: bool = False) -> str:
        """Declares an argument: "scratch" (size, dtype), "const" (array), "transpose" (of an argument),
        "packed" (an argument packed as a GEMM's right operand: (its name, its shape, transposed)), "ctrl"
        (the packed GEMMs' helper control array) or "runtime" (given by the caller); `dtype` (default: the
        const's or scratch's), `ndim`: its type."""
        if name not in self.args:
            self.args[name] = (kind, spec)
            if dtype is None:
                dtype = spec.dtype if kind == "const" else spec[1]
            self.types[name] = nb_type(dtype, ndim, readonly)
            if readonly and kind == "runtime":
                self.readonly.add(name)
        return name

    def scratch(self, name: str, info: SlotInfo) -> str:
        return self.arg(name, "scratch", (info.size, info.dtype))

    def kernel(self, source: str) -> str:
        """The function name of a cluster kernel inlined into the module."""
        name = self.kernels.get(source)
        if name is None:
            name = self.kernels[source] = f"_k{len(self.kernels)}"
            self.kernel_src.append(inline_kernel(source, name))
        return name


def nb_type(dtype: Any, ndim: int, readonly: bool = False) -> str:
    """The Numba type of an argument: a C-contiguous array of `ndim` dims, or a scalar (`ndim` 0)."""
    name = "boolean" if np.dtype(dtype) == np.bool_ else np.dtype(dtype).name
    if ndim == 0:
        return f"types.{name}"
    return f"types.Array(types.{name}, {ndim}, 'C'{', readonly=True' if readonly else ''})"



def inline_kernel(source: str, name: str) -> str:
    """A cluster kernel's module source (`codegen/cpu.py`) as a function `name` typed at its call."""
    lines = source.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith("@njit(_SIG")), None)
    if at is None or not lines[at + 1].startswith(f"def {cpu.ENTRY}("):
        raise Unsupported("a cluster kernel of unexpected form")
    head = lines[at].replace("@njit(_SIG, ", "@njit(").replace("parallel=True", "parallel=False")
    return "\n".join([head, lines[at + 1].replace(f"def {cpu.ENTRY}(", f"def {name}(", 1), *lines[at + 2:]])


def _interpreted(st: Step) -> Step:
    """A light step that stands in for an interpreted one (a constant-shape Reshape, a Shape) as that step:
    the translation handles the op itself."""
    return st.fallback if isinstance(st, (ReshapeStep, ShapeStep)) else st


def why_not(plan: Plan) -> str | None:
    """Why the steps of `plan` cannot run in a compiled loop (None: they can, shapes permitting)."""
    for st in plan.steps:
        st = _interpreted(st)
        if isinstance(st, ClusterStep):
            if st.backend != CPU or any(v is not None for v in st.var_names) or any(v is not None for v in st.stores):
                return f"cluster {st.ops[0].name} reads or assigns a variable, or does not run on the CPU"
        elif isinstance(st, (MatMulStep, InvariantTransposeMatMul, SplitStep, ConcatStep, IdentityStep)):
            continue
        elif isinstance(st, OpStep) and st.ops[0].type in NATIVE_OPS:
            continue
        else:
            op = st.ops[0] if st.ops else None
            what = f"{op.type} ({op.name})" if op is not None else st.kind
            return f"{what} runs as an interpreted {st.kind} step"
    return None


class Translator:
    """Emits one iteration of a plan: `env` maps slots to the names (or TARefs) holding their values."""

    def __init__(self, mod: Module, plan: Plan, prefix: str, infos: dict[int, SlotInfo],
                 env: dict[int, Any], bail: str) -> None:
        self.mod, self.plan, self.prefix, self.infos, self.env, self.bail = mod, plan, prefix, infos, env, bail
        self.lines: list[str] = []
        for s, v in enumerate(plan.template or []):  # constants the compiler folded into the plan
            if v is not None and s not in env and s in infos:
                env[s] = mod.arg(f"{prefix}k{s}", "const", np.array(v).reshape(-1))

    def name(self, s: int) -> str:
        v = self.env.get(s)
        if not isinstance(v, str):
            raise Unsupported(f"slot {s} holds no array the compiled loop knows")
        return v

    def out(self, s: int) -> str:
        info = self.infos.get(s)
        if info is None or info.kind != "array":
            raise Unsupported(f"slot {s} is not an array")
        name = self.env[s] = self.mod.scratch(f"{self.prefix}s{s}", info)
        return name

    def array(self, s: int) -> SlotInfo:
        info = self.infos.get(s)
        if info is None or info.kind != "array":
            raise Unsupported(f"slot {s} is not an array")
        return info

    def run(self) -> list[str]:
        for st in map(_interpreted, self.plan.steps):
            if isinstance(st, ClusterStep):
                self.cluster(st)
            elif isinstance(st, MatMulStep):
                self.matmul(st, None)
            elif isinstance(st, InvariantTransposeMatMul):
                self.matmul(st.inner, st.slot)
            elif isinstance(st, SplitStep):
                self.split(st)
            elif isinstance(st, ConcatStep):
                self.concat(st)
            elif isinstance(st, IdentityStep):
                self.env[st.dst] = self.env.get(st.src)
            elif isinstance(st, OpStep) and st.ops[0].type in NATIVE_OPS:
                self.op(st)
            else:
                raise Unsupported(f"step {st.kind} of {[op.name for op in st.ops]}")
        return self.lines

    # -- steps ---------------------------------------------------------------------------------------
    def cluster(self, st: ClusterStep) -> None:
        shapes = [self.cluster_input(st, slot, var, dt).shape for slot, var, dt in st.in_spec]
        try:
            space, axes, out_shapes = st.output_shapes(tuple(shapes))
            layout, exts = compute_layout(list(shapes), space, axes)
        except LayoutError as e:
            raise Unsupported(f"cluster {st.ops[0].name}: {e}") from e
        fn = self.mod.kernel(backend(CPU).render(st.c, layout, False))
        k = len(self.lines)
        ext = self.mod.arg(f"{self.prefix}e{k}", "const", np.array(exts, np.int64))
        ins = [self.name(s) if var is None else self.var_name(var) for s, var, _ in st.in_spec]
        outs = []
        for j, s in enumerate(st.out_slots):
            if s < 0:
                raise Unsupported(f"cluster {st.ops[0].name} stores a variable")
            info = SlotInfo("array", tuple(out_shapes[j]), st.out_dtypes[j])
            self.infos[s] = info
            outs.append(self.mod.scratch(f"{self.prefix}s{s}", info))
            self.env[s] = outs[-1]
        if st.has_checks:
            self.lines.append("err[0] = 0")
        self.lines.append(f"{fn}({', '.join(ins + outs)}, {ext}, err)")
        if st.has_checks:
            self.lines.append(f"if err[0] != 0: {self.bail}")
        self.mod.fused.append("+".join(op.type for op in st.ops))

    def cluster_input(self, st: ClusterStep, slot: int, var: str | None, dt: Any) -> SlotInfo:
        """What a cluster's input holds (a loop's clusters read no variables)."""
        info = self.array(slot) if var is None else None
        if info is None or info.dtype != dt:
            raise Unsupported(f"cluster {st.ops[0].name}: a variable or another dtype")
        return info

    def var_name(self, var: str) -> str:
        """The argument holding variable `var`'s value (none in a loop: `cluster_input` rejects them)."""
        raise Unsupported(f"variable {var}")

    def matmul(self, st: MatMulStep, invariant: int | None) -> None:
        a, b = self.array(st.sa), self.array(st.sb)
        if len(a.shape) != 2 or len(b.shape) != 2 or a.dtype != st.dtype or b.dtype != st.dtype \
                or st.dtype.name not in ("float32", "float64"):
            raise Unsupported(f"MatMul {st.op.name} of {a.shape}, {b.shape}")
        an, bn, ta, tb = self.name(st.sa), self.name(st.sb), st.ta, st.tb
        lda, ldb = a.shape[1], b.shape[1]
        m, k = (a.shape[1], a.shape[0]) if ta else a.shape
        k2, n = (b.shape[1], b.shape[0]) if tb else b.shape
        if k != k2:
            raise Unsupported(f"MatMul {st.op.name}: sizes do not match")
        packed = self._captured(bn) and (not ta or (invariant is not None and invariant == st.sa))
        if packed:  # the right operand is the same every iteration: packed once per run (kernels/packed_gemm)
            bn = self.mod.arg(f"{bn}_P{'T' if tb else ''}", "packed", (bn, b.shape, tb), b.dtype)
        elif invariant is not None and invariant == st.sb and tb:  # a loop-invariant transpose, copied once
            bn, tb, ldb = self.mod.arg(f"{bn}_T", "transpose", (bn, b.shape), b.dtype), False, b.shape[0]
        if invariant is not None and invariant == st.sa and ta:
            an, ta, lda = self.mod.arg(f"{an}_T", "transpose", (an, a.shape), a.dtype), False, a.shape[0]
        info = SlotInfo("array", (m, n), st.dtype)
        self.infos[st.out_slot] = info
        c = self.out(st.out_slot)
        if packed:
            ctrl = self.mod.arg("gemm_ctrl", "ctrl", None, np.int64)
            self.lines.append(f"_packed_gemm({an}, {bn}, {c}, {_ints(m, n, k, lda)}, {ctrl})")
            self.mod.fused.append("MatMul")
            return
        fn = "_gemm_f32" if st.dtype.name == "float32" else "_gemm_f64"
        self.lines.append(f"{fn}({an}, {bn}, {c}, {ta}, {tb}, {_ints(m, n, k, lda, ldb)})")
        self.mod.fused.append("MatMul")

    def _captured(self, name: str) -> bool:
        """True when `name` is a captured array: the same in every iteration of one run."""
        return name in self.mod.readonly

    def split(self, st: SplitStep) -> None:
        x = self.array(st.sx)
        nd = len(x.shape)
        if not -nd <= st.axis < nd or x.shape[st.axis] != st.total or x.dtype != st.dtype:
            raise Unsupported(f"Split {st.op.name} of shape {x.shape}")
        ax = st.axis % nd
        outer, rest = int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax + 1:]))
        tot = x.shape[ax] * rest
        xn = self.name(st.sx)
        for s, cut in zip(st.out_slots, st.cuts):
            inner = (cut.stop - cut.start) * rest
            shape = (*x.shape[:ax], cut.stop - cut.start, *x.shape[ax + 1:])
            self.infos[s] = SlotInfo("array", shape, x.dtype)
            o = self.out(s)
            self.lines.append(f"_copy_part({o}, {xn}, {_ints(outer, inner, 0, tot, cut.start * rest, inner)})")

    def concat(self, st: ConcatStep) -> None:
        xs = [self.array(s) for s in st.in_slots]
        nd = len(xs[0].shape)
        if nd == 0 or not -nd <= st.axis < nd or any(x.dtype != st.dtype or len(x.shape) != nd for x in xs):
            raise Unsupported(f"ConcatV2 {st.op.name}")
        ax = st.axis % nd
        base = xs[0].shape
        if any(x.shape[:ax] != base[:ax] or x.shape[ax + 1:] != base[ax + 1:] for x in xs):
            raise Unsupported(f"ConcatV2 {st.op.name}: shapes do not match")
        outer, rest = int(np.prod(base[:ax])), int(np.prod(base[ax + 1:]))
        total = sum(x.shape[ax] for x in xs)
        self.infos[st.so] = SlotInfo("array", (*base[:ax], total, *base[ax + 1:]), st.dtype)
        o = self.out(st.so)
        off = 0
        for s, x in zip(st.in_slots, xs):
            inner = x.shape[ax] * rest
            self.lines.append(f"_copy_part({o}, {self.name(s)}, {_ints(outer, total * rest, off, inner, 0, inner)})")
            off += inner

    def op(self, st: OpStep) -> None:
        op = st.ops[0]
        t = op.type
        ins = st.in_slots
        if t in ALIAS_OPS:
            src = self.array(ins[0])
            dst = self.array(st.out)
            if src.size != dst.size or src.dtype != dst.dtype:
                raise Unsupported(f"{t} {op.name}")
            self.env[st.out] = self.name(ins[0])
        elif t == "Select":
            self.select(st)
        elif t == "TensorArrayReadV3":
            self.ta_read(st)
        elif t == "TensorArrayWriteV3":
            self.ta_write(st)
        elif t == "TensorArrayGradRead":
            self.ta_grad_read(st)
        else:
            self.ta_grad_from(st)

    def select(self, st: OpStep) -> None:
        c, x, y = (self.array(s) for s in st.in_slots)
        ok = x.shape == y.shape and x.dtype == y.dtype and c.dtype == np.bool_ and (
            c.shape == x.shape or c.shape == () or (len(c.shape) == 1 and x.shape[:1] == c.shape))
        if not ok or x.size == 0:
            raise Unsupported(f"Select {st.ops[0].name} of {c.shape}, {x.shape}, {y.shape}")
        self.infos[st.out] = SlotInfo("array", x.shape, x.dtype)
        cn, xn, yn = (self.name(s) for s in st.in_slots)
        self.lines.append(f"_select({cn}, {xn}, {yn}, {self.out(st.out)})")

    def _ta(self, s: int, kind: str) -> TARef:
        ref = self.env.get(s)
        if not isinstance(ref, TARef) or ref.kind != kind:
            raise Unsupported(f"slot {s} is not a TensorArray this loop holds")
        return ref

    def _index(self, s: int) -> str:
        info = self.array(s)
        if info.size != 1 or info.dtype.kind not in "iu":
            raise Unsupported("a TensorArray index that is not an integer scalar")
        self.lines.append(f"_i = np.int64({self.name(s)}[0])")
        return "_i"

    def ta_read(self, st: OpStep) -> None:
        ref = self._ta(st.in_slots[0], "ta")
        out = self.array(st.out)
        if ref.elem is not None and (ref.elem != out.shape):
            raise Unsupported("TensorArray elements of several shapes")
        ref.elem, ref.dtype = out.shape, out.dtype
        i = self._index(st.in_slots[1])
        self.lines.append(f"if {i} < 0 or {i} >= {ref.size} or {ref.mask}[{i}] != 1: {self.bail}")
        if ref.clear:
            self.lines.append(f"{ref.mask}[{i}] = 2")
        name = f"{self.prefix}s{st.out}"
        self.lines.append(f"{name} = {ref.buf}[{i}]")
        self.env[st.out] = name

    def ta_write(self, st: OpStep) -> None:
        ref = self._ta(st.in_slots[0], "ta")
        v = self.array(st.in_slots[2])
        if v.dtype != ref.dtype or (ref.elem is not None and ref.elem != v.shape):
            raise Unsupported("a TensorArray write of another dtype or shape")
        ref.elem, ref.written = v.shape, True
        i = self._index(st.in_slots[1])
        self.lines.append(f"if {i} < 0 or {i} >= {ref.size} or {ref.mask}[{i}] != 0: {self.bail}")
        self.lines.append(f"_copy({ref.buf}[{i}], {self.name(st.in_slots[2])})")
        self.lines.append(f"{ref.mask}[{i}] = 1")
        self.env[st.out] = ref

    def ta_grad_read(self, st: OpStep) -> None:
        ref = self._ta(st.in_slots[0], "tagrad")
        like = self.array(st.in_slots[2])
        self.infos[st.out] = like
        ref.elem, ref.dtype = like.shape, like.dtype
        zero = self.mod.arg(f"{self.prefix}z{st.out}", "const", np.zeros(like.size, like.dtype))
        i = self._index(st.in_slots[1])
        name = f"{self.prefix}s{st.out}"
        self.lines.append(f"{name} = {ref.buf}[{i}] if {i} >= 0 and {i} < {ref.size} else {zero}")
        self.env[st.out] = name

    def ta_grad_from(self, st: OpStep) -> None:
        idx, val = self.array(st.in_slots[0]), self.array(st.in_slots[1])
        if len(idx.shape) != 1 or idx.dtype.kind not in "iu" or not val.shape or val.shape[0] != idx.shape[0]:
            raise Unsupported("TensorArrayGradFrom of unexpected shapes")
        self.env[st.out] = TARef("from", index=self.name(st.in_slots[0]), value=self.name(st.in_slots[1]),
                                 elem=val.shape[1:], dtype=val.dtype)

