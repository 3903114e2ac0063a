"""`MonitoredTrainingSession`: a session that initializes or restores itself, runs hooks around every
`run`, saves checkpoints on a schedule, and knows when training should stop."""

from __future__ import annotations

import logging
from typing import Any

from jitflow.errors import AbortedError, OutOfRangeError, UnavailableError
from jitflow.framework.graph import Graph, GraphKeys, get_default_graph

from . import hooks as hooks_lib
from .checkpoint import latest_checkpoint
from .hooks import SessionRunArgs, SessionRunContext, SessionRunHook, SessionRunValues
from .training_util import get_global_step

logger = logging.getLogger("jitflow.train")

_USE_DEFAULT = object()


def _single(graph: Graph, key: str) -> Any:
    items = graph.get_collection(key)
    if len(items) > 1:
        raise RuntimeError(
            f'More than one item in the collection "{key}". Please indicate which one to use '
            "by passing it to the constructor."
        )
    return items[0] if items else None


class Scaffold:
    """The ops a monitored session needs (init, ready check, local init) and its Saver.

    `finalize()` fills in what was not given, from graph collections or defaults, then finalizes the
    graph so that the training loop cannot add ops by accident.
    """

    def __init__(
        self,
        init_op: Any = None,
        init_feed_dict: Any = None,
        init_fn: Any = None,
        ready_op: Any = None,
        ready_for_local_init_op: Any = None,
        local_init_op: Any = None,
        summary_op: Any = None,
        saver: Any = None,
        copy_from_scaffold: Any = None,
        local_init_feed_dict: Any = None,
    ) -> None:
        if copy_from_scaffold is not None:
            if not isinstance(copy_from_scaffold, Scaffold):
                raise TypeError("copy_from_scaffold is not a Scaffold instance.")
            init_op = init_op if init_op is not None else copy_from_scaffold.init_op
            init_feed_dict = init_feed_dict or copy_from_scaffold.init_feed_dict
            init_fn = init_fn or copy_from_scaffold.init_fn
            ready_op = ready_op if ready_op is not None else copy_from_scaffold.ready_op
            local_init_op = local_init_op if local_init_op is not None else copy_from_scaffold.local_init_op
            saver = saver if saver is not None else copy_from_scaffold.saver
        self._init_op = init_op
        self._init_feed_dict = init_feed_dict
        self._init_fn = init_fn
        self._ready_op = ready_op
        self._local_init_op = local_init_op
        self._local_init_feed_dict = local_init_feed_dict
        self._summary_op = summary_op
        self._saver = saver

    def finalize(self) -> Scaffold:
        """Creates the missing ops and the default Saver, then finalizes the default graph."""
        from jitflow.ops.control_flow_ops import group
        from jitflow.variables import (
            global_variables_initializer,
            local_variables_initializer,
            report_uninitialized_variables,
        )

        from .saver import Saver

        g = get_default_graph()
        if self._init_op is None:
            self._init_op = _single(g, GraphKeys.INIT_OP)
            if self._init_op is None:
                self._init_op = global_variables_initializer()
                g.add_to_collection(GraphKeys.INIT_OP, self._init_op)
        if self._ready_op is None:
            self._ready_op = _single(g, GraphKeys.READY_OP)
            if self._ready_op is None:
                self._ready_op = report_uninitialized_variables()
                g.add_to_collection(GraphKeys.READY_OP, self._ready_op)
        if self._local_init_op is None:
            self._local_init_op = _single(g, GraphKeys.LOCAL_INIT_OP)
            if self._local_init_op is None:
                self._local_init_op = group(local_variables_initializer())
                g.add_to_collection(GraphKeys.LOCAL_INIT_OP, self._local_init_op)
        if self._summary_op is None:
            self._summary_op = _single(g, GraphKeys.SUMMARY_OP)
            if self._summary_op is None:
                from jitflow.summary import merge_all

                self._summary_op = merge_all()
                if self._summary_op is not None:
                    g.add_to_collection(GraphKeys.SUMMARY_OP, self._summary_op)
        if self._saver is None:
            self._saver = _single(g, GraphKeys.SAVERS)
            if self._saver is None:
                self._saver = Saver(sharded=True, allow_empty=True)
                g.add_to_collection(GraphKeys.SAVERS, self._saver)
        g.finalize()
        return self

    @property
    def init_op(self) -> Any:
        return self._init_op

    @property
    def init_feed_dict(self) -> Any:
        return self._init_feed_dict

    @property
    def init_fn(self) -> Any:
        return self._init_fn

    @property
    def ready_op(self) -> Any:
        return self._ready_op

    @property
    def local_init_op(self) -> Any:
        return self._local_init_op

    @property
    def local_init_feed_dict(self) -> Any:
        return self._local_init_feed_dict

    @property
    def summary_op(self) -> Any:
        return self._summary_op

    @property
    def saver(self) -> Any:
        return self._saver


def _not_ready(sess: Any, ready_op: Any) -> list[str]:
    if ready_op is None:
        return []
    names = sess.run(ready_op)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in list(getattr(names, "flat", names))]


class ChiefSessionCreator:
    """Creates a Session, then restores the latest checkpoint of `checkpoint_dir` or initializes."""

    def __init__(
        self,
        scaffold: Scaffold | None = None,
        master: str = "",
        config: Any = None,
        checkpoint_dir: str | None = None,
        checkpoint_filename_with_path: str | None = None,
    ) -> None:
        self._scaffold = scaffold or Scaffold()
        self._config = config
        self._checkpoint_dir = checkpoint_dir
        self._checkpoint_filename_with_path = checkpoint_filename_with_path
        self._master = master

    def create_session(self) -> Any:
        """A session with the variables restored from the latest checkpoint, or initialized."""
        from jitflow.session import Session

        sc = self._scaffold.finalize()
        sess = Session(self._master, graph=get_default_graph(), config=self._config)
        path = self._checkpoint_filename_with_path
        if path is None and self._checkpoint_dir:
            path = latest_checkpoint(self._checkpoint_dir)
        if path is not None and sc.saver is not None:
            sc.saver.restore(sess, path)
            _recover_last_checkpoints(sc.saver, self._checkpoint_dir)
        else:
            if sc.init_op is None and sc.init_fn is None and sc.local_init_op is None:
                raise RuntimeError(
                    "Model is not initialized and no init_op or init_fn or local_init_op was given"
                )
            if sc.init_op is not None:
                sess.run(sc.init_op, feed_dict=sc.init_feed_dict)
            if sc.init_fn is not None:
                sc.init_fn(sc, sess)
        if sc.local_init_op is not None:
            sess.run(sc.local_init_op, feed_dict=sc.local_init_feed_dict)
        missing = _not_ready(sess, sc.ready_op)
        if missing:
            raise RuntimeError(
                f"Init operations did not make model ready. Uninitialized variables: {missing}"
            )
        return sess


class _Coordinator:
    """The stop flag shared by hooks and the training loop (a minimal tf.train.Coordinator)."""

    def __init__(self) -> None:
        self._stop = False

    def request_stop(self, ex: Any = None) -> None:
        self._stop = True

    def should_stop(self) -> bool:
        return self._stop

    def join(
        self, threads: Any = None, stop_grace_period_secs: float = 120, ignore_live_threads: bool = False
    ) -> None:
        pass


class _StepContext:
    """What `run_step_fn` passes to its step function."""

    def __init__(self, owner: MonitoredSession) -> None:
        self._owner = owner

    @property
    def session(self) -> Any:
        return self._owner._tf_sess()

    def run_with_hooks(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner.run(*args, **kwargs)

    def request_stop(self) -> None:
        self._owner._should_stop = True


class MonitoredSession:
    """A session whose `run` calls hooks; `should_stop()` says when a hook has asked to stop."""

    def __init__(
        self,
        session_creator: Any = None,
        hooks: list[SessionRunHook] | None = None,
        stop_grace_period_secs: float = 120,
    ) -> None:
        self._hooks = list(hooks or [])
        for h in self._hooks:
            h.begin()  # before the graph is finalized, so hooks may add ops
        self._graph = get_default_graph()
        self._coord = _Coordinator()
        self._creator = session_creator or ChiefSessionCreator()
        self._sess = self._creator.create_session()
        self._should_stop = False
        self._closed = False
        for h in self._hooks:
            h.after_create_session(self._sess, self._coord)

    @property
    def graph(self) -> Graph:
        return self._graph

    def _tf_sess(self) -> Any:
        return self._sess

    def should_stop(self) -> bool:
        return self._closed or self._should_stop or self._coord.should_stop()

    def run(self, fetches: Any, feed_dict: Any = None, options: Any = None, run_metadata: Any = None) -> Any:
        """Runs `fetches` plus every hook's requests in one `Session.run`; returns the caller's results."""
        if self._closed:
            raise RuntimeError("Run called on a closed MonitoredSession.")
        context = SessionRunContext(SessionRunArgs(fetches, feed_dict, options), self._sess)
        feeds = dict(feed_dict) if feed_dict else {}
        requests: dict[int, Any] = {}  # hook position -> its extra fetches
        for i, h in enumerate(self._hooks):
            args = h.before_run(context)
            if args is None:
                continue
            for k, v in (args.feed_dict or {}).items():
                if k in feeds:
                    raise RuntimeError(f"Same tensor is fed by two hooks or by a hook and the caller: {k}")
                feeds[k] = v
            if args.fetches is not None:
                requests[i] = args.fetches
        # One Session.run for the caller's fetches and every hook's, so each op runs once.
        wanted = [fetches, list(requests.values())] if requests else fetches
        out = self._run_recovering(wanted, feeds or None, options, run_metadata)
        results = out if requests else [out, []]
        hook_results = dict(zip(requests, results[1]))
        for i, h in enumerate(self._hooks):  # in hook order, as TF does
            h.after_run(context, SessionRunValues(hook_results.get(i), options, run_metadata))
        self._should_stop = self._should_stop or context.stop_requested
        return results[0]

    def _run_recovering(self, fetches: Any, feed_dict: Any, options: Any, run_metadata: Any) -> Any:
        """Session.run; when a task of a distributed session is lost, a new session (the chief restores
        the latest checkpoint) runs the step again, as TF's recoverable session does."""
        while True:
            try:
                return self._sess.run(fetches, feed_dict=feed_dict, options=options, run_metadata=run_metadata)
            except (UnavailableError, AbortedError) as e:
                logger.warning("Recreating the session after %s: %s", type(e).__name__, e.message)
                try:
                    self._sess.close()
                except (UnavailableError, AbortedError):
                    pass
                self._sess = self._creator.create_session()
                for h in self._hooks:
                    h.after_create_session(self._sess, self._coord)

    def run_step_fn(self, step_fn: Any) -> Any:
        """Calls `step_fn(step_context)`; the step may run with hooks or request a stop."""
        return step_fn(_StepContext(self))

    def close(self) -> None:
        """Runs every hook's `end` (on a clean close), then closes the session."""
        self._close(None)

    def _close(self, exception_type: Any) -> None:
        if self._closed:
            return
        try:
            if exception_type is None:
                for h in self._hooks:
                    h.end(self._sess)
        finally:
            self._closed = True
            self._coord.request_stop()
            self._sess.close()

    def __enter__(self) -> MonitoredSession:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        # OutOfRangeError / StopIteration are how an input pipeline ends training: a clean close.
        clean_end = exc_type is not None and issubclass(exc_type, (OutOfRangeError, StopIteration))
        self._close(None if clean_end else exc_type)
        return clean_end


class SingularMonitoredSession(MonitoredSession):
    """A MonitoredSession for a single process, with the raw session available as `raw_session()`."""

    def __init__(
        self,
        hooks: list[SessionRunHook] | None = None,
        scaffold: Scaffold | None = None,
        master: str = "",
        config: Any = None,
        checkpoint_dir: str | None = None,
        stop_grace_period_secs: float = 120,
        checkpoint_filename_with_path: str | None = None,
    ) -> None:
        creator = ChiefSessionCreator(
            scaffold=scaffold,
            master=master,
            config=config,
            checkpoint_dir=checkpoint_dir,
            checkpoint_filename_with_path=checkpoint_filename_with_path,
        )
        super().__init__(creator, hooks, stop_grace_period_secs)

    def raw_session(self) -> Any:
        return self._tf_sess()


def MonitoredTrainingSession(
    master: str = "",
    is_chief: bool = True,  # noqa: N802 - TF's name
    checkpoint_dir: str | None = None,
    scaffold: Scaffold | None = None,
    hooks: list[SessionRunHook] | None = None,
    chief_only_hooks: list[SessionRunHook] | None = None,
    save_checkpoint_secs: Any = _USE_DEFAULT,
    save_summaries_steps: Any = _USE_DEFAULT,
    save_summaries_secs: Any = _USE_DEFAULT,
    config: Any = None,
    stop_grace_period_secs: float = 120,
    log_step_count_steps: int = 100,
    max_wait_secs: float = 7200,
    save_checkpoint_steps: Any = _USE_DEFAULT,
    summary_dir: str | None = None,
    save_graph_def: bool = True,
) -> MonitoredSession:
    """A MonitoredSession for training: restores the latest checkpoint of `checkpoint_dir` (or
    initializes), saves one every `save_checkpoint_secs` (default 600) or `save_checkpoint_steps`, and
    at the end; logs global steps/sec every `log_step_count_steps`."""
    if save_summaries_steps is _USE_DEFAULT and save_summaries_secs is _USE_DEFAULT:
        save_summaries_steps, save_summaries_secs = 100, None
    elif save_summaries_secs is _USE_DEFAULT:
        save_summaries_secs = None
    elif save_summaries_steps is _USE_DEFAULT:
        save_summaries_steps = None
    if save_checkpoint_steps is _USE_DEFAULT and save_checkpoint_secs is _USE_DEFAULT:
        save_checkpoint_secs, save_checkpoint_steps = 600, None
    elif save_checkpoint_secs is _USE_DEFAULT:
        save_checkpoint_secs = None
    elif save_checkpoint_steps is _USE_DEFAULT:
        save_checkpoint_steps = None
    scaffold = scaffold or Scaffold()
    all_hooks = list(hooks or [])
    if is_chief:
        all_hooks += list(chief_only_hooks or [])
        summary_dir = summary_dir or checkpoint_dir
        if log_step_count_steps and log_step_count_steps > 0 and get_global_step() is not None:
            all_hooks.append(hooks_lib.StepCounterHook(every_n_steps=log_step_count_steps, output_dir=summary_dir))
        if summary_dir and ((save_summaries_steps and save_summaries_steps > 0)
                            or (save_summaries_secs and save_summaries_secs > 0)):
            all_hooks.append(hooks_lib.SummarySaverHook(
                save_steps=save_summaries_steps or None, save_secs=save_summaries_secs or None,
                output_dir=summary_dir, scaffold=scaffold))
        if checkpoint_dir and (
            (save_checkpoint_secs and save_checkpoint_secs > 0)
            or (save_checkpoint_steps and save_checkpoint_steps > 0)
        ):
            all_hooks.append(
                hooks_lib.CheckpointSaverHook(
                    checkpoint_dir,
                    save_secs=save_checkpoint_secs or None,
                    save_steps=save_checkpoint_steps or None,
                    scaffold=scaffold,
                    save_graph_def=save_graph_def,
                )
            )
    creator: Any = ChiefSessionCreator(
        scaffold=scaffold, master=master, config=config, checkpoint_dir=checkpoint_dir
    )
    if not is_chief:
        from .worker_session import WorkerSessionCreator

        creator = WorkerSessionCreator(scaffold=scaffold, master=master, config=config,
                                       max_wait_secs=max_wait_secs)
    return MonitoredSession(
        session_creator=creator, hooks=all_hooks, stop_grace_period_secs=stop_grace_period_secs
    )


def _recover_last_checkpoints(saver: Any, checkpoint_dir: str | None) -> None:
    """As TF's SessionManager: a restored saver adopts the checkpoints on disk, so max_to_keep spans restarts."""
    from jitflow.train.checkpoint.state import get_checkpoint_state

    state = get_checkpoint_state(checkpoint_dir) if checkpoint_dir else None
    if state is not None and hasattr(saver, "recover_last_checkpoints"):
        saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
