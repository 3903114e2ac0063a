"""Loop state on the device: a `while_loop` on /gpu:N hands device arrays from one iteration to the next.

The body plan of a loop is built with ``device_fetches``: a loop value that a CUDA step produces is
fetched as its device array (not copied to the host), and the rewrite notes which feeds of each plan
may be given device arrays (``device_feeds``: every reader of the feed is a CUDA step, a shape query or
a pass-through to those) and which feeds CUDA steps read (``device_used``). The While kernel then feeds
each iteration's values as they are (`feed`), copies to the host only what a plan reads on the host,
uploads the loop's inputs and invariant captures that the device reads once per run (`upload`), and copies
the final values to the host when the loop ends (`to_host_all`). So the transfers of a run do not grow
with its iteration count, except for a condition computed on the device: its bool crosses once per
iteration (as TF's LoopCond does). Integer scalars, such as loop counters, stay on the host anyway
(`host_scalars`: TF keeps int32 tensors of GPU ops in host memory).

The gradient's backward loop (`ops/while_grad.py`) works the same way: its plan fetches device arrays,
the kept forward values are fed where they are, the incoming gradients go up once, and the gradients
of the captures are summed on the device (`add`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda  # (a GPU plan has imported it already: placement.gpu_count)

from jitflow import dtypes
from jitflow.compiler.gpu import runtime  # through the module: tests stand in for its functions
from jitflow.compiler.gpu.memory import flat
from jitflow.compiler.gpu.runtime import c_order, is_device_array, launch_guard
from jitflow.compiler.plan import Plan
from jitflow.framework.graph import Operation, Tensor

_HOST_DTYPES = (dtypes.int32, dtypes.bool)
_SHAPE_ONLY = ("Shape", "Size", "Rank")


def host_scalars(members: list[Operation]) -> bool:
    """True when every value a cluster reads and writes is an int32 (or bool) scalar: it runs on the host.

    TF keeps the int32 tensors of GPU kernels in host memory; here this keeps loop counters and their
    conditions off the device, where each would cost a launch and a copy per iteration.
    """
    ts = [t for m in members for t in list(m.inputs) + list(m.outputs)]
    return bool(ts) and all(t.dtype in _HOST_DTYPES and t.shape.as_tuple() == () for t in ts)


def kept_on_device(plan: Plan, step: Any, outs: list[Tensor | None], fetched: set[Tensor]) -> list[bool]:
    """Per output of a CUDA step: fetched as a device array (plans with ``device_fetches`` only).

    A variable's new value is fetched from the host: its device array may be updated in place later.
    """
    if not plan.device_fetches:
        return [False] * len(outs)
    stores = step.stores if step.kind == "cluster" else [None] * len(outs)  # only clusters assign
    return [t is not None and t in fetched and v is None for t, v in zip(outs, stores)]


def note_device_feeds(plan: Plan, readers: dict[Tensor, set[Operation]], dev_readers: set[Operation],
                      gpu_ops: set[Operation]) -> None:
    """Records which feeds of `plan` may be device arrays, and which ones CUDA steps read."""
    by_slot = {s: t for t, s in plan.slots.items()}
    fetched = set(plan.fetch_slots)
    ok, used = set(), set()
    for k, s in enumerate(plan.feed_slots):
        t = by_slot[s]
        rs = readers.get(t, set())
        if rs <= dev_readers and (s not in fetched or plan.device_fetches):
            ok.add(k)
        if rs & gpu_ops or any(r in dev_readers and r.type not in _SHAPE_ONLY for r in rs):
            used.add(k)  # read by a CUDA step, or passed to one (a reshape, say)
    plan.device_feeds = frozenset(ok)
    plan.device_used = frozenset(used)
    if plan.device_fetches:  # for explain: the loop values that stay on the device between iterations
        plan.report["loop_state"] = [t.name for t, s in plan.slots.items() if s in fetched and t.op in gpu_ops]


def _host_plan_feeds(plan: Plan) -> None:
    """A plan without CUDA steps (a condition on the host, say) takes anything for the feeds it never reads."""
    read = {t for op in plan.ops for t in op.inputs}
    by_slot = {s: t for t, s in plan.slots.items()}
    fetched = set(plan.fetch_slots)
    plan.device_feeds = frozenset(k for k, s in enumerate(plan.feed_slots)
                                  if by_slot[s] not in read and s not in fetched)


def feed(plan: Plan, values: list[Any]) -> list[Any]:
    """`values` to feed to `plan`: device arrays where it takes them, host copies elsewhere."""
    ok = plan.device_feeds
    return [runtime.to_host(v) if k not in ok and is_device_array(v) else v for k, v in enumerate(values)]


def upload(plans: list[Plan], values: list[Any], first: int, done: dict[int, Any]) -> list[Any]:
    """`values` (feeds `first`, `first` + 1, ... of every plan) on the device where a plan's CUDA steps read
    them and every plan takes a device array: one upload per run, instead of one per iteration and reader.
    `done` maps id(host array) to its device copy, so an array fed twice goes up once."""
    out = list(values)
    for k, v in enumerate(values):
        i = first + k
        if type(v) is np.ndarray and any(i in p.device_used for p in plans) \
                and all(i in p.device_feeds for p in plans):
            dev = done.get(id(v))
            if dev is None:
                dev = done[id(v)] = runtime.cuda_api().to_device(c_order(v))
            out[k] = dev
    return out


def to_host_all(values: list[Any]) -> list[Any]:
    """Host copies of the device arrays among `values` (what leaves the loop)."""
    return [runtime.to_host(v) if is_device_array(v) else v for v in values]


def add_arrays(a, b, out):  # type: ignore[no-untyped-def]
    """out = a + b over flat device arrays (compiled for the device on first use; one thread per element)."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] + b[i]


_add_kernel: Any = None


def add(a: Any, b: Any, owned: bool) -> Any:
    """a + b on the device (a gradient loop's sums): into `a` when `owned` (an array the loop made)."""
    global _add_kernel
    api = runtime.cuda_api()
    if not is_device_array(a):
        a = api.to_device(c_order(np.asarray(a)))
        owned = True
    if not is_device_array(b):
        b = api.to_device(c_order(np.asarray(b)))
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return runtime.to_host(a) + runtime.to_host(b)  # (not seen in practice: NumPy's broadcasting rules)
    out = a if owned else api.device_array(a.shape, a.dtype)
    if _add_kernel is None:
        _add_kernel = api.jit(add_arrays)
    n = int(a.size)
    if n:
        with launch_guard():
            _add_kernel[(n + 255) // 256, 256](flat(a), flat(b), flat(out))
    return out


def on_device(plan: Plan) -> bool:
    """True when `plan` has CUDA steps that hand over device arrays (else the loop runs as on the CPU)."""
    return bool(plan.device_feeds or plan.device_used) and plan.device_fetches


def run_loop(ctx: Any, body: Any, vals: list[Any], caps: list[Any], max_iter: int, truth: Any) -> tuple:
    """The While kernel's loop with values left on the device between iterations (see the module doc).

    `body` is the loop's `LoopBody`; `truth(v)` reads the condition's value. Returns what the While kernel
    returns: the final values (host arrays) and the history the gradient needs (or None).
    """
    from jitflow.compiler.execute import execute

    n = body.n
    cond_plan, body_plan = body.plan(ctx, "cond"), body.plan(ctx, "body")
    for plan in (cond_plan, body_plan):
        if not (plan.device_feeds or plan.device_used):
            _host_plan_feeds(plan)
    done: dict[int, Any] = {}
    caps = upload([cond_plan, body_plan], caps, n, done)
    vals = upload([cond_plan, body_plan], vals, 0, done)
    record = body.saved is not None
    iters: list[tuple[list, list]] = []
    i = 0
    while i != max_iter and truth(execute(cond_plan, ctx, feed(cond_plan, vals + caps))[0]):
        res = execute(body_plan, ctx, feed(body_plan, vals + caps))
        if record:
            iters.append((vals, res[n:]))  # device arrays stay where they are: the gradient loop feeds them
        vals = res[:n]
        i += 1
    return (*to_host_all(vals), (caps, iters) if record else None)
