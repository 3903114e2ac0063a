"""Queue-based input (TF before tf.data): input producers and `batch`/`shuffle_batch`.

Each function builds a queue, an enqueue op and a QueueRunner registered in the graph's
QUEUE_RUNNERS collection; `tf.train.start_queue_runners` starts their threads.
"""
from __future__ import annotations

from typing import Any

from jitflow import dtypes, errors
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph, name_scope
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops import array_ops, random_ops
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.data_flow_ops import FIFOQueue, QueueBase, RandomShuffleQueue
from jitflow.train.queue_runner import QueueRunner, add_queue_runner


class _EpochCount:
    """How many times a LimitEpochs op has passed its input on, in one session."""

    def __init__(self) -> None:
        self.n = 0

    def close(self) -> None:
        """Nothing to release."""


def _limit_epochs_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    res = getattr(ctx, "resources", None)
    if res is None:
        res = ctx.__dict__.setdefault("resources", {})
    count = res.setdefault("epochs:" + op.name, _EpochCount())
    if count.n >= op.attrs["num_epochs"]:
        raise errors.OutOfRangeError(op.node_def, op, f"Reached limit of {op.attrs['num_epochs']}")
    count.n += 1
    return ins[0]


registry.register_op("LimitEpochs", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)], _limit_epochs_kernel,
                     registry.STATEFUL, not_differentiable=True)


def limit_epochs(tensor: Any, num_epochs: int | None = None, name: str | None = None) -> Tensor:
    """`tensor` the first `num_epochs` times it is evaluated, then OutOfRangeError."""
    t = convert_to_tensor(tensor)
    if num_epochs is None:
        return t
    if num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0 not {num_epochs}.")
    return get_default_graph().create_op("LimitEpochs", [t], {"num_epochs": int(num_epochs)},
                                         name=name or "limit_epochs").outputs[0]


def input_producer(input_tensor: Any, element_shape: Any = None, num_epochs: int | None = None,
                   shuffle: bool = True, seed: int | None = None, capacity: int = 32,
                   shared_name: str | None = None, summary_name: str | None = None, name: str | None = None,
                   cancel_op: Any = None) -> QueueBase:
    """A queue filled with the rows of `input_tensor` (shuffled), `num_epochs` times or forever."""
    with name_scope(name, "input_producer"):
        t = convert_to_tensor(input_tensor)
        t = limit_epochs(t, num_epochs)
        if shuffle:
            t = random_ops.random_shuffle(t, seed=seed)
        shape = element_shape if element_shape is not None else \
            (TensorShape(t.shape.as_list()[1:]) if t.shape.ndims else None)
        q = FIFOQueue(capacity, [t.dtype], shapes=[shape] if shape is not None else None, shared_name=shared_name)
        add_queue_runner(QueueRunner(q, [q.enqueue_many([t])], cancel_op=cancel_op))
        return q


def string_input_producer(string_tensor: Any, num_epochs: int | None = None, shuffle: bool = True,
                          seed: int | None = None, capacity: int = 32, shared_name: str | None = None,
                          name: str | None = None, cancel_op: Any = None) -> QueueBase:
    """A queue of file names (or any strings) for a reader."""
    t = convert_to_tensor(string_tensor, dtype=dtypes.string)
    if t.shape.ndims is not None and t.shape.ndims != 1:
        raise ValueError(f"string_input_producer expects a vector of strings, got shape {t.shape}")
    if t.shape.ndims == 1 and t.shape.as_list()[0] == 0:
        raise ValueError("string_input_producer requires a non-null input tensor")
    return input_producer(t, [], num_epochs, shuffle, seed, capacity, shared_name, None,
                          name or "input_producer", cancel_op)


def range_input_producer(limit: Any, num_epochs: int | None = None, shuffle: bool = True,
                         seed: int | None = None, capacity: int = 32, shared_name: str | None = None,
                         name: str | None = None) -> QueueBase:
    """A queue of the integers 0 .. limit-1."""
    with name_scope(name, "input_producer"):
        rng = array_ops.range(limit)
        return input_producer(rng, [], num_epochs, shuffle, seed, capacity, shared_name, None, None)


def slice_input_producer(tensor_list: Any, num_epochs: int | None = None, shuffle: bool = True,
                         seed: int | None = None, capacity: int = 32, shared_name: str | None = None,
                         name: str | None = None) -> list[Tensor]:
    """One row of every tensor in `tensor_list` per evaluation (the same row of each)."""
    with name_scope(name, "input_producer"):
        ts = [convert_to_tensor(t) for t in tensor_list]
        if not ts:
            raise ValueError("Expected at least one tensor in slice_input_producer().")
        n = ts[0].shape.as_list()[0] if ts[0].shape.ndims else None
        for t in ts[1:]:
            m = t.shape.as_list()[0] if t.shape.ndims else None
            if n is not None and m is not None and m != n:
                raise ValueError(f"Dimension 0 in both shapes must be equal, but are {n} and {m}")
        limit = n if n is not None else array_ops.shape(ts[0])[0]
        q = range_input_producer(limit, num_epochs, shuffle, seed, capacity, shared_name)
        index = q.dequeue()
        return [array_ops.gather(t, index) for t in ts]


def _flatten(tensors: Any) -> tuple[list[Tensor], Any]:
    if isinstance(tensors, dict):
        keys = sorted(tensors)
        return [convert_to_tensor(tensors[k]) for k in keys], ("dict", keys)
    if isinstance(tensors, (list, tuple)):
        return [convert_to_tensor(t) for t in tensors], ("list", None)
    return [convert_to_tensor(tensors)], ("single", None)


def _unflatten(outs: Any, how: Any) -> Any:
    outs = outs if isinstance(outs, list) else [outs]
    kind, keys = how
    if kind == "dict":
        return dict(zip(keys, outs))
    return outs[0] if kind == "single" else list(outs)


def _shapes(ts: list[Tensor], shapes: Any, enqueue_many: bool, dynamic_pad: bool) -> list[TensorShape]:
    if shapes is not None:
        return [TensorShape(s) if not isinstance(s, TensorShape) else s for s in shapes]
    out = []
    for t in ts:
        s = t.shape
        if enqueue_many:
            s = TensorShape(None) if s.ndims is None else TensorShape(s.as_list()[1:])
        if not s.is_fully_defined() and not dynamic_pad:
            raise ValueError(f"All shapes must be fully defined: {[str(t.shape) for t in ts]}")
        out.append(s)
    return out


def _batch(queue: QueueBase, ts: list[Tensor], how: Any, batch_size: Any, num_threads: int, enqueue_many: bool,
           allow_smaller_final_batch: bool) -> Any:
    enq = queue.enqueue_many(ts) if enqueue_many else queue.enqueue(ts)
    add_queue_runner(QueueRunner(queue, [enq] * int(num_threads)))
    out = queue.dequeue_up_to(batch_size) if allow_smaller_final_batch else queue.dequeue_many(batch_size)
    return _unflatten(out, how)


def batch(tensors: Any, batch_size: Any, num_threads: int = 1, capacity: int = 32, enqueue_many: bool = False,
          shapes: Any = None, dynamic_pad: bool = False, allow_smaller_final_batch: bool = False,
          shared_name: str | None = None, name: str | None = None) -> Any:
    """Batches of `batch_size` of `tensors`, filled by `num_threads` queue-runner threads."""
    with name_scope(name, "batch"):
        ts, how = _flatten(tensors)
        q = FIFOQueue(capacity, [t.dtype for t in ts], _shapes(ts, shapes, enqueue_many, dynamic_pad),
                      shared_name=shared_name)
        return _batch(q, ts, how, batch_size, num_threads, enqueue_many, allow_smaller_final_batch)


def shuffle_batch(tensors: Any, batch_size: Any, capacity: int, min_after_dequeue: int, num_threads: int = 1,
                  seed: int | None = None, enqueue_many: bool = False, shapes: Any = None,
                  allow_smaller_final_batch: bool = False, shared_name: str | None = None,
                  name: str | None = None) -> Any:
    """Batches drawn at random from a buffer of at least `min_after_dequeue` elements."""
    with name_scope(name, "shuffle_batch"):
        ts, how = _flatten(tensors)
        q = RandomShuffleQueue(capacity, min_after_dequeue, [t.dtype for t in ts],
                               _shapes(ts, shapes, enqueue_many, False), seed=seed, shared_name=shared_name)
        return _batch(q, ts, how, batch_size, num_threads, enqueue_many, allow_smaller_final_batch)
