"""Ops that TensorFlow's v1 loops use and jitflow's own loop constructors do not.

- TensorArrays in TensorFlow's form (`TFTensorArray*`): the handle output carries the array and the
  flow is a float scalar that only orders the ops, as TF's are. jitflow's own `TensorArray` carries the
  array in its flow; these are what `import_graph_def` makes of a TF-written `TensorArrayV3` & co., and
  they are written back under TF's op types.
- The stacks through which TF's loop gradients keep forward values (`StackV2`, `StackPushV2`,
  `StackPopV2`), and the helpers of TF's gradient code inside loops (`TanhGrad`, `SigmoidGrad`,
  `ConcatOffset`, `ControlTrigger`).
All run on their NumPy kernels.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation
from jitflow.framework.tensor_shape import TensorShape, as_shape
from jitflow.ops.tensor_array_ops import _CLEARED, TAValue

_V = dtypes.variant
_SCALAR = TensorShape([])
_FLOW = (dtypes.float32, _SCALAR)
_ZERO_FLOW = np.float32(0.0)


class HandleTA(TAValue):
    """A TensorArray reached through its handle (TF's form); it keeps its gradient arrays by source."""

    __slots__ = ("grads", "is_grad")

    def __init__(self, *args: Any, is_grad: bool = False) -> None:
        super().__init__(*args)
        self.grads: dict[str, HandleTA] = {}
        self.is_grad = is_grad

    def write(self, index: int, value: Any, check: bool = True) -> None:
        """Writes; a gradient array sums repeated writes to one index, as TF's does."""
        if self.is_grad and 0 <= index < len(self.items) and self.items[index] is not None \
                and self.items[index] is not _CLEARED:
            self.items[index] = self.items[index] + np.asarray(value, self.np_dtype)
            return
        super().write(index, value, check)

    def read(self, index: int) -> np.ndarray:
        """Reads; an unwritten element of a gradient array is zeros (TF's rule)."""
        if self.is_grad and 0 <= index < len(self.items) and self.items[index] is None \
                and self.element_shape is not None:
            return np.zeros(self.element_shape, self.np_dtype)
        return super().read(index)

    def grad(self, source: str) -> HandleTA:
        """The gradient array for `source` (the same one each time, created on first use)."""
        g = self.grads.get(source)
        if g is None:
            g = HandleTA(len(self.items), self.np_dtype, False, False, self.element_shape,
                         f"{self.name}@{source}", is_grad=True)
            self.grads[source] = g
        return g


def _handle(op: Operation, v: Any) -> HandleTA:
    if not isinstance(v, HandleTA):
        raise InvalidArgumentError(None, op, f"Op {op.name} ({op.type}) expects a TensorArray handle as input "
                                             f"0, got {type(v).__name__}")
    return v


def _elem(op: Operation) -> TensorShape:
    return as_shape(op.attrs.get("element_shape"))


def _k_create(ctx: Any, op: Operation, ins: list) -> tuple:
    es = _elem(op).as_tuple()
    ta = HandleTA(int(ins[0]), op.attrs["dtype"].np, bool(op.attrs.get("dynamic_size")),
                  bool(op.attrs.get("clear_after_read", True)), es, op.attrs.get("tensor_array_name") or op.name)
    return ta, _ZERO_FLOW


def _k_write(ctx: Any, op: Operation, ins: list) -> np.float32:
    _handle(op, ins[0]).write(int(ins[1]), ins[2])
    return _ZERO_FLOW


def _k_scatter(ctx: Any, op: Operation, ins: list) -> np.float32:
    ta, idx, value = _handle(op, ins[0]), np.asarray(ins[1]).reshape(-1), ins[2]
    if len(idx) != np.shape(value)[0]:
        raise ta._err(f"Expected len(indices) == values.shape[0], but saw: {len(idx)} vs. {np.shape(value)[0]}")
    for k, i in enumerate(idx):
        ta.write(int(i), value[k])
    return _ZERO_FLOW


def _k_split(ctx: Any, op: Operation, ins: list) -> np.float32:
    ta, value, lengths = _handle(op, ins[0]), ins[1], np.asarray(ins[2])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    if starts[-1] != np.shape(value)[0]:
        raise ta._err(f"Expected sum of lengths to be equal to values.shape[0], but sum of lengths is: "
                      f"{starts[-1]} and value's shape is: {list(np.shape(value))}")
    for k in range(len(lengths)):
        ta.write(k, value[starts[k]:starts[k + 1]], check=False)
    return _ZERO_FLOW


def _k_concat(ctx: Any, op: Operation, ins: list) -> tuple:
    ta = _handle(op, ins[0])
    parts = [ta.read(i) for i in range(ta.size())]
    if not parts:
        es = ta.element_shape or (0,)
        return np.zeros((0, *es[1:]), ta.np_dtype), np.zeros(0, np.int64)
    return np.concatenate(parts), np.array([p.shape[0] for p in parts], np.int64)


def _prefixed(op: Operation) -> TensorShape:
    es = _elem(op)
    return TensorShape(None) if es.ndims is None else TensorShape([None, *es.as_tuple()])  # type: ignore[misc]


_TA_OPS: list[tuple[str, Any, Any]] = [
    ("TFTensorArrayV3", lambda op: [(_V, _SCALAR), _FLOW], _k_create),
    ("TFTensorArrayWriteV3", lambda op: [_FLOW], _k_write),
    ("TFTensorArrayScatterV3", lambda op: [_FLOW], _k_scatter),
    ("TFTensorArraySplitV3", lambda op: [_FLOW], _k_split),
    ("TFTensorArrayReadV3", lambda op: [(op.attrs["dtype"], _elem(op))],
     lambda c, op, ins: _handle(op, ins[0]).read(int(ins[1]))),
    ("TFTensorArrayGatherV3", lambda op: [(op.attrs["dtype"], _prefixed(op))],
     lambda c, op, ins: _handle(op, ins[0]).gather(ins[1])),
    ("TFTensorArrayConcatV3", lambda op: [(op.attrs["dtype"], TensorShape(None)),
                                          (dtypes.int64, TensorShape([None]))], _k_concat),
    ("TFTensorArraySizeV3", lambda op: [(dtypes.int32, _SCALAR)],
     lambda c, op, ins: np.int32(_handle(op, ins[0]).size())),
    ("TensorArrayCloseV3", lambda op: [], lambda c, op, ins: None),
    ("TensorArrayGradV3", lambda op: [(_V, _SCALAR), _FLOW],
     lambda c, op, ins: (_handle(op, ins[0]).grad(str(op.attrs.get("source", ""))), _ZERO_FLOW)),
]
registry.register_op("TensorArrayGradWithShape", lambda op: [(_V, _SCALAR), _FLOW],  # (shape_to_prepend: unused)
                     lambda c, op, ins: (_handle(op, ins[0]).grad(str(op.attrs.get("source", ""))), _ZERO_FLOW),
                     registry.STATEFUL)
registry.not_differentiable("TensorArrayGradWithShape")
TF_TENSOR_ARRAY_TYPES = {t[2:]: t for t, _, _ in _TA_OPS if t.startswith("TF")}  # TF's op type -> jitflow's
for _t, _infer, _k in _TA_OPS:
    registry.register_op(_t, _infer, _k, registry.STATEFUL)
    if _t not in ("TFTensorArrayReadV3", "TFTensorArrayGatherV3", "TFTensorArrayWriteV3", "TFTensorArrayScatterV3"):
        registry.not_differentiable(_t)  # (the others' gradients are below)


# ---- stacks ----------------------------------------------------------------------------------------

class _Stack(list):
    """The values pushed onto one stack in one run."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def _stack(op: Operation, v: Any) -> _Stack:
    if not isinstance(v, _Stack):
        raise InvalidArgumentError(None, op, f"Op {op.name} ({op.type}) expects a stack handle as input 0")
    return v


def _k_push(ctx: Any, op: Operation, ins: list) -> Any:
    _stack(op, ins[0]).append(np.array(ins[1]))  # a copy: the value may be a reusable buffer
    return ins[1]


def _k_pop(ctx: Any, op: Operation, ins: list) -> Any:
    s = _stack(op, ins[0])
    if not s:
        raise InvalidArgumentError(None, op, f"Stack {s.name} is empty (popped by {op.name}).")
    return s.pop()


registry.register_op("StackV2", lambda op: [(_V, _SCALAR)], lambda c, op, ins: _Stack(op.attrs.get("stack_name")
                                                                                       or op.name),
                     registry.STATEFUL)
registry.register_op("StackPushV2", lambda op: [(op.inputs[1].dtype, op.inputs[1].shape)], _k_push,
                     registry.STATEFUL)
registry.register_op("StackPopV2", lambda op: [(op.attrs["elem_type"], TensorShape(None))], _k_pop,
                     registry.STATEFUL)
registry.register_op("StackCloseV2", lambda op: [], lambda c, op, ins: None, registry.STATEFUL)
registry.register_op("ControlTrigger", lambda op: [], lambda c, op, ins: None, registry.STATEFUL)
# TF < 1.5 wrote the first stack ops (a string_ref handle, no size input): the same stacks
registry.register_op("Stack", lambda op: [(_V, _SCALAR)], lambda c, op, ins: _Stack(op.attrs.get("stack_name")
                                                                                     or op.name), registry.STATEFUL)
for _old, _new in (("StackPush", "StackPushV2"), ("StackPop", "StackPopV2"), ("StackClose", "StackCloseV2")):
    _d = registry.get_opdef(_new)
    registry.register_op(_old, _d.infer, _d.kernel, registry.STATEFUL)
for _t in ("StackV2", "StackPushV2", "StackPopV2", "StackCloseV2", "ControlTrigger", "Stack", "StackPush", "StackPop",
           "StackClose"):
    registry.not_differentiable(_t)


# ---- gradient helpers -------------------------------------------------------------------------------

def _like_dy(op: Operation) -> list:
    return [(op.inputs[1].dtype, op.inputs[1].shape)]


def _k_concat_offset(ctx: Any, op: Operation, ins: list) -> tuple:
    """The offset of each input of a ConcatV2 along its axis (TF's ConcatOffset)."""
    shapes = [np.asarray(s) for s in ins[1:]]
    axis = int(ins[0]) % len(shapes[0])
    out, pos = [], 0
    for s in shapes:
        off = np.zeros_like(s)
        off[axis] = pos
        pos += int(s[axis])
        out.append(off)
    return tuple(out)


registry.register_op("TanhGrad", _like_dy, lambda c, op, ins: ins[1] * (1 - ins[0] * ins[0]))
registry.register_op("SigmoidGrad", _like_dy, lambda c, op, ins: ins[1] * ins[0] * (1 - ins[0]))
registry.register_op("ConcatOffset", lambda op: [(t.dtype, t.shape) for t in op.inputs[1:]], _k_concat_offset)
for _t in ("TanhGrad", "SigmoidGrad", "ConcatOffset"):
    registry.not_differentiable(_t)


# ---- gradients of TF-form TensorArray ops (TF's rules: the gradient array of a handle, by source) ------------

def _mk(op_type: str, inputs: list, attrs: dict, name: str) -> Operation:
    return inputs[0].graph.create_op(op_type, inputs, attrs, name=name)


def _grad_handle(op: Operation, flow: Any) -> Operation:
    """TensorArrayGradV3 of `op`'s array, ordered after `flow`."""
    return _mk("TensorArrayGradV3", [op.inputs[0], flow], {"source": GRAD_SOURCE}, "TensorArrayGrad")


def _flow_or_input(op: Operation, g: Any) -> Any:
    return g if g is not None else op.inputs[-1]


GRAD_SOURCE = "gradients"


@registry.register_gradient("TFTensorArrayReadV3")
def _read_grad(op: Operation, g: Any) -> list:
    gh = _grad_handle(op, op.inputs[2])
    w = _mk("TFTensorArrayWriteV3", [gh.outputs[0], op.inputs[1], g, gh.outputs[1]], {"T": g.dtype},
            "TensorArrayWrite")
    return [None, None, w.outputs[0]]


@registry.register_gradient("TFTensorArrayGatherV3")
def _gather_grad(op: Operation, g: Any) -> list:
    gh = _grad_handle(op, op.inputs[2])
    w = _mk("TFTensorArrayScatterV3", [gh.outputs[0], op.inputs[1], g, gh.outputs[1]], {"T": g.dtype},
            "TensorArrayScatter")
    return [None, None, w.outputs[0]]


@registry.register_gradient("TFTensorArrayWriteV3")
def _write_grad(op: Operation, g: Any) -> list:
    flow = _flow_or_input(op, g)
    gh = _grad_handle(op, flow)
    value = op.inputs[2]
    r = _mk("TFTensorArrayReadV3", [gh.outputs[0], op.inputs[1], gh.outputs[1]],
            {"dtype": value.dtype, "element_shape": value.shape}, "TensorArrayRead")
    return [None, None, r.outputs[0], flow]


@registry.register_gradient("TFTensorArrayScatterV3")
def _scatter_grad(op: Operation, g: Any) -> list:
    flow = _flow_or_input(op, g)
    gh = _grad_handle(op, flow)
    value = op.inputs[2]
    dims = value.shape.as_tuple()
    r = _mk("TFTensorArrayGatherV3", [gh.outputs[0], op.inputs[1], gh.outputs[1]],
            {"dtype": value.dtype, "element_shape": TensorShape(dims[1:]) if dims else TensorShape(None)},
            "TensorArrayGather")
    return [None, None, r.outputs[0], flow]

