"""Queues: FIFOQueue and RandomShuffleQueue, their graph ops, and their per-session state.

A queue's elements live in the session (`Session.resources`), guarded by a condition variable. Enqueue
blocks while the queue is full, dequeue while it has too few elements; a closed queue ends dequeues
with OutOfRangeError once drained, and closing the session cancels every blocked op (CancelledError).
"""
from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape, as_shape, shape_str
from jitflow.ops.constant_op import convert_to_tensor

_WAIT = 0.05  # seconds between checks of the session's state while blocked


class QueueState:
    """The elements of one queue in one session."""

    def __init__(self, attrs: dict[str, Any], ctx: Any = None) -> None:
        self.ctx = ctx
        self.name = attrs["queue"]
        self.capacity = attrs["capacity"]
        self.min_after = attrs.get("min_after_dequeue", 0)
        self.shuffle = attrs["kind"] == "RandomShuffleQueue"
        self.kind = attrs["kind"]
        seed, seed2 = attrs.get("seeds", (None, None))
        self.rng = np.random.default_rng(None if seed is None else [seed, seed2 or 0])
        self.items: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.cancelled = False

    def close(self) -> None:
        """Session closed: wake and cancel every blocked op."""
        with self.cond:
            self.cancelled = True
            self.closed = True
            self.cond.notify_all()

    def _check_cancelled(self, op: Operation) -> None:
        if self.cancelled or getattr(self.ctx, "_closed", False):
            raise errors.CancelledError(op.node_def, op, f"{self.kind} '{self.name}' was cancelled (session closed)")

    def put(self, op: Operation, elements: list[list[np.ndarray]]) -> None:
        with self.cond:
            for el in elements:
                while True:
                    self._check_cancelled(op)
                    if self.closed:
                        raise errors.CancelledError(op.node_def, op, f"{self.kind} '{self.name}' is closed.")
                    if self.capacity < 0 or len(self.items) < self.capacity:
                        break
                    self.cond.wait(_WAIT)
                self.items.append(el)
                self.cond.notify_all()

    def take(self, op: Operation, n: int, up_to: bool) -> list[list[np.ndarray]]:
        with self.cond:
            while True:
                self._check_cancelled(op)
                have = len(self.items)
                if self.closed:
                    if have >= n or (up_to and have > 0):
                        break
                    raise errors.OutOfRangeError(op.node_def, op, f"{self.kind} '{self.name}' is closed and has "
                                                 f"insufficient elements (requested {n}, current size {have})")
                if have >= n + (self.min_after if self.shuffle else 0):
                    break
                self.cond.wait(_WAIT)
            out = [self._pop() for _ in range(min(n, len(self.items)))]
            self.cond.notify_all()
            return out

    def _pop(self) -> list[np.ndarray]:
        if self.shuffle:
            i = int(self.rng.integers(len(self.items)))
            self.items.rotate(-i)
            el = self.items.popleft()
            self.items.rotate(i)
            return el
        return self.items.popleft()


def _state(ctx: Any, op: Operation) -> QueueState:
    return queue_state(ctx, op.attrs)


def queue_state(ctx: Any, attrs: dict[str, Any]) -> QueueState:
    """The session's state of the queue that `attrs` (a queue op's attributes) describe."""
    res = getattr(ctx, "resources", None)
    if res is None:
        res = ctx.__dict__.setdefault("resources", {})
    key = "queue:" + attrs["queue"]
    st = res.get(key)
    if st is None:
        st = res.setdefault(key, QueueState(attrs, ctx))
    return st


def _check_component(op: Operation, i: int, v: np.ndarray, shape: TensorShape, many: bool) -> None:
    want = shape if not many else TensorShape([None]).concatenate(shape) if shape.ndims is not None else shape
    if not want.is_compatible_with(v.shape):
        raise errors.InvalidArgumentError(op.node_def, op, f"Shape mismatch in tuple component {i}. Expected "
                                                           f"{shape_str(want.as_tuple())}, got {shape_str(v.shape)}")


def _enqueue_kernel(ctx: Any, op: Operation, ins: list) -> None:
    many = op.attrs["many"]
    shapes = op.attrs["shapes"]
    arrays = [np.asarray(v) for v in ins]
    for i, (v, s) in enumerate(zip(arrays, shapes)):
        _check_component(op, i, v, s, many)
    if many:
        n = len(arrays[0]) if arrays and arrays[0].ndim else 0
        if any(a.ndim == 0 or len(a) != n for a in arrays):
            raise errors.InvalidArgumentError(op.node_def, op, "All components of enqueue_many must have the same "
                                                               "size in dimension 0")
        elements = [[a[k] for a in arrays] for k in range(n)]
    else:
        elements = [arrays]
    _state(ctx, op).put(op, elements)


def _dequeue_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    mode = op.attrs["mode"]
    n = 1 if mode == "one" else int(ins[0])
    if n < 0:
        raise errors.InvalidArgumentError(op.node_def, op, f"Dequeue count must be non-negative, got {n}")
    els = _state(ctx, op).take(op, n, mode == "up_to")
    types = op.attrs["component_types"]
    if mode == "one":
        out = [np.asarray(v, dtype=t.np) for v, t in zip(els[0], types)]
    else:
        out = [np.stack([el[i] for el in els]).astype(t.np, copy=False) if els else
               np.zeros((0,) + tuple(d or 0 for d in (op.attrs["shapes"][i].as_tuple() or ())), t.np)
               for i, t in enumerate(types)]
    return out[0] if len(out) == 1 else tuple(out)


def _close_kernel(ctx: Any, op: Operation, ins: list) -> None:
    st = _state(ctx, op)
    with st.cond:
        st.closed = True
        if op.attrs["cancel_pending_enqueues"]:
            st.cancelled = False
        st.cond.notify_all()


def _dequeue_infer(op: Operation) -> list:
    mode = op.attrs["mode"]
    out = []
    for t, s in zip(op.attrs["component_types"], op.attrs["shapes"]):
        if mode == "one":
            out.append((t, s))
        else:
            n = op.attrs.get("static_n") if mode == "many" else None
            out.append((t, TensorShape([n]).concatenate(s) if s.ndims is not None else TensorShape(None)))
    return out


registry.register_op("QueueEnqueueV2", lambda op: [], _enqueue_kernel, registry.STATEFUL)
registry.register_op("QueueDequeueV2", _dequeue_infer, _dequeue_kernel, registry.STATEFUL)
registry.register_op("QueueCloseV2", lambda op: [], _close_kernel, registry.STATEFUL)
registry.register_op("QueueSizeV2", lambda op: [(dtypes.int32, TensorShape([]))],
                     lambda ctx, op, ins: np.int32(len(_state(ctx, op).items)), registry.STATEFUL)
registry.register_op("QueueIsClosedV2", lambda op: [(dtypes.bool, TensorShape([]))],
                     lambda ctx, op, ins: np.bool_(_state(ctx, op).closed), registry.STATEFUL)


def _one_shape(shapes: Any) -> bool:
    """Whether `shapes` is one shape ([], [2, 3], TensorShape) rather than a list of them (TF's rule)."""
    if isinstance(shapes, TensorShape) or not isinstance(shapes, (list, tuple)):
        return True
    return not shapes or shapes[0] is None or isinstance(shapes[0], (int, np.integer)) or \
        type(shapes[0]).__name__ == "Dimension"


class QueueBase:
    """A queue of tuples of tensors, shared by every session run of this graph's session."""

    _kind = "FIFOQueue"

    def __init__(self, capacity: int, dtypes_: Any, shapes: Any = None, names: Any = None,
                 shared_name: str | None = None, name: str = "fifo_queue", extra: dict | None = None) -> None:
        single = not isinstance(dtypes_, (list, tuple))
        self._dtypes = [dtypes.as_dtype(d) for d in ([dtypes_] if single else dtypes_)]
        if shapes is None:
            self._shapes = [TensorShape(None)] * len(self._dtypes)
        else:
            shapes = [shapes] if _one_shape(shapes) else list(shapes)
            if len(shapes) != len(self._dtypes):
                raise ValueError(f"Queue shapes must have the same length as dtypes: {len(shapes)} vs "
                                 f"{len(self._dtypes)}")
            self._shapes = [as_shape(s) for s in shapes]
        self._names = list(names) if names is not None else None
        g = get_default_graph()
        self._name = shared_name or g.unique_name(name)
        self._attrs = {"queue": self._name, "capacity": int(capacity), "kind": self._kind,
                       "component_types": self._dtypes, "shapes": self._shapes, **(extra or {})}

    @property
    def name(self) -> str:
        return self._name

    @property
    def dtypes(self) -> list[dtypes.DType]:
        return list(self._dtypes)

    @property
    def shapes(self) -> list[TensorShape]:
        return list(self._shapes)

    @property
    def names(self) -> Any:
        return self._names

    @property
    def queue_ref(self) -> QueueBase:
        """The queue itself (readers take it where TF passes the queue's handle)."""
        return self

    def _op(self, op_type: str, inputs: list[Tensor], name: str, **attrs: Any) -> Operation:
        return get_default_graph().create_op(op_type, inputs, {**self._attrs, **attrs}, name=name)

    def _components(self, vals: Any) -> list[Tensor]:
        if isinstance(vals, dict):
            if self._names is None:
                raise ValueError("Queue must have names to enqueue a dictionary")
            vals = [vals[k] for k in self._names]
        elif not isinstance(vals, (list, tuple)):
            vals = [vals]
        if len(vals) != len(self._dtypes):
            raise ValueError(f"Expected {len(self._dtypes)} components to enqueue, got {len(vals)}")
        out = []
        for v, dt in zip(vals, self._dtypes):
            t = convert_to_tensor(v, dtype=dt)
            if t.dtype != dt:
                raise TypeError(f"Queue component dtype {dt.name} does not match value of dtype {t.dtype.name}")
            out.append(t)
        return out

    def enqueue(self, vals: Any, name: str | None = None) -> Operation:
        """Adds one element (blocks while the queue is full)."""
        return self._op("QueueEnqueueV2", self._components(vals), name or "enqueue", many=False)

    def enqueue_many(self, vals: Any, name: str | None = None) -> Operation:
        """Adds the slices of `vals` along dimension 0 as elements."""
        return self._op("QueueEnqueueV2", self._components(vals), name or "enqueue_many", many=True)

    def _pack(self, outs: list[Tensor]) -> Any:
        if self._names is not None:
            return dict(zip(self._names, outs))
        return outs[0] if len(outs) == 1 else list(outs)

    def dequeue(self, name: str | None = None) -> Any:
        """Removes one element (blocks until there is one; OutOfRangeError once closed and empty)."""
        return self._pack(list(self._op("QueueDequeueV2", [], name or "dequeue", mode="one").outputs))

    def dequeue_many(self, n: Any, name: str | None = None) -> Any:
        """Removes `n` elements, stacked."""
        nt = convert_to_tensor(n, dtype=dtypes.int32)
        static = int(n) if isinstance(n, (int, np.integer)) else None
        return self._pack(list(self._op("QueueDequeueV2", [nt], name or "dequeue_many", mode="many",
                                        static_n=static).outputs))

    def dequeue_up_to(self, n: Any, name: str | None = None) -> Any:
        """Removes `n` elements, or what is left of a closed queue."""
        nt = convert_to_tensor(n, dtype=dtypes.int32)
        return self._pack(list(self._op("QueueDequeueV2", [nt], name or "dequeue_up_to", mode="up_to").outputs))

    def close(self, cancel_pending_enqueues: bool = False, name: str | None = None) -> Operation:
        """Closes the queue: no more enqueues; dequeues drain it, then raise OutOfRangeError."""
        return self._op("QueueCloseV2", [], name or "close", cancel_pending_enqueues=bool(cancel_pending_enqueues))

    def size(self, name: str | None = None) -> Tensor:
        return self._op("QueueSizeV2", [], name or "size").outputs[0]

    def is_closed(self, name: str | None = None) -> Tensor:
        return self._op("QueueIsClosedV2", [], name or "is_closed").outputs[0]


class FIFOQueue(QueueBase):
    """`tf.FIFOQueue`: elements in the order they were enqueued."""

    def __init__(self, capacity: int, dtypes: Any, shapes: Any = None, names: Any = None,  # noqa: A002
                 shared_name: str | None = None, name: str = "fifo_queue") -> None:
        super().__init__(capacity, dtypes, shapes, names, shared_name, name)


class RandomShuffleQueue(QueueBase):
    """`tf.RandomShuffleQueue`: dequeues a random element, keeping `min_after_dequeue` until closed."""

    _kind = "RandomShuffleQueue"

    def __init__(self, capacity: int, min_after_dequeue: int, dtypes: Any, shapes: Any = None,  # noqa: A002
                 names: Any = None, seed: int | None = None, shared_name: str | None = None,
                 name: str = "random_shuffle_queue") -> None:
        from jitflow.ops.random_ops import get_seed

        super().__init__(capacity, dtypes, shapes, names, shared_name, name,
                         {"min_after_dequeue": int(min_after_dequeue), "seeds": tuple(get_seed(seed))})
