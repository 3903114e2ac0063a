"""`tf.train.QueueRunner` and `start_queue_runners`: threads that keep queues filled."""
from __future__ import annotations

import threading
from typing import Any

from jitflow import errors
from jitflow.framework.graph import GraphKeys, Operation, add_to_collection, get_default_graph


class QueueRunner:
    """Runs `enqueue_ops` in threads, one thread per op, until the input ends or a stop is requested."""

    def __init__(self, queue: Any = None, enqueue_ops: list[Operation] | None = None,
                 close_op: Operation | None = None, cancel_op: Operation | None = None,
                 queue_closed_exception_types: Any = None) -> None:
        if queue is None or not enqueue_ops:
            raise ValueError("QueueRunner needs a queue and enqueue_ops")
        self._queue = queue
        self._enqueue_ops = list(enqueue_ops)
        self._close_op = close_op if close_op is not None else queue.close()
        self._cancel_op = cancel_op if cancel_op is not None else queue.close(cancel_pending_enqueues=True)
        self._closed_types = tuple(queue_closed_exception_types or (errors.OutOfRangeError, errors.CancelledError))
        self._lock = threading.Lock()
        self._exceptions: list[BaseException] = []

    @property
    def queue(self) -> Any:
        return self._queue

    @property
    def enqueue_ops(self) -> list[Operation]:
        return list(self._enqueue_ops)

    @property
    def close_op(self) -> Operation:
        return self._close_op

    @property
    def cancel_op(self) -> Operation:
        return self._cancel_op

    @property
    def exceptions_raised(self) -> list[BaseException]:
        return list(self._exceptions)

    @property
    def name(self) -> str:
        return self._queue.name

    def _run(self, sess: Any, op: Operation, coord: Any, remaining: list[int]) -> None:
        decremented = False
        try:
            while not (coord is not None and coord.should_stop()):
                try:
                    sess.run(op)
                except self._closed_types:
                    with self._lock:
                        remaining[0] -= 1
                        decremented = True
                        if remaining[0] == 0:
                            self._close(sess)
                    return
        except RuntimeError:
            return  # the session was closed under this thread: nothing left to fill
        except Exception as e:  # noqa: BLE001 - reported to the coordinator, as TF does
            with self._lock:
                self._exceptions.append(e)
            if coord is not None:
                coord.request_stop(e)
            else:
                raise
        finally:
            if not decremented:
                with self._lock:
                    remaining[0] -= 1

    def _close(self, sess: Any) -> None:
        try:
            sess.run(self._close_op)
        except (RuntimeError, errors.OpError):
            pass

    def _cancel_on_stop(self, sess: Any, coord: Any) -> None:
        coord.wait_for_stop()
        try:
            sess.run(self._cancel_op)
        except (RuntimeError, errors.OpError):
            pass

    def create_threads(self, sess: Any, coord: Any = None, daemon: bool = False,
                       start: bool = False) -> list[threading.Thread]:
        """The enqueue threads (plus one closing the queue when `coord` stops), optionally started."""
        remaining = [len(self._enqueue_ops)]
        threads = [threading.Thread(target=self._run, args=(sess, op, coord, remaining), daemon=daemon,
                                    name=f"QueueRunnerThread-{self.name}-{op.name}") for op in self._enqueue_ops]
        if coord is not None:
            threads.append(threading.Thread(target=self._cancel_on_stop, args=(sess, coord), daemon=True,
                                            name=f"QueueRunnerCancel-{self.name}"))
        for t in threads:
            if coord is not None:
                coord.register_thread(t)
            if start:
                t.start()
        return threads


def add_queue_runner(qr: QueueRunner, collection: str = GraphKeys.QUEUE_RUNNERS) -> None:
    """Adds `qr` to the graph's queue runners (started by `start_queue_runners`)."""
    add_to_collection(collection, qr)


def start_queue_runners(sess: Any = None, coord: Any = None, daemon: bool = True, start: bool = True,
                        collection: str = GraphKeys.QUEUE_RUNNERS) -> list[threading.Thread]:
    """Starts the threads of every queue runner of the graph; returns them."""
    if sess is None:
        from jitflow.session import get_default_session

        sess = get_default_session()
        if sess is None:
            raise ValueError("Cannot start queue runners: No default session is registered.")
    graph = getattr(sess, "graph", get_default_graph())
    threads: list[threading.Thread] = []
    for qr in graph.get_collection(collection):
        threads.extend(qr.create_threads(sess, coord=coord, daemon=daemon, start=start))
    return threads
