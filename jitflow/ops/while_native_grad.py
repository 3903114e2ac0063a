"""The compiled backward loop of a compiled `while_loop` (see `ops/while_native.py`).

The gradient sub-plan is translated like a forward body (`compiler/native_loop.py`); one generated
function runs it over the forward loop's history buffers, last iteration first. The gradients of the
loop values are its state; the gradients of captured arrays are summed into buffers as it goes (those of
a captured TensorArray into ``[size, element]`` rows); the operands of the gradients `ops/while_hoist.py`
sums after the loop are written into ``[iterations, ...]`` buffers in forward order, and an operand that is
a forward value is read from the forward loop's history buffer itself (no copy per iteration). The loop
runs exactly as many iterations as the forward loop did, so it is bounded; it still returns to Python
between chunks.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.compiler.native_loop import (
    BAIL,
    BAIL_STMT,
    Module,
    SlotInfo,
    TARef,
    Translator,
    Unsupported,
    nb_type,
    slot_info,
)
from jitflow.compiler.native_program import Program, run_chunks
from jitflow.ops.tensor_array_ops import TAGrad, TAValue
from jitflow.ops.while_hoist import Stash, grad_fetches
from jitflow.ops.while_native import RUNS, NativeHistory, _max_macs, native_of, readonly, signature, store_line


def grad_key(caps: list[Any], feed_g: list[Any], first: tuple[list[Any], list[Any]], n_hoisted: int) -> tuple:
    """The key of a compiled backward loop: its captures, incoming gradients and history values."""
    return (signature(caps), signature(feed_g), signature(first[0]), signature(first[1]), n_hoisted)


def _is_array(v: Any) -> bool:
    return type(v) is np.ndarray or isinstance(v, np.generic)


class GradProgram:
    """The compiled backward loop for one key (see the module doc)."""

    def __init__(self, lb: Any, sess: Any, caps: list[Any], feed_g: list[Any], first: tuple[list[Any], list[Any]],
                 infos: dict[int, SlotInfo], hoisted: list[Any]) -> None:
        n = lb.n
        self.n, self.hoisted = n, hoisted
        mod = Module()
        plan = lb.plan(sess, "grad")
        vals, saved = first
        feeds = [*vals, *caps, *saved, *feed_g]
        refs, lines = self._feeds(mod, n, len(caps), feeds)
        self.infos = [slot_info(v) for v in feeds]
        env = {s: r for s, r in zip(plan.feed_slots, refs)}
        for s, v in zip(plan.feed_slots, feeds):
            infos.setdefault(s, slot_info(v))
        tr = Translator(mod, plan, "g_", infos, env, BAIL_STMT)
        lines += ["    " + ln for ln in tr.run()]
        _, idx = grad_fetches(lb.grad_outs, hoisted)
        outs = [tr.env.get(s) for s in plan.fetch_slots]
        self.refs = refs
        self.sums: dict[int, Any] = {}  # capture index -> what its gradient sums into (SlotInfo / TARef)
        self.operands: dict[int, SlotInfo] = {}  # fetch position -> a hoisted gradient's operand
        self.same_as: dict[int, int] = {}  # fetch position -> an earlier one kept from the same value
        self.from_history: dict[int, str] = {}  # fetch position -> the history buffer that holds its rows
        for r in refs:
            if isinstance(r, TARef) and r.kind == "tagrad" and r.dtype is not None:
                mod.types[r.buf] = nb_type(r.dtype, 2)
        lines += ["    " + ln for ln in self._sums(mod, outs, idx, plan.fetch_slots, infos, caps)]
        lines += ["    " + ln for ln in self._state(outs, idx, plan.fetch_slots, infos, refs[-n:])]
        lines += ["    it += 1", "st[0] = 0", "return it"]
        self.prog = Program(mod, lines, "WhileGrad", _max_macs(plan, infos))

    def _feeds(self, mod: Module, n: int, n_caps: int, feeds: list[Any]) -> tuple[list[Any], list[str]]:
        """Names of the gradient plan's inputs: history rows, captures, incoming gradients (the state)."""
        refs: list[Any] = []
        lines = ["while it < stop:", "    f = lim - 1 - it"]
        n_saved = len(feeds) - 2 * n - n_caps
        for k, v in enumerate(feeds):
            hist = k < n or n + n_caps <= k < n + n_caps + n_saved
            if isinstance(v, TAValue):
                refs.append(TARef("fwd"))
            elif isinstance(v, TAGrad) and k >= len(feeds) - n:
                refs.append(TARef("tagrad", buf=f"tg{k}", size=f"tgn{k}"))
                mod.arg(f"tg{k}", "runtime", None, np.float64, 2)  # (its dtype is set once it is known)
                mod.arg(f"tgn{k}", "runtime", None, np.int64, 0)
            elif not _is_array(v):
                raise Unsupported(f"gradient input {k} is a {type(v).__name__}")
            elif hist:
                mod.arg(f"h{k}", "runtime", None, v.dtype, 2)
                lines.append(f"    x{k} = h{k}[f]")
                refs.append(f"x{k}")
            else:
                refs.append(mod.arg(f"{'c' if k < n + n_caps else 'g'}{k}", "runtime", None, v.dtype, 1,
                                    k < n + n_caps))
        return refs, lines

    def _sums(self, mod: Module, outs: list[Any], idx: list[int], slots: list[int], infos: dict[int, SlotInfo],
              caps: list[Any]) -> list[str]:
        """Capture gradients summed as the loop goes; hoisted operands kept per iteration."""
        lines: list[str] = []
        n = self.n
        kept_from: dict[str, int] = {}  # value name -> the first fetch position that keeps it
        hist_rows = {r: "h" + r[1:] for r in self.refs if isinstance(r, str) and r.startswith("x")}
        for p, o in enumerate(outs):
            k = idx[p] if p < len(idx) else -1
            if 0 <= k < n:
                continue
            if k < 0:  # a hoisted gradient's operand, kept in forward order (row f) as the history is
                info = infos[slots[p]]
                first = kept_from.setdefault(o, p) if isinstance(o, str) else p
                if first != p:  # operand of two hoisted gradients (a kernel's and a bias's): kept once
                    self.same_as[p] = first
                elif isinstance(o, str) and o in hist_rows:  # a forward value: its history rows already are
                    self.from_history[p] = hist_rows[o]
                else:
                    mod.arg(f"ho{p}", "runtime", None, info.dtype, 2)
                    lines.append(f"_copy(ho{p}[f], {o})")
                self.operands[p] = info
            elif isinstance(o, TARef) and o.kind == "from" and isinstance(caps[k - n], TAValue):
                mod.arg(f"ag{k}", "runtime", None, o.dtype, 2)
                mod.arg(f"agm{k}", "runtime", None, np.int8, 1)
                self.sums[k] = o
                e = int(np.prod(o.elem)) if o.elem else 1
                lines += [f"for _r in range({o.index}.size):", f"    _i = np.int64({o.index}[_r])",
                          f"    if _i < 0 or _i >= ag{k}.shape[0]: {BAIL_STMT}",
                          f"    _add_to(ag{k}[_i], {o.value}[_r * {e}:(_r + 1) * {e}])", f"    agm{k}[_i] = 1"]
            else:
                ci = infos.get(slots[p])
                cap = caps[k - n]
                if not isinstance(o, str) or ci is None or not _is_array(cap) or ci.shape != np.shape(cap) \
                        or ci.dtype != cap.dtype:
                    raise Unsupported(f"the gradient of capture {k - n} is not an array of its shape")
                mod.arg(f"a{k}", "runtime", None, ci.dtype, 1)
                lines.append(f"_add_to(a{k}, {o})")
                self.sums[k] = ci
        return lines

    def _state(self, outs: list[Any], idx: list[int], slots: list[int], infos: dict[int, SlotInfo],
               grefs: list[Any]) -> list[str]:
        """The loop values' gradients for the next (earlier) iteration."""
        n = self.n
        first: list[str] = []
        then: list[str] = []
        got = {k: (outs[p], slots[p]) for p, k in enumerate(idx) if k < n}
        state = {r for r in grefs if isinstance(r, str)}
        for k, r in enumerate(grefs):
            o, s = got.get(k, (None, -1))
            if isinstance(r, TARef):
                if o is not r:
                    raise Unsupported(f"the gradient of TensorArray loop value {k} is not passed through")
                continue
            if o is None:
                then.append(f"_zero({r})")
                continue
            got_info = infos.get(s)
            want = self.infos[len(self.infos) - n + k]
            if not isinstance(o, str) or got_info is None or got_info.size != want.size \
                    or got_info.dtype != want.dtype:
                raise Unsupported(f"the gradient of loop value {k} changes shape or dtype")
            store_line(k, o, r, state, first, then)
        return first + then


def _tagrad_rows(g: TAGrad, ref: TARef) -> tuple[np.ndarray, int]:
    """An incoming TensorArray gradient as ``[size, element]`` rows (zeros where it has none)."""
    size = max(g.parts) + 1 if g.parts else 0
    elem = tuple(ref.elem or ())
    buf = np.zeros((max(size, 1), int(np.prod(elem)) if elem else 1), ref.dtype)
    for i, v in g.parts.items():
        a = np.asarray(v)
        if a.shape != elem or i < 0:
            raise Unsupported("a TensorArray gradient of another shape")
        buf[i] = a.reshape(-1)
    return buf, size


def run_grad(ctx: Any, lb: Any, caps: list[Any], iters: Any, feed_g: list[Any], hoisted: list[Any]) -> list | None:
    """The backward loop's results (loop values' gradients, then the captures') compiled; None: replay it."""
    if not isinstance(iters, NativeHistory) or not len(iters):
        return None
    nat = native_of(lb, ctx, "grad")
    if nat.reason is not None:
        return None
    key = grad_key(caps, feed_g, iters[len(iters) - 1], len(hoisted))
    gp = nat.programs.get(key)
    if not isinstance(gp, GradProgram):
        return None
    try:
        rt = _bind(gp, iters, caps, feed_g)
    except Unsupported:
        return None
    args, scratch = gp.prog.bind(rt)
    try:
        count, status = run_chunks(gp.prog.fn, 0, len(iters), len(iters), args, gp.prog.macs,
                                   packed=gp.prog.packed)
    finally:
        gp.prog.release(scratch)
    if status == BAIL:
        return None
    RUNS["grad"] += 1
    return _results(gp, rt, caps, feed_g, hoisted, len(iters))


def _bind(gp: GradProgram, hist: NativeHistory, caps: list[Any], feed_g: list[Any]) -> dict[str, Any]:
    n, n_caps = gp.n, len(caps)
    rt: dict[str, Any] = {}
    fwd = hist.prog
    for k, r in enumerate(gp.refs):
        if isinstance(r, TARef):
            if r.kind == "tagrad":
                rt[r.buf], rt[r.size] = _tagrad_rows(feed_g[k - (len(gp.refs) - n)], r)
            continue
        if r.startswith("x"):
            if k < n:
                rt[f"h{k}"] = hist.rt[f"hv{k}"]
            else:
                j = k - n - n_caps
                if not isinstance(fwd.saved[j], SlotInfo):
                    raise Unsupported("a history value that is not an array")
                rt[f"h{k}"] = hist.rt[f"hs{j}"]
        elif r.startswith("c"):
            rt[r] = readonly(caps[k - n])
        else:
            rt[r] = np.array(feed_g[k - (len(gp.refs) - n)], gp.infos[k].dtype).reshape(-1)
    for k, what in gp.sums.items():
        if isinstance(what, TARef):
            rows = max(len(caps[k - n].items), 1)
            rt[f"ag{k}"] = np.zeros((rows, int(np.prod(what.elem)) if what.elem else 1), what.dtype)
            rt[f"agm{k}"] = np.zeros(rows, np.int8)
        else:
            rt[f"a{k}"] = np.zeros(what.size, what.dtype)
    for p, info in gp.operands.items():
        if p in gp.from_history:
            rt[f"ho{p}"] = rt[gp.from_history[p]]
        elif p not in gp.same_as:
            rt[f"ho{p}"] = np.empty((len(hist), info.size), info.dtype)
    for p, first in gp.same_as.items():
        rt[f"ho{p}"] = rt[f"ho{first}"]
    return rt


def _results(gp: GradProgram, rt: dict[str, Any], caps: list[Any], feed_g: list[Any], hoisted: list[Any],
             count: int) -> list:
    from jitflow.ops.while_grad import _zero_like

    n = gp.n
    out_g = []
    for k, r in enumerate(gp.refs[-n:]):
        out_g.append(feed_g[k] if isinstance(r, TARef) else rt[r].reshape(gp.infos[len(gp.refs) - n + k].shape))
    out_c: list[Any] = [None] * len(caps)
    for k, what in gp.sums.items():
        if isinstance(what, TARef):
            buf, mask = rt[f"ag{k}"], rt[f"agm{k}"]
            out_c[k - n] = TAGrad({int(i): buf[i].reshape(what.elem) for i in np.flatnonzero(mask)})
        else:
            out_c[k - n] = rt[f"a{k}"].reshape(what.shape)
    if hoisted:  # the operands of every iteration, in forward order (a replayed loop keeps them in reverse)
        stash = Stash(hoisted)
        kept = [(rt[f"ho{p}"], info) for p, info in sorted(gp.operands.items())]
        i = 0
        for h, parts in zip(hoisted, stash.parts):
            stacked = _row_stacked(h.op) and all(len(info.shape) == 2 for _, info in kept[i:i + len(parts)])
            for lst in parts:
                buf, info = kept[i]
                i += 1
                if stacked:  # the operands of all iterations as one matrix, already in row order
                    lst.append(buf[:count].reshape(count * info.shape[0], info.shape[1]))
                else:
                    lst.extend(buf[t].reshape(info.shape) for t in range(count))
        for k, total in stash.finish().items():
            out_c[k - n] = total
    return out_g + [c if c is not None else _zero_like(cap) for c, cap in zip(out_c, caps)]


def _row_stacked(op: Any) -> bool:
    """True when the sum over iterations stacks every operand of `op` along its rows (axis 0): x^T @ dy,
    and a column sum."""
    if op.type == "MatMul":
        return bool(op.attrs.get("transpose_a")) and not op.attrs.get("transpose_b")
    return True


def learn(ctx: Any, lb: Any, key: tuple, caps: list[Any], feed_g: list[Any], first: Any, infos: dict[int, SlotInfo],
          hoisted: list[Any]) -> None:
    """Builds the compiled backward loop for `key` from one replayed iteration (or records why not)."""
    nat = native_of(lb, ctx, "grad")
    try:
        nat.programs[key] = GradProgram(lb, ctx, caps, feed_g, first, infos, hoisted)
    except Unsupported as e:
        nat.programs[key] = str(e)


def wants_example(ctx: Any, lb: Any, key: tuple) -> bool:
    """True when a compiled backward loop for `key` is still to be built."""
    nat = native_of(lb, ctx, "grad")
    return nat.reason is None and key not in nat.programs
