"""Session-run hooks: code that runs around each `MonitoredSession.run` (TF's `tf.train.*Hook`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from jitflow.framework.graph import GraphKeys, Tensor, get_default_graph

logger = logging.getLogger("jitflow.train")


class SessionRunArgs(NamedTuple):
    """What a hook adds to the next `run`: extra fetches, feeds and options."""

    fetches: Any
    feed_dict: Any = None
    options: Any = None


class SessionRunValues(NamedTuple):
    """What a hook gets back after the run: the results of its own fetches."""

    results: Any
    options: Any = None
    run_metadata: Any = None


class SessionRunContext:
    """The call being made (`original_args`), the raw session, and a way to ask the loop to stop."""

    def __init__(self, original_args: SessionRunArgs, session: Any) -> None:
        self._original_args = original_args
        self._session = session
        self._stop_requested = False

    @property
    def original_args(self) -> SessionRunArgs:
        return self._original_args

    @property
    def session(self) -> Any:
        return self._session

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def request_stop(self) -> None:
        """Makes `should_stop()` true after this run."""
        self._stop_requested = True


class SessionRunHook:
    """Base class: override any of begin, after_create_session, before_run, after_run, end."""

    def begin(self) -> None:
        """Called once before the graph is finalized; may add ops."""

    def after_create_session(self, session: Any, coord: Any) -> None:
        """Called once the session exists and variables are initialized or restored."""

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs | None:
        """Called before each run; may return extra fetches/feeds as SessionRunArgs."""
        return None

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        """Called after each run with the results of this hook's fetches."""

    def end(self, session: Any) -> None:
        """Called once at a clean close of the monitored session."""


def _require_global_step(hook: str) -> Tensor:
    """The tensor hooks fetch for the step: TF's copy of it, the value from before the run's train op."""
    from .training_util import _get_or_create_global_step_read

    gs = _get_or_create_global_step_read()
    if gs is None:
        raise RuntimeError(f"Global step should be created to use {hook}.")
    return gs


class SecondOrStepTimer:
    """Triggers every `every_secs` seconds or every `every_steps` steps (exactly one of them)."""

    def __init__(self, every_secs: float | None = None, every_steps: int | None = None) -> None:
        if (every_secs is None) == (every_steps is None):
            raise ValueError("Either every_secs or every_steps should be provided, but not both.")
        if (every_secs is not None and every_secs < 0) or (every_steps is not None and every_steps <= 0):
            raise ValueError("every_secs must be >= 0 and every_steps > 0.")
        self._every_secs = every_secs
        self._every_steps = every_steps
        self.reset()

    def reset(self) -> None:
        self._last_time: float | None = None
        self._last_step: int | None = None

    def should_trigger_for_step(self, step: int) -> bool:
        if self._last_step is None:
            return True
        if self._last_step == step:
            return False
        if self._every_secs is not None and self._last_time is not None:
            return time.time() >= self._last_time + self._every_secs
        assert self._every_steps is not None
        return step >= self._last_step + self._every_steps

    def update_last_triggered_step(self, step: int) -> tuple[float | None, int | None]:
        """Marks `step` as triggered; returns (seconds, steps) since the previous trigger."""
        now = time.time()
        elapsed = (
            (now - self._last_time, step - self._last_step)
            if self._last_time is not None and self._last_step is not None
            else (None, None)
        )
        self._last_time, self._last_step = now, step
        return elapsed

    def last_triggered_step(self) -> int | None:
        return self._last_step


class StopAtStepHook(SessionRunHook):
    """Requests a stop once the global step reaches `last_step` (or `num_steps` past its start)."""

    def __init__(self, num_steps: int | None = None, last_step: int | None = None) -> None:
        if (num_steps is None) == (last_step is None):
            raise ValueError("One of num_steps or last_step must be specified.")
        if num_steps is not None and num_steps < 0:
            raise ValueError("Number of steps must be non-negative.")
        if last_step is not None and last_step < 0:
            raise ValueError("Last step must be non-negative.")
        self._num_steps = num_steps
        self._last_step = last_step

    def begin(self) -> None:
        self._global_step_tensor = _require_global_step("StopAtStepHook")

    def after_create_session(self, session: Any, coord: Any) -> None:
        step = int(session.run(self._global_step_tensor))
        if self._last_step is None:
            assert self._num_steps is not None
            self._last_step = step + self._num_steps

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        assert self._last_step is not None
        # The fetched value may predate this run's increment: re-read before stopping.
        if int(run_values.results) + 1 >= self._last_step:
            if int(run_context.session.run(self._global_step_tensor)) >= self._last_step:
                run_context.request_stop()


class CheckpointSaverListener:
    """Callbacks around each save of a CheckpointSaverHook; `after_save` returning True stops training."""

    def begin(self) -> None:
        pass

    def before_save(self, session: Any, global_step_value: int) -> None:
        pass

    def after_save(self, session: Any, global_step_value: int) -> bool | None:
        return None

    def end(self, session: Any, global_step_value: int) -> None:
        pass


class CheckpointSaverHook(SessionRunHook):
    """Saves a checkpoint when the session is created, every N seconds or steps, and at the end."""

    def __init__(
        self,
        checkpoint_dir: str,
        save_secs: float | None = None,
        save_steps: int | None = None,
        saver: Any = None,
        checkpoint_basename: str = "model.ckpt",
        scaffold: Any = None,
        listeners: list[CheckpointSaverListener] | None = None,
        save_graph_def: bool = True,
    ) -> None:
        if saver is not None and scaffold is not None:
            raise ValueError("You cannot provide both saver and scaffold.")
        self._checkpoint_dir = checkpoint_dir
        self._save_path = os.path.join(checkpoint_dir, checkpoint_basename)
        self._saver = saver
        self._scaffold = scaffold
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._listeners = list(listeners or [])
        self._save_graph_def = save_graph_def

    def begin(self) -> None:
        self._global_step_tensor = _require_global_step("CheckpointSaverHook")
        os.makedirs(self._checkpoint_dir, exist_ok=True)
        for listener in self._listeners:
            listener.begin()

    def after_create_session(self, session: Any, coord: Any) -> None:
        step = int(session.run(self._global_step_tensor))
        if self._save_graph_def:  # graph.pbtxt and the graph event, as TF writes them
            from jitflow.train.graph_files import write_graph_files

            write_graph_files(self._checkpoint_dir)
        self._save(session, step)  # the state training starts from, as TF does
        self._timer.update_last_triggered_step(step)

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if self._timer.should_trigger_for_step(int(run_values.results) + 1):
            step = int(run_context.session.run(self._global_step_tensor))
            if self._timer.should_trigger_for_step(step):
                self._timer.update_last_triggered_step(step)
                if self._save(run_context.session, step):
                    run_context.request_stop()

    def end(self, session: Any) -> None:
        step = int(session.run(self._global_step_tensor))
        if step != self._timer.last_triggered_step():
            self._save(session, step)
        for listener in self._listeners:
            listener.end(session, step)

    def _get_saver(self) -> Any:
        if self._saver is not None:
            return self._saver
        if self._scaffold is not None:
            return self._scaffold.saver
        savers = get_default_graph().get_collection(GraphKeys.SAVERS)
        if not savers:
            raise RuntimeError(
                f"No items in collection {GraphKeys.SAVERS}. Please add a saver to the "
                "collection or provide a saver or scaffold."
            )
        if len(savers) > 1:
            raise RuntimeError(
                f"More than one item in collection {GraphKeys.SAVERS}. Please indicate which "
                "one to use by passing it to the constructor."
            )
        self._saver = savers[0]
        return self._saver

    def _save(self, session: Any, step: int) -> bool:
        for listener in self._listeners:
            listener.before_save(session, step)
        logger.info("Saving checkpoints for %d into %s.", step, self._save_path)
        self._get_saver().save(
            session, self._save_path, global_step=step, write_meta_graph=self._save_graph_def
        )
        stop = False
        for listener in self._listeners:
            if listener.after_save(session, step):
                logger.info("A CheckpointSaverListener requested that training be stopped.")
                stop = True
        return stop


def _as_named(tensors: Any) -> tuple[dict[str, Any], list[str]]:
    if isinstance(tensors, dict):
        return dict(tensors), list(tensors)
    names = [t if isinstance(t, str) else t.name for t in tensors]
    return dict(zip(names, tensors)), names


class LoggingTensorHook(SessionRunHook):
    """Logs the values of `tensors` every N local steps or seconds (and optionally at the end)."""

    def __init__(
        self,
        tensors: Any,
        every_n_iter: int | None = None,
        every_n_secs: float | None = None,
        at_end: bool = False,
        formatter: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        only_log_at_end = at_end and every_n_iter is None and every_n_secs is None
        if not only_log_at_end and (every_n_iter is None) == (every_n_secs is None):
            raise ValueError(
                "either at_end and/or exactly one of every_n_iter and every_n_secs must be provided."
            )
        if every_n_iter is not None and every_n_iter <= 0:
            raise ValueError(f"invalid every_n_iter={every_n_iter}.")
        self._tensors, self._tag_order = _as_named(tensors)
        self._timer = None if only_log_at_end else SecondOrStepTimer(every_n_secs, every_n_iter)
        self._log_at_end = at_end
        self._formatter = formatter
        self.logged: list[dict[str, Any]] = []  # every logged set of values, oldest first

    def begin(self) -> None:
        g = get_default_graph()
        self._current = {
            k: g.as_graph_element(v) if isinstance(v, str) else v for k, v in self._tensors.items()
        }
        self._iter_count = 0
        if self._timer is not None:
            self._timer.reset()

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs | None:
        self._should_trigger = self._timer is not None and self._timer.should_trigger_for_step(
            self._iter_count
        )
        return SessionRunArgs(self._current) if self._should_trigger else None

    def _log(self, values: dict[str, Any]) -> None:
        self.logged.append(values)
        if self._formatter is not None:
            logger.info(self._formatter(values))
        else:
            logger.info(", ".join(f"{tag} = {values[tag]}" for tag in self._tag_order))

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if self._should_trigger:
            assert self._timer is not None
            self._timer.update_last_triggered_step(self._iter_count)
            self._log(run_values.results)
        self._iter_count += 1

    def end(self, session: Any) -> None:
        if self._log_at_end:
            self._log(session.run(self._current))


class StepCounterHook(SessionRunHook):
    """Measures global steps per second every N steps or seconds and logs it ('global_step/sec')."""

    def __init__(
        self,
        every_n_steps: int | None = 100,
        every_n_secs: float | None = None,
        output_dir: str | None = None,
        summary_writer: Any = None,
        steps_per_run: int = 1,
    ) -> None:
        if (every_n_steps is None) == (every_n_secs is None):
            raise ValueError("exactly one of every_n_steps and every_n_secs should be provided.")
        self._timer = SecondOrStepTimer(every_steps=every_n_steps, every_secs=every_n_secs)
        self._steps_per_run = steps_per_run
        self._output_dir = output_dir
        self._writer = summary_writer
        self._tag = "global_step/sec"
        self.rates: list[float] = []  # every measured steps/sec, oldest first

    def begin(self) -> None:
        from jitflow.summary import FileWriterCache

        if self._writer is None and self._output_dir:
            self._writer = FileWriterCache.get(self._output_dir)
        self._global_step_tensor = _require_global_step("StepCounterHook")
        from .training_util import get_global_step

        self._tag = get_global_step().op.name + "/sec"

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if not self._timer.should_trigger_for_step(int(run_values.results) + self._steps_per_run):
            return
        step = int(run_context.session.run(self._global_step_tensor))  # the real step, after the train op
        if self._timer.should_trigger_for_step(step):
            secs, steps = self._timer.update_last_triggered_step(step)
            if secs is not None and steps is not None and secs > 0:
                rate = steps / secs
                self.rates.append(rate)
                if self._writer is not None:
                    from jitflow.summary import scalar_value

                    self._writer.add_summary(scalar_value(self._tag, rate), step)
                logger.info("%s: %g", self._tag, rate)


class NanLossDuringTrainingError(RuntimeError):
    """Raised by NanTensorHook when the loss becomes NaN."""

    def __str__(self) -> str:
        return "NaN loss during training."


class NanTensorHook(SessionRunHook):
    """Fails (or requests a stop) when `loss_tensor` is NaN."""

    def __init__(self, loss_tensor: Any, fail_on_nan_loss: bool = True) -> None:
        self._loss_tensor = loss_tensor
        self._fail_on_nan_loss = fail_on_nan_loss

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._loss_tensor)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if np.any(np.isnan(run_values.results)):
            if self._fail_on_nan_loss:
                logger.error("Model diverged with loss = NaN.")
                raise NanLossDuringTrainingError
            logger.warning("Model diverged with loss = NaN. Stopping training.")
            run_context.request_stop()


class FinalOpsHook(SessionRunHook):
    """Runs `final_ops` at the end and keeps their values in `final_ops_values`."""

    def __init__(self, final_ops: Any, final_ops_feed_dict: Any = None) -> None:
        self._final_ops = final_ops
        self._feed = final_ops_feed_dict
        self._values: Any = None

    @property
    def final_ops_values(self) -> Any:
        return self._values

    def end(self, session: Any) -> None:
        if self._final_ops is not None:
            self._values = session.run(self._final_ops, feed_dict=self._feed)


class FeedFnHook(SessionRunHook):
    """Feeds `feed_fn()` into every run."""

    def __init__(self, feed_fn: Callable[[], Any]) -> None:
        self.feed_fn = feed_fn

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(fetches=None, feed_dict=self.feed_fn())


class SummarySaverHook(SessionRunHook):
    """Runs the summary op every N steps or seconds and writes the result to an event file."""

    def __init__(self, save_steps: int | None = None, save_secs: float | None = None,
                 output_dir: str | None = None, summary_writer: Any = None, scaffold: Any = None,
                 summary_op: Any = None) -> None:
        if (scaffold is None) == (summary_op is None):
            raise ValueError("Exactly one of scaffold or summary_op should be set.")
        if summary_writer is None and output_dir is None:
            raise ValueError("Either summary_writer or output_dir should be set.")
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._output_dir = output_dir
        self._writer = summary_writer
        self._scaffold = scaffold
        self._summary_op = summary_op
        self._request = False
        self._next_step: int | None = None

    def _op(self) -> Any:
        return self._summary_op if self._summary_op is not None else getattr(self._scaffold, "summary_op", None)

    def begin(self) -> None:
        from jitflow.summary import FileWriterCache

        if self._writer is None and self._output_dir is not None:
            self._writer = FileWriterCache.get(self._output_dir)
        self._global_step_tensor = _require_global_step("SummarySaverHook")

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        op = self._op()
        # The step this run will most likely report: one past the last one seen.
        self._request = op is not None and (self._next_step is None
                                            or self._timer.should_trigger_for_step(self._next_step))
        fetches: dict[str, Any] = {"global_step": self._global_step_tensor}
        if self._request:
            fetches["summary"] = op
        return SessionRunArgs(fetches)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        # As TF: the fetched step is stale (read in the run that increments it), so the real one is read
        # again when a summary is written; the first run also logs the session's START.
        global_step = int(run_values.results["global_step"]) + 1
        if self._next_step is None or self._request:
            global_step = int(run_context.session.run(self._global_step_tensor))
        if self._next_step is None and self._writer is not None:
            from jitflow.summary_events import SessionLog

            self._writer.add_session_log(SessionLog(status=SessionLog.START), global_step)
        if self._request:
            self._timer.update_last_triggered_step(global_step)
            summary = run_values.results.get("summary")
            if summary is not None and self._writer is not None:
                self._writer.add_summary(summary, global_step)
        self._next_step = global_step + 1

    def end(self, session: Any) -> None:
        if self._writer is not None:
            self._writer.flush()
