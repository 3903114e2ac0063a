"""Sessions of a worker task: plans run locally, variables placed on ps tasks are read and updated there.

Per `run`: one call per ps task fetches the current values of the remote variables the run touches
(plus the completion of the previous step's updates), the compiled plan runs on them locally, and one
call per ps task sends back what the run changed: a new value where an Assign (or a restore) set the
variable, else the difference the step made (update ops, AssignAdd), which the ps adds to its current
value atomically. Updates from other workers that arrive meanwhile are kept: asynchronous
between-graph replication, as TF's ps tasks do it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jitflow import errors
from jitflow.compiler.prune import prune
from jitflow.distributed import ray_cluster
from jitflow.distributed.server import Server, actor_name, server_for_target, wait_seconds
from jitflow.framework.device import DeviceSpec
from jitflow.framework.graph import Operation, Tensor
from jitflow.session import Session, _flatten_fetches

_VARIABLE_OPS = frozenset({"Variable", "VariableV2", "VarHandleOp", "AutoReloadVariable"})
_SETTERS = frozenset({"Assign"})  # ops whose result replaces the value rather than changing it

Task = tuple[str, int]


@dataclass
class _Access:
    """The remote variables one run signature touches, by ps task, and which of them it sets outright."""

    by_task: dict[Task, list[str]] = field(default_factory=dict)
    set_names: set[str] = field(default_factory=set)


def session_class_for(target: str) -> type[Session]:
    """The Session class for `target`: a DistributedSession for a Server of this process."""
    if server_for_target(target) is not None:
        return DistributedSession
    if target.startswith("grpc://"):
        raise errors.UnavailableError(None, None, f"No tf.train.Server in this process serves {target!r}: "
                                                  "create the task's Server before its sessions")
    return Session


def _ray_errors() -> tuple[type[BaseException], ...]:
    ray = ray_cluster.import_ray()
    return (ray.exceptions.RayError,)


class DistributedSession(Session):
    """A Session of a worker task whose variables on other tasks live in those tasks' variable stores."""

    def __init__(self, target: str = "", graph: Any = None, config: Any = None) -> None:
        super().__init__(target, graph, config)
        server = server_for_target(target)
        if server is None:
            raise errors.UnavailableError(None, None, f"No tf.train.Server in this process serves {target!r}")
        self._server: Server = server
        self._ray = ray_cluster.import_ray()
        self._stores: dict[Task, Any] = {}
        self._incarnations: dict[Task, str] = {}  # the actor id of each task's store when first seen
        self._pending: list[Any] = []  # pushes sent but not yet waited for (with the next pull)
        self._outbox: dict[Task, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}  # not yet sent
        self._access: dict[Any, _Access] = {}
        self._locals = {self._server.task}
        self._wait_for_stores()

    # -- where variables live ------------------------------------------------------------------------
    def _task_of(self, op: Operation) -> Task | None:
        """The remote task holding variable `op`, or None if it lives in this session."""
        spec = DeviceSpec.from_string(op.device or "")
        if not spec.job or spec.job == "localhost":
            return None
        task = (spec.job, spec.task or 0)
        if task in self._locals or task not in self._server.variable_tasks():
            return None
        return task

    def _access_for(self, flat: list[Tensor | Operation], fed: list[Tensor]) -> _Access:
        key = (tuple(flat), tuple(fed))
        access = self._access.get(key)
        if access is None:
            access = self._access[key] = self._analyze(flat, fed)
        return access

    def _analyze(self, flat: list[Tensor | Operation], fed: list[Tensor]) -> _Access:
        ops = prune([t for t in flat if isinstance(t, Tensor)], [o for o in flat if isinstance(o, Operation)],
                    set(fed))
        access = _Access()
        seen: set[Operation] = set()
        for op in ops:
            for var in [op, *(t.op for t in op.inputs)]:
                if var.type not in _VARIABLE_OPS or var in seen:
                    continue
                seen.add(var)
                task = self._task_of(var)
                if task is not None:
                    access.by_task.setdefault(task, []).append(var.name)
            if op.type in _SETTERS and op.inputs and self._task_of(op.inputs[0].op) is not None:
                access.set_names.add(op.inputs[0].op.name)
        return access

    # -- the variable stores ---------------------------------------------------------------------------
    def _store(self, task: Task) -> Any:
        store = self._stores.get(task)
        if store is None:
            try:
                store = self._ray.get_actor(actor_name(*task), namespace=self._server.namespace)
            except ValueError:
                raise errors.UnavailableError(None, None, f"/job:{task[0]}/task:{task[1]} is not serving "
                                                          "(its tf.train.Server is not running)") from None
            # A task that restarted has a new store, without the variables this session saw: like TF's
            # lost session handle, that aborts the session (a MonitoredSession then makes a new one).
            incarnation = store._actor_id.hex()
            if self._incarnations.setdefault(task, incarnation) != incarnation:
                raise errors.AbortedError(None, None, f"/job:{task[0]}/task:{task[1]} restarted since this "
                                                      "session connected: its variables were lost")
            self._stores[task] = store
        return store

    def _wait_for_stores(self) -> None:
        """Waits (bounded) until every variable-holding task of the cluster answers."""
        pending = list(self._server.variable_tasks())
        down: tuple[type[BaseException], ...] = (errors.UnavailableError, *_ray_errors())

        def all_up() -> bool:
            while pending:
                try:
                    self._ray.get(self._store(pending[0]).ping.remote(), timeout=wait_seconds())
                except down:
                    self._stores.pop(pending[0], None)
                    return False
                pending.pop(0)
            return True

        if not ray_cluster.wait_for(all_up, wait_seconds(), interval=0.25):
            names = ", ".join(f"/job:{j}/task:{i}" for j, i in pending)
            raise errors.UnavailableError(None, None, f"Timed out after {wait_seconds():.0f} s waiting for "
                                                      f"{names} to serve")

    def _call(self, refs: list[Any]) -> list[Any]:
        """ray.get with the session's timeout; a failed or silent task becomes UnavailableError."""
        try:
            return self._ray.get(refs, timeout=wait_seconds())
        except self._ray.exceptions.RayTaskError as e:  # the store raised: a fault in this program, not a lost task
            raise errors.InternalError(None, None, f"A ps task failed a request: {e}") from None
        except _ray_errors() as e:
            self._stores.clear()  # a restarted task has a new actor: look it up again
            self._pending, self._outbox = [], {}
            raise errors.UnavailableError(None, None, f"A ps task is unavailable: {type(e).__name__}: "
                                                      f"{str(e).splitlines()[0] if str(e) else ''}") from None

    def _pull(self, by_task: dict[Task, list[str]]) -> dict[str, np.ndarray | None]:
        """Fetches the named remote variables into this session; returns them.

        One call per task, which first applies the updates of this session's previous step to it.
        """
        tasks = list(by_task)
        try:
            refs = [self._store(t).exchange.remote(*self._outbox.pop(t, ({}, {})), by_task[t]) for t in tasks]
        except _ray_errors() as e:
            raise errors.UnavailableError(None, None, f"A ps task is unavailable: {e}") from None
        self._flush()  # updates for tasks this run does not read go on their own
        pending, self._pending = self._pending, []
        results = self._call(refs + pending)[:len(refs)]
        store = self.variables
        pulled: dict[str, np.ndarray | None] = {}
        for task, got in zip(tasks, results):
            for n in by_task[task]:
                v = got.get(n)
                if v is None:
                    store.pop(n, None)
                else:
                    if v.flags.writeable:
                        v.flags.writeable = False
                    store[n] = v
                pulled[n] = v
        return pulled

    def _flush(self, wait: bool = False) -> None:
        """Sends the updates still in the outbox (one call per task); with `wait`, until they are applied."""
        outbox, self._outbox = self._outbox, {}
        for task, (sets, deltas) in outbox.items():
            self._pending.append(self._store(task).push.remote(sets, deltas))
        if wait and self._pending:
            pending, self._pending = self._pending, []
            self._call(pending)

    def _push(self, access: _Access, pulled: dict[str, np.ndarray | None], wait: bool = False) -> None:
        """Queues what this session changed in the pulled variables, for the next call to each task.

        They travel with the next step's read (one message per task and step); `wait` sends them now.
        """
        store = self.variables
        for task, names in access.by_task.items():
            sets: dict[str, np.ndarray] = {}
            deltas: dict[str, np.ndarray] = {}
            for n in names:
                new, old = store.get(n), pulled.get(n)
                if new is None or new is old:
                    continue
                if old is None or n in access.set_names or new.dtype.kind not in "iuf" or new.shape != old.shape:
                    sets[n] = new
                else:
                    deltas[n] = np.asarray(np.subtract(new, old))
            if sets or deltas:
                if task in self._outbox:  # an unsent earlier update goes first
                    self._flush()
                self._outbox[task] = (sets, deltas)
        if wait:
            self._flush(wait=True)

    # -- Session API -------------------------------------------------------------------------------------
    def run(self, fetches: Any, feed_dict: Any = None, options: Any = None, run_metadata: Any = None) -> Any:
        """Session.run with the remote variables it touches fetched before and updated after."""
        self._check_open()
        flat: list[Tensor | Operation] = []
        _flatten_fetches(self._graph, fetches, flat)
        fed = [self._graph.as_graph_element(k, allow_tensor=True, allow_operation=False) for k in feed_dict or ()]
        access = self._access_for(flat, fed)
        if not access.by_task:
            return super().run(fetches, feed_dict, options, run_metadata)
        pulled = self._pull(access.by_task)
        try:
            return super().run(fetches, feed_dict, options, run_metadata)
        finally:
            self._push(access, pulled)

    def _by_task(self, names: list[str]) -> dict[Task, list[str]]:
        out: dict[Task, list[str]] = {}
        for n in names:
            try:
                task = self._task_of(self._graph.get_operation_by_name(n))
            except KeyError:
                continue
            if task is not None:
                out.setdefault(task, []).append(n)
        return out

    def _read_variables(self, names: list[str]) -> list[np.ndarray]:
        """Current values (remote ones fetched from their tasks), as the Saver reads them."""
        self._check_open()
        by_task = self._by_task(names)
        if by_task:
            self._pull(by_task)
        return super()._read_variables(names)

    def _write_variables(self, values: dict[str, np.ndarray], owned: bool = False) -> None:
        """Sets variables here and, for remote ones, on their tasks (waiting until they have them)."""
        super()._write_variables(values, owned)
        by_task = self._by_task(list(values))
        if by_task:
            access = _Access(by_task, {n for names in by_task.values() for n in names})
            self._push(access, {}, wait=True)

    def close(self) -> None:
        """Waits (bounded) for this session's last updates to reach their tasks, then closes."""
        if not self._closed and (self._pending or self._outbox):
            try:
                self._flush(wait=True)
            except errors.UnavailableError:
                pass  # the task is gone; its state went with it
        self._pending, self._outbox = [], {}
        super().close()
