"""`tf.train.Optimizer`: the base class of the optimizers, with TF1's minimize / compute / apply API.

Subclasses create their slot variables (`_create_slots`), convert hyperparameters to tensors
(`_prepare`) and build one update op per variable (`_apply_dense`), usually one of training_ops' Apply
ops. Slots are ordinary non-trainable global variables named like TF's (`w/Adam`, `w/Adam_1`), so the
Saver writes and restores them.
"""
from __future__ import annotations

import contextlib
from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import (
    Graph,
    GraphKeys,
    Operation,
    Tensor,
    get_default_graph,
    name_scope,
)
from jitflow.gradients import gradients
from jitflow.ops import control_flow_ops, state_ops
from jitflow.ops.array_ops import fill
from jitflow.ops.constant_op import constant, convert_to_tensor
from jitflow.ops.math_ops import cast
from jitflow.variables import Variable, trainable_variables

_VALID_DTYPES = (dtypes.float16, dtypes.float32, dtypes.float64)


def _var_key(var: Variable) -> tuple[Graph, str]:
    return (var.graph, var.op.name)


class Optimizer:
    """Base class for optimizers: computes gradients of a loss and applies them to variables."""

    GATE_NONE = 0
    GATE_OP = 1
    GATE_GRAPH = 2

    def __init__(self, use_locking: bool, name: str) -> None:
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._use_locking = use_locking
        self._name = name
        self._slots: dict[str, dict[tuple[Graph, str], Variable]] = {}
        self._non_slot_dict: dict[tuple[str, Graph], Variable] = {}

    def get_name(self) -> str:
        return self._name

    # -- the public API ---------------------------------------------------------------------------------
    def minimize(self, loss: Any, global_step: Any = None, var_list: Any = None, gate_gradients: int = GATE_OP,
                 aggregation_method: Any = None, colocate_gradients_with_ops: bool = False,
                 name: str | None = None, grad_loss: Any = None) -> Operation:
        """Adds ops that compute the gradients of `loss` and apply them; returns the train op.

        With `global_step`, the train op also increments it by one, after the updates.
        """
        grads_and_vars = self.compute_gradients(
            loss, var_list=var_list, gate_gradients=gate_gradients, aggregation_method=aggregation_method,
            colocate_gradients_with_ops=colocate_gradients_with_ops, grad_loss=grad_loss)
        if not [v for g, v in grads_and_vars if g is not None]:
            raise ValueError(
                "No gradients provided for any variable, check your graph for ops that do not support "
                f"gradients, between variables {[str(v) for _, v in grads_and_vars]} and loss {loss}.")
        return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss: Any, var_list: Any = None, gate_gradients: int = GATE_OP,
                          aggregation_method: Any = None, colocate_gradients_with_ops: bool = False,
                          grad_loss: Any = None) -> list[tuple[Tensor | None, Variable]]:
        """[(gradient or None, variable)] for `var_list` (default: the trainable variables)."""
        if callable(loss) and not isinstance(loss, Tensor):
            raise NotImplementedError("`loss` passed to Optimizer.compute_gradients should be a Tensor, "
                                      "not a function, in graph mode.")
        if gate_gradients not in (Optimizer.GATE_NONE, Optimizer.GATE_OP, Optimizer.GATE_GRAPH):
            raise ValueError("gate_gradients must be one of: Optimizer.GATE_NONE, Optimizer.GATE_OP, "
                             f"Optimizer.GATE_GRAPH.  Not {gate_gradients}")
        loss_t = convert_to_tensor(loss)
        self._assert_valid_dtypes([loss_t])
        if grad_loss is not None:
            grad_loss = convert_to_tensor(grad_loss)
            self._assert_valid_dtypes([grad_loss])
        with loss_t.graph.as_default():
            if var_list is None:
                var_list = trainable_variables()
            else:
                var_list = _flatten(var_list)
        if not var_list:
            raise ValueError("No variables to optimize.")
        for v in var_list:
            if not isinstance(v, Variable):
                raise NotImplementedError(f"('Trying to optimize unsupported type ', {v!r})")
        grads = gradients(loss_t, var_list, grad_ys=grad_loss,
                          colocate_gradients_with_ops=colocate_gradients_with_ops,
                          aggregation_method=aggregation_method)
        if gate_gradients == Optimizer.GATE_GRAPH:
            grads = control_flow_ops.tuple(grads)
        grads_and_vars = list(zip(grads, var_list))
        self._assert_valid_dtypes([v for g, v in grads_and_vars if g is not None])
        return grads_and_vars

    def apply_gradients(self, grads_and_vars: Any, global_step: Any = None, name: str | None = None
                        ) -> Operation:
        """Adds the update ops for `grads_and_vars`; returns the train op (a group named `name`).

        Variables whose gradient is None are left alone. Each update runs after its variable's snapshot
        (`name/read`) has been taken, so every gradient of the step sees the values from before it.
        """
        pairs = list(grads_and_vars)
        if not pairs:
            raise ValueError("No variables provided.")
        converted: list[tuple[Tensor | None, Variable]] = []
        for g, v in pairs:
            if g is not None:
                try:
                    g = convert_to_tensor(g)
                except (TypeError, ValueError):
                    raise TypeError(f"Gradient must be convertible to a Tensor or IndexedSlices, or None: "
                                    f"{g}") from None
            if not isinstance(v, Variable):
                raise NotImplementedError(f"('Trying to optimize unsupported type ', {v!r})")
            if g is not None and g.dtype is not v.dtype.base_dtype:
                raise TypeError(f"Gradient dtype {g.dtype.name} does not match variable {v.name} "
                                f"dtype {v.dtype.base_dtype.name}")
            converted.append((g, v))
        var_list = [v for g, v in converted if g is not None]
        if not var_list:
            raise ValueError(f"No gradients provided for any variable: {[str(v) for _, v in converted]}.")
        graph = var_list[0].graph
        with graph.as_default():
            with graph.control_dependencies(None):
                self._create_slots(var_list)
            update_ops: list[Operation] = []
            with name_scope(name, self._name) as scope:
                self._prepare()
                for g, v in converted:
                    if g is None:
                        continue
                    with name_scope("update_" + v.op.name), graph.control_dependencies([v.value().op]):
                        update_ops.append(self._apply_dense(g, v))
                if global_step is None:
                    train_op = self._finish(update_ops, scope)
                else:
                    with graph.control_dependencies([self._finish(update_ops, "update")]):
                        train_op = state_ops.assign_add(global_step, 1, name=scope).op
            train_ops = graph.get_collection_ref(GraphKeys.TRAIN_OP)
            if train_op not in train_ops:
                train_ops.append(train_op)
            return train_op

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        """The slot variable `name` (e.g. "m") created for `var`, or None."""
        named = self._slots.get(name)
        return named.get(_var_key(var)) if named else None

    def get_slot_names(self) -> list[str]:
        """The names of the slots this optimizer creates, sorted."""
        return sorted(self._slots)

    def variables(self) -> list[Variable]:
        """The optimizer's own variables in the default graph (slots and e.g. beta1_power), by name."""
        g = get_default_graph()
        found = [v for (_, vg), v in self._non_slot_dict.items() if vg is g]
        found += [v for slots in self._slots.values() for (vg, _), v in slots.items() if vg is g]
        return sorted(found, key=lambda v: v.name)

    # -- for subclasses ------------------------------------------------------------------------------------
    def _create_slots(self, var_list: list[Variable]) -> None:
        """Creates the slot variables of `var_list` (none by default)."""

    def _prepare(self) -> None:
        """Converts hyperparameters to tensors before the updates are built."""

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        raise NotImplementedError()

    def _finish(self, update_ops: list[Operation], name: str) -> Operation:
        """The op that completes one step (a group of the updates by default)."""
        return control_flow_ops.group(*update_ops, name=name)

    def _call_if_callable(self, param: Any) -> Any:
        return param() if callable(param) else param

    def _tensor(self, value: Any, name: str) -> Tensor:
        """A hyperparameter as a tensor: TF's conversion (a Python float becomes a float32 constant)."""
        value = self._call_if_callable(value)
        if isinstance(value, Tensor) or hasattr(value, "_as_tensor"):
            return convert_to_tensor(value)
        return convert_to_tensor(value, name=name)

    @staticmethod
    def _cast_like(t: Tensor, var: Variable) -> Tensor:
        """`t` in `var`'s dtype (updates compute in the variable's precision)."""
        return t if t.dtype is var.dtype.base_dtype else cast(t, var.dtype)

    def _assert_valid_dtypes(self, tensors: list[Any]) -> None:
        for t in tensors:
            dt = t.dtype.base_dtype if hasattr(t.dtype, "base_dtype") else t.dtype
            if dt not in _VALID_DTYPES:
                raise ValueError(f"Invalid type {dt.name} for {t.name}, expected: "
                                 f"{[d.name for d in _VALID_DTYPES]}.")

    # -- slots ---------------------------------------------------------------------------------------------
    def _slot_variable(self, var: Variable, slot_name: str, op_name: str, value: float = 0.0) -> Variable:
        """The slot `slot_name` of `var` (created filled with `value` and named `var/op_name`)."""
        named = self._slots.setdefault(slot_name, {})
        key = _var_key(var)
        slot = named.get(key)
        if slot is None:
            g = var.graph
            # Slots live next to their variable (same device), under its name, outside any name scope.
            with g.as_default(), g.name_scope(None), _device_of(var):
                slot = Variable(lambda: _filled(var, value), trainable=False, name=f"{var.op.name}/{op_name}",
                                dtype=var.dtype.base_dtype)
            named[key] = slot
        return slot

    def _zeros_slot(self, var: Variable, slot_name: str, op_name: str) -> Variable:
        return self._slot_variable(var, slot_name, op_name, 0.0)

    def _get_non_slot_variable(self, name: str, graph: Graph | None = None) -> Variable | None:
        return self._non_slot_dict.get((name, graph if graph is not None else get_default_graph()))

    def _create_non_slot_variable(self, initial_value: float, name: str, colocate_with: Variable) -> Variable:
        """A per-graph optimizer variable such as Adam's `beta1_power`, next to `colocate_with`."""
        g = colocate_with.graph
        key = (name, g)
        v = self._non_slot_dict.get(key)
        if v is None:
            with g.as_default(), _device_of(colocate_with):
                v = Variable(initial_value, name=name, trainable=False)
            self._non_slot_dict[key] = v
        return v


def _device_of(var: Variable) -> Any:
    """A device scope placing new ops on `var`'s device (no scope if it has none)."""
    return var.graph.device(var.device) if var.device else contextlib.nullcontext()


def _filled(var: Variable, value: float) -> Tensor:
    # Fill from a shape keeps the graph small, where a constant would hold a copy of the whole value.
    return fill(constant(var.shape.as_list(), dtype=dtypes.int32), constant(value, dtype=var.dtype))


def _flatten(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flatten(item)]
    if isinstance(x, dict):
        return [y for item in x.values() for y in _flatten(item)]
    return [x]
