"""Optimizer updates of ps variables, applied by the ps task itself (as TF places them there).

The worker computes an update op's inputs (the gradient, learning rate, ...) in its plan and sends
them with the update rule (the same function its kernels are built from); the ps task applies the
rule to its current values of the variable and its slots, so concurrent workers' Adam or momentum
updates compose as they do in TF.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jitflow.framework.graph import Operation, Tensor
from jitflow.train import training_ops

Task = tuple[str, int]


@dataclass(frozen=True)
class RemoteApply:
    """One update op whose variable and slots all live on ps task `task`."""

    task: Task
    refs: tuple[str, ...]  # the variable and its slots, in the rule's order
    rule: Callable[..., tuple]
    args: tuple[Tensor, ...]  # the op's other inputs, computed by the worker


def find_remote_applies(ops: list[Operation], task_of: Callable[[Operation], Task | None]) -> list[RemoteApply]:
    """The update ops among `ops` whose references all live on one remote task."""
    found = []
    for op in ops:
        upd = training_ops.UPDATES.get(op.type)
        if upd is None:
            continue
        ref_ops = [op.inputs[i].op for i in range(len(upd.refs))]
        tasks = {task_of(r) for r in ref_ops}
        task = tasks.pop() if len(tasks) == 1 else None
        if task is not None:
            found.append(RemoteApply(task, tuple(r.name for r in ref_ops), training_ops.update_rule(op),
                                     tuple(op.inputs[len(upd.refs):])))
    return found


def messages(applies: list[RemoteApply], values: list[Any]) -> dict[Task, list[tuple[Any, ...]]]:
    """Per task, the (rule, variable names, input values) of each update, from the fetched `values`."""
    out: dict[Task, list[tuple[Any, ...]]] = {}
    i = 0
    for a in applies:
        n = len(a.args)
        args = [np.asarray(v) for v in values[i:i + n]]
        i += n
        out.setdefault(a.task, []).append((a.rule, a.refs, args))
    return out


def ship_rules_by_value() -> None:
    """Lets Ray send the update rules to ps tasks that cannot import jitflow."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(training_ops)
