"""Stage 2 of a run: which ops fuse into one kernel, and why the others do not.

`cluster(ops, fed, member_reason)` groups the ops of a pruned plan into `Cluster`s, the IR of
`jitflow/ir/cluster.py` that the code generators turn into one kernel each.

Rules (`cluster`)
-----------------
* Members are ops with a lowering (their OpDef's formula, `codegen/lowering.py`): elementwise math, casts,
  reductions, variable updates (Assign*, optimizer Apply* ops).
* A reduction joins the elementwise cluster that feeds it when every member of that cluster feeds it;
  a cluster with a reduction takes no further ops (its consumers start the next cluster).
* Ops with the same output shape that read the same non-scalar tensor fuse too (horizontal fusion:
  one pass over the shared input).
* A cluster runs at the position of its last member. It is valid only if every op outside it that
  consumes (data or control) one of its members comes after that position, which keeps the plan
  acyclic, and if no stateful op outside it sits between a stateful (or variable-reading) member and
  that position, which keeps the order of stateful ops. Stateful ops are never dropped or
  duplicated: each runs once, in its cluster or as its own step.
* Clusters stop growing at `MAX_CLUSTER_OPS` ops (kernel compile time grows with kernel size).
* Every op left out gets a reason (`Fallback`); structural ops (constants, placeholders, variable
  reads, no-ops, identities) run as their own steps without being counted as fallbacks.
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.ir.cluster import ELEMENTWISE, REDUCTION, Cluster, ClusterInput, ClusterOutput, Node

# Structural ops (`OpDef.structural`: Const, Identity, Reshape, Shape, ...) run as their own (cheap)
# interpreted steps by design; they are not fallbacks.


@dataclass
class Fallback:
    """An op that runs interpreted, and why."""

    op: Operation
    reason: str


@dataclass
class Clustering:
    """The result of `cluster`: clusters, the ops left to the interpreter, and the reasons."""

    clusters: list[list[Operation]]  # members of each cluster, in plan order
    fallbacks: list[Fallback]


# -- clustering ---------------------------------------------------------------------------------------


class _Group:
    """A cluster being formed, with what the validity checks need kept up to date (no rescans)."""

    __slots__ = ("members", "last", "heap", "sens_first", "stateful", "closed", "has_red", "has_stateful",
                 "device", "space")

    def __init__(self, op: Operation, p: int, sensitive: bool, closed: bool) -> None:
        self.members = [op]
        self.last = p
        self.heap: list[tuple[int, int, Operation]] = []  # (pos, tiebreak, consumer): lazily pruned
        self.sens_first = p if sensitive else None
        self.stateful: list[int] = [p] if op.opdef.kind == registry.STATEFUL else []
        self.closed = closed
        self.has_red = op.opdef.kind == registry.REDUCTION
        self.has_stateful = op.opdef.kind == registry.STATEFUL
        self.device = op.device
        self.space = _space(op)  # the static iteration space its kernel would have (`_joint_space`)


def _space(op: Operation) -> tuple[int | None, ...] | None:
    """The static shape an op spans in a kernel (a reduction: its input's; None: unknown rank)."""
    t = op.inputs[0] if op.opdef.kind == registry.REDUCTION or not op.outputs else op.outputs[0]
    return t.shape.as_tuple()


def _joint_space(a: tuple[int | None, ...] | None, b: tuple[int | None, ...] | None) -> Any:
    """The space of one kernel spanning spaces `a` and `b` (broadcasting; None dims match anything), or
    False when none does: ops over unrelated shapes (two variables' updates) are separate kernels."""
    if a is None or b is None:
        return a if b is None else b
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out: list[int | None] = []
    for x, y in zip(pa, pb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif x is None or y is None:
            out.append(x if y is None else y)
        else:
            return False
    return tuple(out)


# Largest cluster (in ops): compile time grows faster than linearly with kernel size.
MAX_CLUSTER_OPS = 256


def _read_var(t: Tensor) -> Operation | None:
    """The variable whose value `t` is: the variable's own output or its snapshot (`v/read`)."""
    op = t.op
    if op.type == "Identity" and not op.control_inputs and op.inputs[0].op.type == "VariableV2":
        op = op.inputs[0].op
    return op if op.type == "VariableV2" else None


def _reads_written(cand: list[Any], op: Operation) -> bool:
    """Whether `op` reads a variable that a member of `cand` writes.

    A cluster's variable inputs are read before its kernel runs, so such a read would miss the write
    that precedes it; the reader starts a new cluster instead (a read before a write may fuse).
    """
    refs = op.opdef.ref_inputs
    reads = {v for i, t in enumerate(op.inputs) if i not in refs and (v := _read_var(t)) is not None}
    if not reads:
        return False
    return any(m.inputs[r].op in reads for g in cand for m in g.members for r in m.opdef.ref_inputs)


def cluster(ops: list[Operation], fed: set[Tensor], member_reason: Any, passes_through: Any = None) -> Clustering:
    """Groups `ops` (a pruned plan, in order) into fusable clusters.

    `member_reason(op)` returns None when `op` may be a cluster member (it has a lowering), else the
    reason it cannot be. `passes_through(op)` is True for a structural op (an Identity) that may join
    the group of its producer, so that the op reading it can too; alone it stays a slot copy. Fed tensors
    cut edges: their consumers read the fed value. Runs in about O(n log n): each group keeps its last
    position, a heap of the positions of its outside consumers and its order-sensitive positions, so
    checking a merge does not rescan the members.
    """
    return _Clusterer(ops, fed).run(member_reason, passes_through or (lambda op: False))


def _sensitive(m: Operation) -> bool:
    """Stateful members, and members reading a variable, keep their order with outside stateful ops."""
    return m.opdef.kind == registry.STATEFUL or any(t.op.type == "VariableV2" for t in m.inputs)


class _Clusterer:
    """The state of one `cluster` call: positions, consumers, and the group each op belongs to."""

    def __init__(self, ops: list[Operation], fed: set[Tensor]) -> None:
        self.ops = ops
        self.fed = fed
        self.pos = {op: i for i, op in enumerate(ops)}
        self.consumers: dict[Operation, list[Operation]] = {op: [] for op in ops}
        for op in ops:
            for t in op.inputs:
                if t.op in self.consumers and t not in fed:
                    self.consumers[t.op].append(op)
            for c in op.control_inputs:
                if c in self.consumers:
                    self.consumers[c].append(op)
        # ops that change session state (variable reads do not: they happen when their consumer runs)
        self.stateful_pos = [self.pos[op] for op in ops
                             if op.opdef.kind == registry.STATEFUL and op.type != "VariableV2"]
        self.group_of: dict[Operation, _Group] = {}

    def run(self, member_reason: Any, passes_through: Any) -> Clustering:
        """Visits the ops in order, merging each member into the groups it may join."""
        fallbacks: list[Fallback] = []
        order: list[_Group] = []
        for op in self.ops:
            reason = member_reason(op)
            through = reason is not None and op.opdef.structural and passes_through(op)
            if reason is not None and not through:
                if reason and not op.opdef.structural:  # "" means: lowered as its own step
                    fallbacks.append(Fallback(op, reason))
                continue
            cand = self._producer_groups(op)
            if through and not cand:
                continue  # an Identity of its own is a slot copy, not a kernel
            if not through and op.opdef.kind != registry.REDUCTION and op.outputs:
                self._sibling_groups(op, cand)
            g = self._merge(cand, op, op.opdef.kind == registry.REDUCTION)
            if not cand:
                order.append(g)
        alive = {id(g) for g in self.group_of.values()}  # merged-away groups are no longer anyone's group
        pos = self.pos
        return Clustering([sorted(g.members, key=lambda m: pos[m]) for g in order if id(g) in alive], fallbacks)

    def _producer_groups(self, op: Operation) -> list[_Group]:
        """The groups of `op`'s producers that it may join."""
        is_red = op.opdef.kind == registry.REDUCTION
        is_stateful = op.opdef.kind == registry.STATEFUL
        cand: list[_Group] = []
        for t in op.inputs:
            if t in self.fed:
                continue
            g = self.group_of.get(t.op)
            if g is None or any(g is c for c in cand) or g.closed or g.device != op.device:
                continue
            if is_red and (g.has_stateful or not _all_feed(g.members, op, self.fed)):
                continue
            if (is_stateful or any(c.has_stateful for c in cand)) and g.has_red:
                continue
            if self._valid(cand + [g], op):
                cand.append(g)
        return cand

    def _sibling_groups(self, op: Operation, cand: list[_Group]) -> None:
        """Horizontal fusion: adds to `cand` the groups of other readers of `op`'s (non-scalar) inputs
        that have `op`'s output shape."""
        shape = op.outputs[0].shape.as_tuple()
        if shape is None or not shape:
            return
        for t in op.inputs:
            if t.shape.ndims in (None, 0):
                continue
            for sib in t.consumers():
                g = self.group_of.get(sib)
                if g is None or any(g is c for c in cand) or g.closed or g.has_red:
                    continue
                if self.pos.get(sib, len(self.ops)) > self.pos[op] or g.device != op.device:
                    continue
                if not sib.outputs or sib.outputs[0].shape.as_tuple() != shape:
                    continue
                if self._valid(cand + [g], op):
                    cand.append(g)

    def _min_outside(self, g: _Group, cand: list[_Group], op: Operation) -> int:
        """The first position of a consumer of `g`'s members outside the candidate (groups + op)."""
        heap = g.heap
        stash = []
        res = len(self.ops)
        while heap:
            p, k, e = heap[0]
            owner = self.group_of.get(e)
            if owner is g:
                heapq.heappop(heap)  # became a member: never outside again
            elif e is op or (owner is not None and any(owner is c for c in cand)):
                stash.append(heapq.heappop(heap))
            else:
                res = p
                break
        for item in stash:
            heapq.heappush(heap, item)
        return res

    def _valid(self, cand: list[_Group], op: Operation) -> bool:
        """True if `op` and the groups of `cand` may form one cluster (size, acyclicity, state order)."""
        if sum(len(g.members) for g in cand) >= MAX_CLUSTER_OPS:
            return False
        if _reads_written(cand, op):
            return False
        space = _space(op)
        for g in cand:
            space = _joint_space(space, g.space)
            if space is False:
                return False
        p_op = self.pos[op]
        last = max(max(g.last for g in cand), p_op)
        if any(self._min_outside(g, cand, op) <= last for g in cand):
            return False
        for e in self.consumers[op]:
            owner = self.group_of.get(e)
            if not any(owner is g for g in cand) and self.pos[e] <= last:
                return False
        return self._keeps_state_order(cand, op, last)

    def _keeps_state_order(self, cand: list[_Group], op: Operation, last: int) -> bool:
        """No stateful op outside the candidate sits between its first order-sensitive member and `last`."""
        p_op = self.pos[op]
        firsts = [g.sens_first for g in cand if g.sens_first is not None]
        if _sensitive(op):
            firsts.append(p_op)
        if not firsts or min(firsts) >= last:
            return True
        first = min(firsts)
        outside = bisect.bisect_left(self.stateful_pos, last) - bisect.bisect_right(self.stateful_pos, first)
        inside = sum(bisect.bisect_left(g.stateful, last) - bisect.bisect_right(g.stateful, first) for g in cand)
        if op.opdef.kind == registry.STATEFUL and first < p_op < last:
            inside += 1
        return outside == inside

    def _merge(self, cand: list[_Group], op: Operation, closed: bool) -> _Group:
        """`op` joined with the groups of `cand` (into the largest), or a new group of its own."""
        p_op = self.pos[op]
        if not cand:
            base = _Group(op, p_op, _sensitive(op), closed)
        else:
            base = max(cand, key=lambda g: len(g.members))
            for g in cand:
                if g is not base:
                    self._absorb(base, g)
            base.members.append(op)
            base.last = max(base.last, p_op)
            if _sensitive(op):
                base.sens_first = p_op if base.sens_first is None else min(base.sens_first, p_op)
            if op.opdef.kind == registry.STATEFUL:
                bisect.insort(base.stateful, p_op)
                base.has_stateful = True
            base.has_red |= op.opdef.kind == registry.REDUCTION
            base.space = _joint_space(base.space, _space(op)) or None
            base.closed = closed
        self.group_of[op] = base
        for e in self.consumers[op]:
            heapq.heappush(base.heap, (self.pos[e], id(e), e))
        return base

    def _absorb(self, base: _Group, g: _Group) -> None:
        """Moves the members of group `g` into `base`."""
        for m in g.members:
            self.group_of[m] = base
        base.members.extend(g.members)
        for item in g.heap:
            heapq.heappush(base.heap, item)
        base.last = max(base.last, g.last)
        if g.sens_first is not None:
            base.sens_first = g.sens_first if base.sens_first is None else min(base.sens_first, g.sens_first)
        for sp in g.stateful:
            bisect.insort(base.stateful, sp)
        base.has_red |= g.has_red
        base.has_stateful |= g.has_stateful
        base.space = _joint_space(base.space, g.space) or None


def _all_feed(prod: list[Operation], red: Operation, fed: set[Tensor]) -> bool:
    """True when every op of `prod` is an ancestor of `red` through `prod` (its prologue)."""
    s = set(prod)
    reach: set[Operation] = set()
    stack = [t.op for t in red.inputs if t.op in s and t not in fed]
    while stack:
        m = stack.pop()
        if m in reach:
            continue
        reach.add(m)
        stack.extend(t.op for t in m.inputs if t.op in s and t not in fed)
    return reach == s


# -- building the IR ------------------------------------------------------------------------------------


def canonical_attrs(op: Operation, names: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The attrs in `names` as plain, hashable data (DTypes become dtype names)."""
    res = []
    for n in names:
        if n not in op.attrs:
            continue
        v = op.attrs[n]
        if hasattr(v, "np") and hasattr(v, "name"):
            v = np.dtype(v.np).name
        elif isinstance(v, (list, tuple)):
            v = tuple(int(x) for x in v)
        elif isinstance(v, (np.integer, np.bool_)):
            v = v.item()
        res.append((n, v))
    return tuple(res)


def build_cluster(members: list[Operation], fed: set[Tensor], needed_outside: set[Tensor],
                  ref_updates: dict[str, tuple[tuple[int, ...], bool]],
                  attr_names: dict[str, tuple[str, ...]], backend: str = "cpu",
                  data_inputs: Any = None,
                  derived_attrs: Any = None) -> Cluster:
    """The IR of one cluster.

    `needed_outside`: tensors read by other steps or fetched. `ref_updates[op_type]`: (the ref input
    positions that an update op writes, whether it reads their current values); such an op gets one
    node per updated ref (attr ``slot`` = k, the k-th ref), whose args are the refs' current values
    (if read) followed by the op's other inputs, and whose value is stored into that variable.
    `attr_names[op_type]`: attrs that change the code; `derived_attrs(op)` adds computed ones.
    `data_inputs(op_type)`: the inputs that are iterated over (others only parameterize the op; None: all).
    """
    inputs: list[ClusterInput] = []
    input_ids: dict[Any, int] = {}
    value_of: dict[Tensor, tuple[str, int]] = {}
    raw: list[tuple[str, tuple[tuple[str, int], ...], str, int | None, tuple[tuple[str, Any], ...]]] = []
    node_ops: list[Operation] = []
    raw_outputs: list[tuple[int, Tensor | None, str | None]] = []

    def arg(t: Tensor) -> tuple[str, int]:
        if t in value_of and t not in fed:
            return value_of[t]
        if t not in input_ids:
            input_ids[t] = len(inputs)
            inputs.append(ClusterInput(t, np.dtype(t.dtype.np).name, t.shape.ndims))
        return ("i", input_ids[t])

    def var_arg(ref: Tensor) -> tuple[str, int]:
        key = ("var", ref.op.name)
        if key not in input_ids:
            input_ids[key] = len(inputs)
            inputs.append(ClusterInput(None, np.dtype(ref.dtype.np).name, ref.shape.ndims, var=ref.op.name))
        return ("i", input_ids[key])

    for op in members:
        upd = ref_updates.get(op.type)
        refs = upd[0] if upd is not None else None
        attrs = canonical_attrs(op, attr_names.get(op.type, ()))
        if derived_attrs is not None:
            attrs = attrs + tuple(derived_attrs(op) or ())
        op_inputs = list(op.inputs)
        iterated = data_inputs(op.type) if data_inputs is not None else None
        if iterated is not None:
            op_inputs = [op.inputs[i] for i in iterated]
        out_t = op.outputs[0] if op.outputs else None
        if refs is not None:
            assert upd is not None  # refs come from it
            args = tuple([var_arg(op.inputs[r]) for r in refs if upd[1]]
                         + [arg(t) for i, t in enumerate(op_inputs) if i not in refs])
            for k, r in enumerate(refs):
                ref = op.inputs[r]
                raw.append((op.type, args, np.dtype(ref.dtype.np).name, ref.shape.ndims, attrs + (("slot", k),)))
                node_ops.append(op)
                nid = len(raw) - 1
                provides = out_t if (k == 0 and out_t is not None and out_t in needed_outside
                                     and out_t not in fed) else None
                raw_outputs.append((nid, provides, ref.op.name))
                if k == 0 and out_t is not None:
                    value_of[out_t] = ("n", nid)
            continue
        args = tuple(arg(t) for t in op_inputs)
        assert out_t is not None
        raw.append((op.type, args, np.dtype(out_t.dtype.np).name, out_t.shape.ndims, attrs))
        node_ops.append(op)
        value_of[out_t] = ("n", len(raw) - 1)
        if out_t in needed_outside and out_t not in fed:
            raw_outputs.append((len(raw) - 1, out_t, None))
    n_in = len(inputs)

    def vid(ref: tuple[str, int]) -> int:
        return ref[1] if ref[0] == "i" else n_in + ref[1]

    nodes = [Node(t, tuple(vid(a) for a in args), dt, rank, attrs) for t, args, dt, rank, attrs in raw]
    outputs = [ClusterOutput(n, t, v) for n, t, v in sorted(raw_outputs, key=lambda o: o[0])]
    kind = REDUCTION if any(m.opdef.kind == registry.REDUCTION for m in members) else ELEMENTWISE
    return Cluster(list(members), inputs, nodes, outputs, kind, backend, node_ops)
