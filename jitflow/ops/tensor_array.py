"""`tf.TensorArray`: a list of tensors written and read by index, usually inside a `while_loop`.

Every operation takes the array's flow tensor and (for writes) returns a new one, so that ops on one
array run in the order they were built. The run-time value is a `TAValue` (tensor_array_ops.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape, as_shape
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.tensor_array_ops import TAGrad, TAValue, as_grad

_V = dtypes.variant
_SCALAR = TensorShape([])


def _elem(op: Operation) -> TensorShape:
    return as_shape(op.attrs.get("element_shape"))


def _prefixed(op: Operation, first: Any) -> TensorShape:
    es = _elem(op)
    return TensorShape(None) if es.ndims is None else TensorShape([first, *es.as_tuple()])  # type: ignore[misc]


def _k_create(ctx: Any, op: Operation, ins: list) -> TAValue:
    es = _elem(op).as_tuple()
    return TAValue(int(ins[0]), op.attrs["dtype"].np, op.attrs["dynamic_size"], op.attrs["clear_after_read"],
                   es, op.attrs["tensor_array_name"] or op.name)


def _k_write(ctx: Any, op: Operation, ins: list) -> TAValue:
    ta, index, value = ins
    ta.write(int(index), value)
    return ta


def _k_scatter(ctx: Any, op: Operation, ins: list) -> TAValue:
    ta, indices, value = ins
    idx = np.asarray(indices).reshape(-1)
    if len(idx) != np.shape(value)[0]:
        raise ta._err(f"Expected len(indices) == values.shape[0], but saw: {len(idx)} vs. {np.shape(value)[0]}")
    for k, i in enumerate(idx):
        ta.write(int(i), value[k])
    return ta


def _k_unstack(ctx: Any, op: Operation, ins: list) -> TAValue:
    ta, value = ins
    return _k_scatter(ctx, op, [ta, np.arange(np.shape(value)[0]), value])


def _k_split(ctx: Any, op: Operation, ins: list) -> TAValue:
    ta, value, lengths = ins
    starts = np.concatenate([[0], np.cumsum(lengths)])
    if starts[-1] != np.shape(value)[0]:
        raise ta._err(f"Expected sum of lengths to be equal to values.shape[0], but sum of lengths is: "
                      f"{starts[-1]} and value's shape is: {list(np.shape(value))}")
    for k in range(len(lengths)):
        ta.write(k, value[starts[k]:starts[k + 1]], check=False)  # pieces differ in length
    return ta


def _k_concat(ctx: Any, op: Operation, ins: list) -> tuple:
    ta = ins[0]
    parts = [ta.read(i) for i in range(ta.size())]
    if not parts:
        es = ta.element_shape or (0,)
        return np.zeros((0, *es[1:]), ta.np_dtype), np.zeros(0, np.int64)
    return np.concatenate(parts), np.array([p.shape[0] for p in parts], np.int64)


_OPS: list[tuple[str, Any, Any]] = [
    ("TensorArrayV3", lambda op: [(_V, _SCALAR)], _k_create),
    ("TensorArrayWriteV3", lambda op: [(_V, _SCALAR)], _k_write),
    ("TensorArrayScatterV3", lambda op: [(_V, _SCALAR)], _k_scatter),
    ("TensorArrayUnstack", lambda op: [(_V, _SCALAR)], _k_unstack),
    ("TensorArraySplitV3", lambda op: [(_V, _SCALAR)], _k_split),
    ("TensorArrayReadV3", lambda op: [(op.attrs["dtype"], _elem(op))], lambda c, op, ins: ins[0].read(int(ins[1]))),
    ("TensorArrayGatherV3", lambda op: [(op.attrs["dtype"], _prefixed(op, None))],
     lambda c, op, ins: ins[0].gather(ins[1])),
    ("TensorArrayStack", lambda op: [(op.attrs["dtype"], _prefixed(op, None))],
     lambda c, op, ins: ins[0].gather(np.arange(ins[0].size()))),
    ("TensorArrayConcatV3", lambda op: [(op.attrs["dtype"], TensorShape(None)), (dtypes.int64, TensorShape([None]))],
     _k_concat),
    ("TensorArraySizeV3", lambda op: [(dtypes.int32, _SCALAR)], lambda c, op, ins: np.int32(ins[0].size())),
]
for _t, _infer, _k in _OPS:
    registry.register_op(_t, _infer, _k, registry.STATEFUL)
for _t in ("TensorArrayV3", "TensorArraySizeV3"):
    registry.not_differentiable(_t)


# -- gradients: the element gradients travel as a TAGrad (attr `forward`: the forward op's flow) ----------------
def _k_grad_read(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g, index, like = ins
    return as_grad(g).get(int(index), np.asarray(like))


def _k_grad_gather(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g, indices, like = ins
    gg = as_grad(g)
    like = np.asarray(like)
    idx = np.asarray(indices).reshape(-1)
    if len(idx) == 0:
        return np.zeros_like(like)
    return np.stack([gg.get(int(i), like[k]) for k, i in enumerate(idx)])


def _k_grad_from(ctx: Any, op: Operation, ins: list) -> TAGrad:
    indices, g = ins
    res = TAGrad()
    for k, i in enumerate(np.asarray(indices).reshape(-1)):
        res = res + TAGrad({int(i): np.array(g[k])})  # copies: g may be a reusable buffer
    return res


def _k_grad_split(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g, like, lengths = ins
    like = np.asarray(like)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    gg = as_grad(g)
    parts = [gg.get(k, like[starts[k]:starts[k + 1]]) for k in range(len(lengths))]
    return np.concatenate(parts) if parts else np.zeros_like(like)


registry.register_op("TensorArrayGradRead", lambda op: [(op.inputs[2].dtype, op.inputs[2].shape)], _k_grad_read)
registry.register_op("TensorArrayGradGather", lambda op: [(op.inputs[2].dtype, op.inputs[2].shape)],
                     _k_grad_gather)
registry.register_op("TensorArrayGradFrom", lambda op: [(_V, _SCALAR)], _k_grad_from)
registry.register_op("TensorArrayGradSplit", lambda op: [(op.inputs[1].dtype, op.inputs[1].shape)],
                     _k_grad_split)
registry.register_op("TensorArrayGradAdd", lambda op: [(_V, _SCALAR)],
                     lambda c, op, ins: sum((as_grad(x) for x in ins), TAGrad()))
for _t in ("TensorArrayGradRead", "TensorArrayGradGather", "TensorArrayGradFrom", "TensorArrayGradSplit",
           "TensorArrayGradAdd"):
    registry.not_differentiable(_t)


def _mk(op_type: str, inputs: list[Tensor], name: str, **attrs: Any) -> Operation:
    return inputs[0].graph.create_op(op_type, inputs, attrs, name=name)


def add_grads(gs: list[Tensor]) -> Tensor:
    """The sum of several TensorArray gradients (used by tf.gradients for flow tensors)."""
    return _mk("TensorArrayGradAdd", gs, "TensorArrayGradAdd").outputs[0]


@registry.register_gradient("TensorArrayWriteV3")
def _write_grad(op: Operation, g: Tensor) -> list[Any]:
    _, index, value = op.inputs
    gx = _mk("TensorArrayGradRead", [g, index, value], "TensorArrayGradRead", forward=op.inputs[0])
    return [g, None, gx.outputs[0]]


@registry.register_gradient("TensorArrayScatterV3")
def _scatter_grad(op: Operation, g: Tensor) -> list[Any]:
    _, indices, value = op.inputs
    gx = _mk("TensorArrayGradGather", [g, indices, value], "TensorArrayGradGather", forward=op.inputs[0])
    return [g, None, gx.outputs[0]]


@registry.register_gradient("TensorArrayUnstack")
def _unstack_grad(op: Operation, g: Tensor) -> list[Any]:
    from jitflow.ops.array_ops import range as _range
    from jitflow.ops.array_ops import shape

    value = op.inputs[1]
    idx = _range(shape(value)[0])
    return [g, _mk("TensorArrayGradGather", [g, idx, value], "TensorArrayGradGather", forward=op.inputs[0]).outputs[0]]


@registry.register_gradient("TensorArraySplitV3")
def _split_grad(op: Operation, g: Tensor) -> list[Any]:
    _, value, lengths = op.inputs
    gx = _mk("TensorArrayGradSplit", [g, value, lengths], "TensorArrayGradSplit", forward=op.inputs[0])
    return [g, gx.outputs[0], None]


@registry.register_gradient("TensorArrayReadV3")
def _read_grad(op: Operation, g: Tensor) -> list[Any]:
    from jitflow.ops.array_ops import expand_dims, reshape

    idx = reshape(op.inputs[1], [1])
    gx = _mk("TensorArrayGradFrom", [idx, expand_dims(g, 0)], "TensorArrayGradFrom", forward=op.inputs[0])
    return [gx.outputs[0], None]


@registry.register_gradient("TensorArrayGatherV3")
def _gather_grad(op: Operation, g: Tensor) -> list[Any]:
    return [_mk("TensorArrayGradFrom", [op.inputs[1], g], "TensorArrayGradFrom", forward=op.inputs[0]).outputs[0], None]


@registry.register_gradient("TensorArrayStack")
def _stack_grad(op: Operation, g: Tensor) -> list[Any]:
    from jitflow.ops.array_ops import range as _range
    from jitflow.ops.array_ops import shape

    idx = _range(shape(g)[0])
    return [_mk("TensorArrayGradFrom", [idx, g], "TensorArrayGradFrom", forward=op.inputs[0]).outputs[0]]


@registry.register_gradient("TensorArrayConcatV3")
def _concat_grad(op: Operation, g: Tensor, g_lengths: Tensor) -> list[Any]:
    parts_lengths = op.outputs[1]
    return [_mk("TensorArrayGradFromSplit", [g, parts_lengths], "TensorArrayGradFromSplit",
               forward=op.inputs[0]).outputs[0]]


def _k_grad_from_split(ctx: Any, op: Operation, ins: list) -> TAGrad:
    g, lengths = ins
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return TAGrad({k: np.array(g[starts[k]:starts[k + 1]]) for k in range(len(lengths))})


registry.register_op("TensorArrayGradFromSplit", lambda op: [(_V, _SCALAR)], _k_grad_from_split)
registry.not_differentiable("TensorArrayGradFromSplit")


class TensorArray:
    """TF1's `tf.TensorArray` over a flow tensor."""

    def __init__(self, dtype: Any, size: Any = None, dynamic_size: bool | None = None,
                 clear_after_read: bool | None = None, tensor_array_name: str | None = None, handle: Any = None,
                 flow: Any = None, infer_shape: bool = True, element_shape: Any = None,
                 colocate_with_first_write_call: bool = True, name: str | None = None) -> None:
        self._dtype = dtypes.as_dtype(dtype)
        self._infer_shape = infer_shape
        self._shape_box = [as_shape(element_shape)]
        self._dynamic = bool(dynamic_size)
        if flow is not None:
            self._flow = flow
            return
        if size is None:
            raise ValueError("Size must be provided if handle or flow is not provided.")
        with _name_scope(name, "TensorArray"):
            sz = convert_to_tensor(size, dtype=dtypes.int32, name="size")
            op = get_default_graph().create_op(
                "TensorArrayV3", [sz], {"dtype": self._dtype, "dynamic_size": self._dynamic,
                                        "clear_after_read": clear_after_read is None or bool(clear_after_read),
                                        "element_shape": self._shape_box[0], "tensor_array_name": tensor_array_name},
                name="TensorArrayV3")
        self._flow = op.outputs[0]

    # -- loop-variable protocol (loop_structure.py) -----------------------------------------------------
    def _as_loop_var(self) -> Tensor:
        return self._flow

    def _with_flow(self, flow: Tensor) -> TensorArray:
        ta = TensorArray.__new__(TensorArray)
        ta._dtype, ta._infer_shape, ta._shape_box, ta._dynamic = (self._dtype, self._infer_shape, self._shape_box,
                                                                   self._dynamic)
        ta._flow = flow
        return ta

    @property
    def flow(self) -> Tensor:
        return self._flow

    @property
    def handle(self) -> Tensor:
        return self._flow

    @property
    def dtype(self) -> dtypes.DType:
        return self._dtype

    @property
    def element_shape(self) -> TensorShape:
        return self._shape_box[0]

    def _note_shape(self, shape: TensorShape) -> None:
        if self._infer_shape:
            try:
                self._shape_box[0] = self._shape_box[0].merge_with(shape)
            except ValueError:
                raise ValueError(f"Inconsistent shapes: saw {shape} but expected {self._shape_box[0]} "
                                 "(and infer_shape=True)") from None

    def _attrs(self) -> dict[str, Any]:
        return {"dtype": self._dtype, "element_shape": self._shape_box[0]}

    def _value(self, value: Any) -> Tensor:
        v = value if isinstance(value, Tensor) else convert_to_tensor(value, dtype=self._dtype)
        if v.dtype is not self._dtype:
            raise TypeError(f"TensorArray dtype is {self._dtype.name} but Op is trying to write dtype "
                            f"{v.dtype.name}.")
        return v

    def read(self, index: Any, name: str | None = None) -> Tensor:
        """The element at `index`."""
        i = convert_to_tensor(index, dtype=dtypes.int32)
        return _mk("TensorArrayReadV3", [self._flow, i], name or "TensorArrayReadV3", **self._attrs()).outputs[0]

    def write(self, index: Any, value: Any, name: str | None = None) -> TensorArray:
        """A TensorArray whose element `index` is `value` (each element is written once)."""
        v = self._value(value)
        self._note_shape(v.shape)
        i = convert_to_tensor(index, dtype=dtypes.int32)
        return self._with_flow(_mk("TensorArrayWriteV3", [self._flow, i, v], name or "TensorArrayWrite").outputs[0])

    def stack(self, name: str | None = None) -> Tensor:
        """All elements stacked along a new first axis."""
        return _mk("TensorArrayStack", [self._flow], name or "TensorArrayStack", **self._attrs()).outputs[0]

    def gather(self, indices: Any, name: str | None = None) -> Tensor:
        idx = convert_to_tensor(indices, dtype=dtypes.int32)
        return _mk("TensorArrayGatherV3", [self._flow, idx], name or "TensorArrayGatherV3",
                   **self._attrs()).outputs[0]

    def concat(self, name: str | None = None) -> Tensor:
        return _mk("TensorArrayConcatV3", [self._flow], name or "TensorArrayConcatV3", **self._attrs()).outputs[0]

    def unstack(self, value: Any, name: str | None = None) -> TensorArray:
        v = self._value(value)
        if v.shape.ndims is not None and v.shape.ndims > 0:
            self._note_shape(TensorShape(v.shape.as_tuple()[1:]))  # type: ignore[index]
        return self._with_flow(_mk("TensorArrayUnstack", [self._flow, v], name or "TensorArrayUnstack").outputs[0])

    def scatter(self, indices: Any, value: Any, name: str | None = None) -> TensorArray:
        v = self._value(value)
        if v.shape.ndims is not None and v.shape.ndims > 0:
            self._note_shape(TensorShape(v.shape.as_tuple()[1:]))  # type: ignore[index]
        idx = convert_to_tensor(indices, dtype=dtypes.int32)
        return self._with_flow(_mk("TensorArrayScatterV3", [self._flow, idx, v],
                                   name or "TensorArrayScatter").outputs[0])

    def split(self, value: Any, lengths: Any, name: str | None = None) -> TensorArray:
        v = self._value(value)
        ln = convert_to_tensor(lengths, dtype=dtypes.int64)
        return self._with_flow(_mk("TensorArraySplitV3", [self._flow, v, ln], name or "TensorArraySplit").outputs[0])

    def size(self, name: str | None = None) -> Tensor:
        return _mk("TensorArraySizeV3", [self._flow], name or "TensorArraySizeV3").outputs[0]

    def identity(self) -> TensorArray:
        return self

    def close(self, name: str | None = None) -> Any:
        from jitflow.ops.control_flow_ops import no_op

        return no_op(name=name or "TensorArrayClose")
