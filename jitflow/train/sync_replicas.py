"""`tf.train.SyncReplicasOptimizer`: synchronous data-parallel training over the worker tasks.

Each step, every worker computes its update from the variables of the current global step; the ps
tasks collect `replicas_to_aggregate` of them, apply their average once, and advance the global step,
while workers wait for the round to complete. Updates computed for an older global step arrive stale
and are dropped, as TF drops stale gradients. Averaging the updates is averaging the gradients for
SGD (the update is linear in the gradient); for other rules it averages the workers' updates.
In a session without ps tasks the wrapped optimizer's update applies at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jitflow.framework.graph import Operation, get_default_graph

from .hooks import SessionRunHook
from .optimizer import Optimizer

SYNC_REPLICAS_KEY = "jitflow_sync_replicas"  # graph collection of SyncRound entries


@dataclass(frozen=True)
class SyncRound:
    """What a distributed session needs to run `train_op` synchronously."""

    train_op: Operation
    global_step: str  # the global step variable's op name
    replicas_to_aggregate: int


class SyncReplicasOptimizer(Optimizer):
    """Wraps `opt` so that its updates are aggregated over `replicas_to_aggregate` workers per step."""

    def __init__(self, opt: Optimizer, replicas_to_aggregate: int, total_num_replicas: int | None = None,
                 variable_averages: Any = None, variables_to_average: Any = None, use_locking: bool = False,
                 name: str = "sync_replicas") -> None:
        super().__init__(use_locking, name)
        if replicas_to_aggregate < 1:
            raise ValueError(f"replicas_to_aggregate must be positive, got {replicas_to_aggregate}")
        if variable_averages is not None:
            raise NotImplementedError("SyncReplicasOptimizer: variable_averages is not supported")
        self._opt = opt
        self._replicas_to_aggregate = replicas_to_aggregate
        self._total_num_replicas = total_num_replicas or replicas_to_aggregate

    def compute_gradients(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped optimizer's gradients."""
        return self._opt.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars: Any, global_step: Any = None, name: str | None = None) -> Operation:
        """The wrapped optimizer's update, run in synchronous rounds; `global_step` is required."""
        if global_step is None:
            raise ValueError("Global step is required to check staleness")
        train_op = self._opt.apply_gradients(grads_and_vars, global_step=global_step, name=name)
        g = train_op.graph
        g.add_to_collection(SYNC_REPLICAS_KEY, SyncRound(train_op, global_step.op.name,
                                                          self._replicas_to_aggregate))
        return train_op

    def get_slot(self, var: Any, name: str) -> Any:
        return self._opt.get_slot(var, name)

    def get_slot_names(self) -> list[str]:
        return self._opt.get_slot_names()

    def variables(self) -> list[Any]:
        return self._opt.variables()

    def make_session_run_hook(self, is_chief: bool, num_tokens: int = -1) -> SessionRunHook:
        """The hook TF programs pass to MonitoredTrainingSession.

        Rounds are kept by the ps tasks, so the hook has nothing to start; it checks that the train op exists.
        """
        return _SyncReplicasHook(self, is_chief)

    def get_init_tokens_op(self, num_tokens: int = -1) -> Operation:
        """A no-op: rounds need no tokens here."""
        from jitflow.ops.control_flow_ops import no_op

        return no_op(name="sync_init_tokens")

    def get_chief_queue_runner(self) -> None:
        """None: no queue runner is needed (the ps tasks complete the rounds)."""
        return None


class _SyncReplicasHook(SessionRunHook):
    def __init__(self, opt: SyncReplicasOptimizer, is_chief: bool) -> None:
        self._opt = opt
        self._is_chief = is_chief

    def begin(self) -> None:
        if not get_default_graph().get_collection(SYNC_REPLICAS_KEY):
            raise ValueError("SyncReplicasOptimizer.apply_gradient should be called before using the hook.")
