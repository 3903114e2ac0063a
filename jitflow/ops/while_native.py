"""Compiled `while_loop`s: all iterations of a loop in one generated Numba function.

When every step of a loop's cond and body sub-plans has a native form (`compiler/native_loop.py`: fused
clusters, MatMul through OpenBLAS, split/concat, TensorArray reads and writes, Select, renames), the
`While` kernel runs the loop as one compiled function instead of replaying the sub-plans from Python
once per iteration. The function is generated for the shapes of one example iteration: the first run of
a loop with new input shapes replays it (and learns those shapes from its first iteration); later runs
with the same shapes run compiled. TensorArrays live in ``[size, element]`` buffers for the loop's
duration and are written back into their run-time values when it ends; the values the gradient needs
are kept per iteration in ``[capacity, ...]`` history buffers (`NativeHistory`), which the compiled
backward loop (`ops/while_native_grad.py`) reads directly.

Nothing a compiled loop does is visible before it finishes: when its generated code meets what the
replayed plan would reject (a TensorArray index out of range or read twice, a kernel's check), the loop
is run again, replayed, from its inputs, which gives the interpreter's result or error. The loop
returns to Python every `CHUNK_SECONDS` or so (`compiler/native_program.py`), so Ctrl-C interrupts it.
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from jitflow.compiler.execute import execute
from jitflow.compiler.native_loop import BAIL, BAIL_STMT, SlotInfo, TARef, Translator, Unsupported, slot_info, why_not
from jitflow.compiler.native_program import Program, run_chunks
from jitflow.compiler.plan import ARENA_SLOT, Plan
from jitflow.compiler.steps import MatMulStep
from jitflow.ops.tensor_array_ops import _CLEARED, TAValue, _compatible

_HISTORY_START = 64
RUNS = {"forward": 0, "grad": 0}  # compiled loop runs in this process (tests check that they ran)


def run_keep(plan: Plan, ctx: Any, feeds: list[Any]) -> tuple[list[Any], dict[int, SlotInfo]]:
    """`execute(plan)`, also returning what each slot held (for the translation of one iteration)."""
    holder: dict[str, Any] = {}

    class _Spy:  # the last step: it sees the run's slots before execute hands its arena back
        kind, ops, reads, writes, stateful, backend = "spy", (), (), (), False, "interp"

        def __call__(self, c: Any, vals: list) -> None:
            holder["infos"] = {s: slot_info(v) for s, v in enumerate(vals) if s > ARENA_SLOT and v is not None}

    steps = plan.steps
    plan.steps = [*steps, _Spy()]  # type: ignore[list-item]
    try:
        res = execute(plan, ctx, feeds)
    finally:
        plan.steps = steps
    return res, holder["infos"]


def signature(values: Sequence[Any]) -> tuple:
    """The key of a compiled loop: the kind, shape and dtype of each value it is given."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, TAValue):
            out.append(("ta", v.element_shape, v.np_dtype.str, v.clear_after_read))
        elif type(v) is np.ndarray or isinstance(v, np.generic):
            out.append((np.shape(v), v.dtype.str))
        else:
            out.append(type(v).__name__)
    return tuple(out)



def store_line(k: int, o: str, r: str, state: set[str], first: list[str], then: list[str]) -> None:
    """Appends ``_copy(r, o)`` (r[:] = o) for loop value `k` to `then`. Where `o` is another loop value's buffer, it is
    copied first (into `first`), because every new value must be read before any buffer is overwritten."""
    if o == r:
        return
    if o in state:
        first.append(f"_t{k} = {o}.copy()")
        o = f"_t{k}"
    then.append(f"_copy({r}, {o})")

class NativeLoops:
    """The compiled forms of one loop in one session: per key, a `Program` or why there is none."""

    def __init__(self, reason: str | None) -> None:
        self.reason = reason  # why the sub-plans cannot compile at all (None: they can)
        self.programs: dict[tuple, Any] = {}


_loops: weakref.WeakKeyDictionary[Any, dict[Any, NativeLoops]] = weakref.WeakKeyDictionary()


def native_of(body: Any, sess: Any, kind: str) -> NativeLoops:
    """The `NativeLoops` of loop `body`'s `kind` ("forward" or "grad") in session `sess`."""
    per = _loops.setdefault(sess, {})
    key = (id(body), kind)
    nat = per.get(key)
    if nat is None:
        if not _compiled(sess):
            nat = NativeLoops("the JIT is off (the interpreter replays loops)")
        elif kind == "forward":
            nat = NativeLoops(why_not(body.plan(sess, "cond")) or why_not(body.plan(sess, "body")))
        else:
            nat = NativeLoops(why_not(body.plan(sess, "grad")))
        per[key] = nat
    return nat


def _compiled(sess: Any) -> bool:
    return hasattr(sess, "_lowering") and sess._lowering() is not None


def describe(body: Any, sess: Any, kind: str) -> str:
    """The explain line of a loop's sub-plans: compiled (with what it fuses) or replayed (and why)."""
    nat = native_of(body, sess, "grad" if kind == "grad" else "forward")
    if nat.reason is not None:
        return f"replayed per iteration: {nat.reason}"
    progs = list(nat.programs.values())
    if progs and all(isinstance(p, str) for p in progs):  # its inputs so far: shapes it cannot compile
        return f"replayed per iteration: {progs[-1]}"
    parts = fused_parts(body.plan(sess, kind))
    return "compiled loop: one native function for all iterations, fusing " + ", ".join(parts)


def fused_parts(plan: Plan) -> list[str]:
    """What a plan's steps become in a compiled loop (counted), for explain. A GEMM runs packed
    (`kernels/packed_gemm.py`) when its right operand is a capture, else through OpenBLAS: known once the
    loop is translated, so not said here."""
    names: list[str] = []
    for st in plan.steps:
        if st.kind == "cluster":
            names.append("kernel[" + "+".join(op.type for op in st.ops) + "]")
        elif st.kind == "matmul":
            names.append("GEMM")
        elif st.ops:
            names.append(st.ops[0].type)
    counts = {nm: names.count(nm) for nm in names}
    return [f"{c}x {nm}" if c > 1 else nm for nm, c in counts.items()]


# -- the forward program ---------------------------------------------------------------------------------
def _feed_refs(mod: Any, feeds: list[Any], n: int) -> list[Any]:
    """Names (or TARefs) of the loop's inputs: loop values `v{k}` (state), captures `c{k}`, arrays `ta{k}`."""
    refs: list[Any] = []
    for k, v in enumerate(feeds):
        if isinstance(v, TAValue):
            refs.append(TARef("ta", buf=f"ta{k}", mask=f"tam{k}", size=f"tan{k}", clear=v.clear_after_read,
                              dtype=np.dtype(v.np_dtype)))
            mod.arg(f"ta{k}", "runtime", None, v.np_dtype, 2)
            mod.arg(f"tam{k}", "runtime", None, np.int8, 1)
            mod.arg(f"tan{k}", "runtime", None, np.int64, 0)
        elif type(v) is np.ndarray or isinstance(v, np.generic):
            refs.append(mod.arg(f"v{k}" if k < n else f"c{k}", "runtime", None, v.dtype, 1, k >= n))
        else:
            raise Unsupported(f"loop input {k} is a {type(v).__name__}")
    return refs


def _plan_env(plan: Plan, refs: list[Any], infos: dict[int, SlotInfo], feeds: list[Any]) -> dict[int, Any]:
    env: dict[int, Any] = {}
    for s, r, v in zip(plan.feed_slots, refs, feeds):
        env[s] = r
        infos[s] = slot_info(v)
    return env


class ForwardProgram:
    """The compiled forward loop for one key, with what its caller needs to bind and unpack it."""

    def __init__(self, body: Any, sess: Any, feeds: list[Any], cond_infos: dict[int, SlotInfo],
                 body_infos: dict[int, SlotInfo], record: bool) -> None:
        from jitflow.compiler.native_loop import Module

        n = body.n
        mod = Module()
        self.refs = _feed_refs(mod, feeds, n)
        self.infos = [slot_info(v) for v in feeds]
        cplan, bplan = body.plan(sess, "cond"), body.plan(sess, "body")
        cond = Translator(mod, cplan, "c_", dict(cond_infos), _plan_env(cplan, self.refs, dict(), feeds), BAIL_STMT)
        lines = ["while it != lim and it < stop:", *["    " + ln for ln in cond.run()]]
        cname = cond.name(cplan.fetch_slots[0])
        lines += [f"    if not {cname}[0]:", f"        st[0] = {1}", "        return it"]
        binfos = dict(body_infos)
        tr = Translator(mod, bplan, "b_", binfos, _plan_env(bplan, self.refs, dict(), feeds), BAIL_STMT)
        lines += ["    " + ln for ln in tr.run()]
        outs = [tr.env.get(s) for s in bplan.fetch_slots]
        self.saved = self._record(mod, lines, outs[n:], binfos, bplan.fetch_slots[n:], n) if record else []
        lines += ["    " + ln for ln in self._update(outs[:n], binfos, bplan.fetch_slots[:n])]
        lines += ["    it += 1", "st[0] = 0", "return it"]
        self.record = record
        self.prog = Program(mod, lines, "While", _max_macs(bplan, binfos))

    def _record(self, mod: Any, lines: list[str], outs: list[Any], infos: dict[int, SlotInfo],
                slots: list[int], n: int) -> list[Any]:
        """History rows: each array loop value (at the iteration's start) and each value the gradient reads."""
        for k, r in enumerate(self.refs[:n]):
            if isinstance(r, str):
                lines.append(f"    _copy(hv{k}[it], {r})")
                mod.arg(f"hv{k}", "runtime", None, self.infos[k].dtype, 2)
        saved: list[Any] = []
        for j, (o, s) in enumerate(zip(outs, slots)):
            if isinstance(o, str):
                lines.append(f"    _copy(hs{j}[it], {o})")
                mod.arg(f"hs{j}", "runtime", None, infos[s].dtype, 2)
                saved.append(infos[s])
            elif isinstance(o, TARef) and o in self.refs:
                saved.append(self.refs.index(o))  # the run-time TensorArray of that input
            else:
                raise Unsupported("a value the gradient reads is not an array")
        return saved

    def _update(self, outs: list[Any], infos: dict[int, SlotInfo], slots: list[int]) -> list[str]:
        """The loop values of the next iteration (through copies where one feeds another's place)."""
        first: list[str] = []
        then: list[str] = []
        state = {r for r in self.refs if isinstance(r, str)}
        for k, (o, s) in enumerate(zip(outs, slots)):
            r = self.refs[k]
            if isinstance(r, TARef):
                if o is not r:
                    raise Unsupported(f"loop value {k}: the body returns another TensorArray")
                continue
            info = infos.get(s)
            if not isinstance(o, str) or info is None or info.shape != self.infos[k].shape \
                    or info.dtype != self.infos[k].dtype:
                raise Unsupported(f"loop value {k} changes shape or dtype, or is not an array")
            store_line(k, o, r, state, first, then)
        return first + then

    def bind(self, feeds: list[Any], cap: int) -> tuple[dict[str, Any], list[Any]]:
        """Run-time arguments: state buffers, captures, TensorArray buffers, history of `cap` rows."""
        rt: dict[str, Any] = {}
        tas: list[Any] = []
        for k, (r, v, info) in enumerate(zip(self.refs, feeds, self.infos)):
            if isinstance(r, TARef):
                buf, mask = ta_buffers(v, r)
                rt[r.buf], rt[r.mask], rt[r.size] = buf, mask, len(v.items)
                tas.append((v, r, buf, mask))
            elif r.startswith("c"):
                rt[r] = readonly(v)
            else:
                rt[r] = np.array(v, info.dtype).reshape(-1)  # a copy: the loop updates it in place
                if self.record:
                    rt[f"hv{k}"] = np.empty((cap, info.size), info.dtype)
        for j, s in enumerate(self.saved):
            if isinstance(s, SlotInfo):
                rt[f"hs{j}"] = np.empty((cap, s.size), s.dtype)
        return rt, tas


def readonly(v: Any) -> np.ndarray:
    """A captured value as the flat read-only array the compiled loop's signature takes (no copy)."""
    a = np.ascontiguousarray(v).reshape(-1)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def ta_buffers(ta: TAValue, ref: TARef) -> tuple[np.ndarray, np.ndarray]:
    """A TensorArray's rows as one ``[size, element]`` buffer and their states (0 / 1 / 2)."""
    size = len(ta.items)
    elem = ref.elem if ref.elem is not None else ()
    if ref.written and ta.element_shape is not None and not _compatible(elem, ta.element_shape):
        raise Unsupported("the rows written do not fit the array's element shape")
    width = int(np.prod(elem)) if elem else 1
    buf = np.zeros((max(size, 1), width), ta.np_dtype)
    mask = np.zeros(max(size, 1), np.int8)
    for i, item in enumerate(ta.items):
        if item is _CLEARED:
            mask[i] = 2
        elif item is not None:
            if item.shape != tuple(elem) or item.dtype != ta.np_dtype:
                raise Unsupported("the array holds elements of another shape")
            buf[i] = item.reshape(-1)
            mask[i] = 1
    return buf, mask


def commit_tas(tas: list[Any]) -> None:
    """Writes the loop's TensorArray rows back into their run-time values (new rows, cleared rows)."""
    for ta, ref, buf, mask in tas:
        items = ta.items
        for i in np.flatnonzero(mask[:len(items)]).tolist():
            m = mask[i]
            if m == 1 and items[i] is None:
                items[i] = buf[i].reshape(ref.elem)
            elif m == 2 and items[i] is not _CLEARED:
                items[i] = _CLEARED
        if ref.written and ta.element_shape is None:
            ta.element_shape = tuple(ref.elem)


def _max_macs(plan: Plan, infos: dict[int, SlotInfo]) -> int:
    """The largest GEMM of one iteration, in multiply-adds."""
    best = 0
    for st in plan.steps:
        inner = getattr(st, "inner", st)
        if isinstance(inner, MatMulStep) and inner.sa in infos and inner.out_slot in infos:
            a, o = infos[inner.sa], infos[inner.out_slot]
            if len(a.shape) == 2 and len(o.shape) == 2:
                best = max(best, o.size * (a.shape[0] if inner.ta else a.shape[1]))
    return best


class NativeHistory(Sequence):
    """The forward values a compiled loop kept for its gradient: history buffers (`rt`), or `(vals, saved)`
    per iteration as views (what a replayed gradient reads)."""

    def __init__(self, prog: ForwardProgram, rt: dict[str, Any], feeds: list[Any], n: int, count: int) -> None:
        self.prog, self.rt, self.feeds, self.n, self.rows = prog, rt, feeds, n, count

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.rows))]
        if i < 0:
            i += self.rows
        if not 0 <= i < self.rows:
            raise IndexError(i)
        p = self.prog
        vals = [self.rt[f"hv{k}"][i].reshape(p.infos[k].shape) if isinstance(p.refs[k], str) else self.feeds[k]
                for k in range(self.n)]
        saved = [self.rt[f"hs{j}"][i].reshape(s.shape) if isinstance(s, SlotInfo) else self.feeds[s]
                 for j, s in enumerate(p.saved)]
        return vals, saved


def run_forward(ctx: Any, body: Any, vals: list[Any], caps: list[Any], max_iter: int,
                record: bool) -> tuple | None:
    """The loop's results through its compiled program (None: none for these inputs; replay it)."""
    nat = native_of(body, ctx, "forward")
    if nat.reason is not None:
        return None
    feeds = vals + caps
    prog = nat.programs.get((signature(feeds), record))
    if not isinstance(prog, ForwardProgram):
        return None
    try:
        rt, tas = prog.bind(feeds, _HISTORY_START if max_iter < 0 else max(1, min(max_iter, 1 << 16)))
    except Unsupported:
        return None
    args, scratch = prog.prog.bind(rt)
    names = _hist_names(rt)
    at = {nm: prog.prog.names.index(nm) for nm in names}

    def grow(it: int) -> int:  # the history is full: twice the rows, then go on
        cap = rt[names[0]].shape[0]
        if it < cap:
            return cap
        for nm in names:
            old = rt[nm]
            new = np.empty((2 * cap, old.shape[1]), old.dtype)
            new[:cap] = old
            rt[nm] = args[at[nm]] = new
        return 2 * cap

    try:
        count, status = run_chunks(prog.prog.fn, 0, max_iter, 1 << 62, args, prog.prog.macs,
                                   grow if names else None, prog.prog.packed)
    finally:
        prog.prog.release(scratch)
    if status == BAIL:
        return None
    commit_tas(tas)
    RUNS["forward"] += 1
    outs = [rt[r].reshape(info.shape) if isinstance(r, str) else feeds[k]
            for k, (r, info) in enumerate(zip(prog.refs[:body.n], prog.infos))]
    return (*outs, (caps, NativeHistory(prog, rt, feeds, body.n, count)) if record else None)


def _hist_names(rt: dict[str, Any]) -> list[str]:
    return [n for n in rt if n.startswith(("hv", "hs"))]


def learn(ctx: Any, body: Any, key: tuple, feeds: list[Any], cond_infos: dict[int, SlotInfo],
          body_infos: dict[int, SlotInfo]) -> None:
    """Builds the compiled loop for inputs of `key` from one replayed iteration (or records why not)."""
    nat = native_of(body, ctx, "forward")
    try:
        nat.programs[key] = ForwardProgram(body, ctx, feeds, cond_infos, body_infos, key[1])
    except Unsupported as e:
        nat.programs[key] = str(e)


def wants_example(ctx: Any, body: Any, feeds: list[Any], record: bool) -> tuple | None:
    """The key of the compiled loop this run's first iteration should build (None: none to build)."""
    nat = native_of(body, ctx, "forward")
    key = (signature(feeds), record)
    return key if nat.reason is None and key not in nat.programs else None
