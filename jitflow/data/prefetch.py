"""Work ahead of the consumer on threads: `prefetch` and parallel `map`.

A training step calls `get_next()` and should find its element ready: `prefetch(n)` keeps up to n
elements produced by a worker thread (the whole upstream pipeline runs there), and `map` with
`num_parallel_calls` runs the traced function for several elements at once, keeping their order.
Every worker watches the iterator's stop event, so closing the session (or re-initializing the
iterator) ends it.
"""
from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from jitflow.data.dataset_ops import Dataset, Element, Env, as_int, read_int, tensor_captures
from jitflow.framework.graph import Tensor

_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class PrefetchDataset(Dataset):
    """`prefetch`: a worker thread fills a bounded queue of ready elements."""

    def __init__(self, input_ds: Dataset, buffer_size: Any) -> None:
        self._input = input_ds
        self._size = as_int(buffer_size, "buffer_size")
        self._copy_signature(input_ds)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(self._size)

    def _iterate(self, env: Env) -> Iterator[Element]:
        size = read_int(env, self._size)
        q: queue.Queue = queue.Queue(maxsize=max(size, 1) if size >= 0 else 2)
        done = threading.Event()  # this pass ended early (consumer gone): the worker stops too
        worker = threading.Thread(target=_fill, args=(self._input._iterate(env), q, env.stop, done),
                                  name="jitflow-prefetch", daemon=True)
        env.threads.append(worker)
        worker.start()
        try:
            while True:
                item = _get(q, env.stop)
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.exc
                yield item
        finally:
            done.set()


def _put(q: queue.Queue, item: Any, stop: threading.Event, done: threading.Event) -> bool:
    while not (stop.is_set() or done.is_set()):
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            if stop.is_set():
                return _END


def _fill(source: Iterator[Element], q: queue.Queue, stop: threading.Event, done: threading.Event) -> None:
    try:
        for el in source:
            if not _put(q, el, stop, done):
                return
        _put(q, _END, stop, done)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
        _put(q, _Failed(e), stop, done)


def parallel_map(env: Env, inputs: Iterator[Element], call: Callable[[Element], Element],
                 n: int) -> Iterator[Element]:
    """`call` over `inputs` on `n` threads, up to 2n in flight, results in input order."""
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="jitflow-map")
    pending: collections.deque[Future] = collections.deque()
    try:
        for el in inputs:
            pending.append(pool.submit(call, el))
            if len(pending) >= 2 * n:
                yield pending.popleft().result()
            if env.stop.is_set():
                return
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=False)
