"""`tf.train.Supervisor`: TF 1.x's training helper (`managed_session`, `should_stop`, services).

The session is prepared as TF's SessionManager does it: restored from the latest checkpoint in
`logdir` when there is one (max_to_keep then spans restarts), else initialized. The standard services
run in background threads while the session is managed: a checkpoint every `save_model_secs`, the
summary op every `save_summaries_secs` (each also writes `global_step/sec`), with TF's session-log
START and CHECKPOINT events. An `OutOfRangeError` inside `managed_session` ends training cleanly.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from jitflow import errors
from jitflow.framework.graph import GraphKeys, get_default_graph
from jitflow.summary_events import SessionLog

logger_name = "jitflow.train"


class _Coordinator:
    """The stop flag and the service threads of a Supervisor (TF's Coordinator, the parts it uses)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._exc: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def request_stop(self, ex: BaseException | None = None) -> None:
        if ex is not None and self._exc is None and not isinstance(ex, errors.OutOfRangeError):
            self._exc = ex
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def clear_stop(self) -> None:
        self._stop.clear()
        self._exc = None

    def join(self, threads: Any = None, stop_grace_period_secs: float = 120) -> None:
        """Waits for the threads; re-raises an exception a thread reported."""
        for t in list(threads or self.threads):
            t.join(stop_grace_period_secs)
        self.threads = []
        if self._exc is not None:
            exc, self._exc = self._exc, None
            raise exc


class _Looper(threading.Thread):
    """Calls `fn()` now and then every `interval` seconds until the coordinator stops (TF's LooperThread)."""

    def __init__(self, coord: _Coordinator, interval: float, fn: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._coord, self._interval, self._fn = coord, interval, fn

    def run(self) -> None:
        try:
            while not self._coord.should_stop():
                self._fn()
                if self._coord.wait_for_stop(self._interval):
                    break
        except Exception as e:  # noqa: BLE001 - reported to the training loop through the coordinator
            self._coord.request_stop(e)


_USE_DEFAULT = 0


class Supervisor:
    """Creates a session ready to train, with checkpoints and summaries saved in the background."""

    USE_DEFAULT = _USE_DEFAULT

    def __init__(self, graph: Any = None, ready_op: Any = _USE_DEFAULT, ready_for_local_init_op: Any = _USE_DEFAULT,
                 is_chief: bool = True, init_op: Any = _USE_DEFAULT, init_feed_dict: Any = None,
                 local_init_op: Any = _USE_DEFAULT, logdir: str | None = None, summary_op: Any = _USE_DEFAULT,
                 saver: Any = _USE_DEFAULT, global_step: Any = _USE_DEFAULT, save_summaries_secs: float = 120,
                 save_model_secs: float = 600, recovery_wait_secs: float = 30, stop_grace_secs: float = 120,
                 checkpoint_basename: str = "model.ckpt", session_manager: Any = None,
                 summary_writer: Any = _USE_DEFAULT, init_fn: Callable[[Any], None] | None = None,
                 local_init_run_options: Any = None) -> None:
        self._graph = graph if graph is not None else get_default_graph()
        with self._graph.as_default():
            self._init_defaults(init_op, ready_op, local_init_op, saver, summary_op, global_step)
        self._is_chief = is_chief
        self._init_feed_dict = init_feed_dict
        self._init_fn = init_fn
        self._logdir = logdir
        self._save_summaries_secs = save_summaries_secs
        self._save_model_secs = save_model_secs
        self._stop_grace_secs = stop_grace_secs
        self._save_path = os.path.join(logdir, checkpoint_basename) if logdir else None
        self._summary_writer = self._make_writer(summary_writer)
        self._coord = _Coordinator()
        with self._graph.as_default():
            self._scaffold = self._make_scaffold().finalize()
        self._graph.finalize()  # as TF: the training loop cannot add ops by accident

    def _make_scaffold(self) -> Any:
        """The session's init and ready ops, as a Scaffold (built before the graph is finalized)."""
        from jitflow.train.monitored_session import Scaffold

        user_fn = self._init_fn
        init_fn = (lambda scaffold, sess: user_fn(sess)) if user_fn is not None else None
        return Scaffold(init_op=self._init_op, init_feed_dict=self._init_feed_dict, init_fn=init_fn,
                        ready_op=self._ready_op, local_init_op=self._local_init_op, saver=self._saver)

    def _init_defaults(self, init_op: Any, ready_op: Any, local_init_op: Any, saver: Any, summary_op: Any,
                       global_step: Any) -> None:
        from jitflow.summary import merge_all
        from jitflow.train.saver import Saver
        from jitflow.train.training_util import get_global_step
        from jitflow.variables import global_variables_initializer, report_uninitialized_variables

        g = self._graph

        def pick(value: Any, key: str, make: Callable[[], Any] | None) -> Any:
            if value is not _USE_DEFAULT:
                return value
            found = g.get_collection(key)
            if found:
                return found[0]
            made = make() if make is not None else None
            if made is not None:  # as TF: a later Supervisor on this graph finds it
                g.add_to_collection(key, made)
            return made

        self._init_op = pick(init_op, GraphKeys.INIT_OP, global_variables_initializer)
        self._ready_op = pick(ready_op, GraphKeys.READY_OP, report_uninitialized_variables)
        self._local_init_op = pick(local_init_op, GraphKeys.LOCAL_INIT_OP, None)
        self._saver = pick(saver, GraphKeys.SAVERS, Saver)
        self._summary_op = pick(summary_op, GraphKeys.SUMMARY_OP, merge_all)
        self._global_step = get_global_step(g) if global_step is _USE_DEFAULT else global_step

    def _make_writer(self, summary_writer: Any) -> Any:
        if summary_writer is not _USE_DEFAULT:
            return summary_writer
        if not (self._is_chief and self._logdir):
            return None
        from jitflow.summary import FileWriter

        return FileWriter(self._logdir, self._graph)

    # -- properties (TF's names) --------------------------------------------------------------------------------
    is_chief = property(lambda self: self._is_chief)
    coord = property(lambda self: self._coord)
    init_op = property(lambda self: self._init_op)
    init_feed_dict = property(lambda self: self._init_feed_dict)
    ready_op = property(lambda self: self._ready_op)
    summary_op = property(lambda self: self._summary_op)
    summary_writer = property(lambda self: self._summary_writer)
    saver = property(lambda self: self._saver)
    global_step = property(lambda self: self._global_step)
    save_path = property(lambda self: self._save_path)
    save_summaries_secs = property(lambda self: self._save_summaries_secs)
    save_model_secs = property(lambda self: self._save_model_secs)

    # -- sessions -----------------------------------------------------------------------------------------------
    def prepare_or_wait_for_session(self, master: str = "", config: Any = None, wait_for_checkpoint: bool = False,
                                    max_wait_secs: float = 7200, start_standard_services: bool = True) -> Any:
        """A session restored from `logdir`'s latest checkpoint or initialized; services started."""
        from jitflow.train.monitored_session import ChiefSessionCreator

        self._coord.clear_stop()
        sess = ChiefSessionCreator(scaffold=self._scaffold, master=master, config=config,
                                   checkpoint_dir=self._logdir).create_session()
        if start_standard_services and self._is_chief:
            self.start_standard_services(sess)
        return sess

    def start_standard_services(self, sess: Any) -> list[_Looper]:
        """Starts the checkpoint and summary threads (chief with a logdir); logs the session START."""
        if not self._is_chief or not self._logdir:
            return []
        if self._summary_writer is not None:
            if hasattr(self._summary_writer, "reopen"):
                self._summary_writer.reopen()  # closed by the previous managed session's stop()
            self._summary_writer.add_session_log(SessionLog(status=SessionLog.START), self._step(sess))
        threads = []
        if self._save_model_secs and self._saver is not None:
            threads.append(_Looper(self._coord, self._save_model_secs, lambda: self._checkpoint(sess)))
        if self._save_summaries_secs and self._summary_writer is not None:
            threads.append(_Looper(self._coord, self._save_summaries_secs, self._summary_loop(sess)))
        for t in threads:
            t.start()
        self._coord.threads.extend(threads)
        return threads

    def _step(self, sess: Any) -> int | None:
        return int(sess.run(self._global_step)) if self._global_step is not None else None

    def _checkpoint(self, sess: Any) -> None:
        path = self._saver.save(sess, self._save_path, global_step=self._global_step)
        if self._summary_writer is not None:
            self._summary_writer.add_session_log(
                SessionLog(status=SessionLog.CHECKPOINT, checkpoint_path=path), self._step(sess))

    def _summary_loop(self, sess: Any) -> Callable[[], None]:
        last: list[Any] = [None, None]  # (step, time) of the previous call, for global_step/sec

        def run() -> None:
            from jitflow.summary import scalar_value

            step = self._step(sess)
            if self._summary_op is not None:
                self._summary_writer.add_summary(sess.run(self._summary_op), step)
            now = time.time()
            if step is not None and last[0] is not None and now > last[1]:
                tag = self._global_step.op.name + "/sec"
                self._summary_writer.add_summary(scalar_value(tag, (step - last[0]) / (now - last[1])), step)
            last[0], last[1] = step, now

        return run

    @contextlib.contextmanager
    def managed_session(self, master: str = "", config: Any = None, start_standard_services: bool = True,
                        close_summary_writer: bool = True) -> Iterator[Any]:
        """A session for the `with` block; services stop and the session closes when it ends.

        OutOfRangeError raised in the block ends training normally; other exceptions propagate.
        """
        sess = self.prepare_or_wait_for_session(master, config, start_standard_services=start_standard_services)
        try:
            yield sess
        except Exception as e:  # noqa: BLE001 - stop the services first, then decide
            self.request_stop(e)
            if not isinstance(e, errors.OutOfRangeError):
                self.stop(close_summary_writer=close_summary_writer, ignore_errors=True)
                sess.close()
                raise
        self.stop(close_summary_writer=close_summary_writer)
        sess.close()

    # -- stopping -----------------------------------------------------------------------------------------------
    def request_stop(self, ex: BaseException | None = None) -> None:
        self._coord.request_stop(ex)

    def should_stop(self) -> bool:
        return self._coord.should_stop()

    def stop(self, threads: Any = None, close_summary_writer: bool = True, ignore_errors: bool = False) -> None:
        """Stops the services, waits for their threads, and closes the summary writer."""
        self._coord.request_stop()
        try:
            self._coord.join(threads, self._stop_grace_secs)
        except Exception:
            if not ignore_errors:
                raise
        finally:
            if close_summary_writer and self._summary_writer is not None:
                self._summary_writer.add_session_log(SessionLog(status=SessionLog.STOP))
                self._summary_writer.close()

    def stop_on_exception(self) -> Any:
        """A context that requests a stop when its block raises (TF's Coordinator.stop_on_exception)."""
        return _StopOnException(self._coord)

    def summary_computed(self, sess: Any, summary: Any, global_step: Any = None) -> None:
        """Writes a summary computed by the training loop (at `global_step`, else the current step)."""
        if self._summary_writer is None:
            raise RuntimeError("Writing a summary requires a summary writer.")
        step = global_step if global_step is not None else self._step(sess)
        self._summary_writer.add_summary(summary, step)

    def loop(self, timer_interval_secs: float, target: Callable[..., None], args: Any = None,
             kwargs: Any = None) -> threading.Thread:
        """Runs `target(*args, **kwargs)` every `timer_interval_secs` in a thread until the stop."""
        t = _Looper(self._coord, timer_interval_secs, lambda: target(*(args or ()), **(kwargs or {})))
        t.start()
        self._coord.threads.append(t)
        return t


class _StopOnException:
    def __init__(self, coord: _Coordinator) -> None:
        self._coord = coord

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc is not None:
            self._coord.request_stop(exc)
        return exc is not None and isinstance(exc, errors.OutOfRangeError)
