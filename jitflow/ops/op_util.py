"""Helpers shared by op constructors: building ops, converting inputs, static shape rules."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape, shape_str
from jitflow.ops.constant_op import convert_to_tensor


def make_op(op_type: str, inputs: Sequence[Tensor], attrs: dict[str, Any] | None = None,
            name: str | None = None) -> Operation:
    """Creates an op in the graph of its inputs (or the default graph)."""
    g = inputs[0].graph if inputs else get_default_graph()
    return g.create_op(op_type, list(inputs), attrs or {}, name=name)


def out(op: Operation) -> Tensor:
    """The single output of `op`."""
    return op.outputs[0]


def broadcast_shapes(a: TensorShape, b: TensorShape, op_type: str = "", name: str = "") -> TensorShape:
    """NumPy broadcasting of two static shapes; ValueError naming both shapes when incompatible."""
    da, db = a.as_tuple(), b.as_tuple()
    if da is None or db is None:
        return TensorShape(None)
    n = max(len(da), len(db))
    pa = (1,) * (n - len(da)) + tuple(da)
    pb = (1,) * (n - len(db)) + tuple(db)
    res: list[int | None] = []
    for x, y in zip(pa, pb):
        if x == 1:
            res.append(y)
        elif y == 1:
            res.append(x)
        elif x is None:
            res.append(y)
        elif y is None or x == y:
            res.append(x)
        else:
            raise ValueError(f"Dimensions must be equal, but are {x} and {y} for '{name}' (op: '{op_type}') "
                             f"with input shapes: {shape_str(da)}, {shape_str(db)}.")
    return TensorShape(res)


def elementwise_infer(out_dtype: dtypes.DType | None = None) -> Callable[[Operation], list]:
    """Shape function of an elementwise op: broadcast of all inputs; dtype of input 0 or `out_dtype`."""

    def infer(op: Operation) -> list:
        shape = op.inputs[0].shape
        for t in op.inputs[1:]:
            shape = broadcast_shapes(shape, t.shape, op.type, op.name)
        return [(out_dtype or op.inputs[0].dtype, shape)]

    return infer


def same_dtype_inputs(op_type: str, values: Sequence[Any], names: Sequence[str] = ("x", "y"),
                      dtype: Any = None) -> list[Tensor]:
    """Converts op inputs to tensors of one dtype, like TF's op-def library (TypeError on mismatch)."""
    want = dtypes.as_dtype(dtype) if dtype is not None else None
    if want is None:
        for v in values:
            if isinstance(v, Tensor) or hasattr(v, "_as_tensor"):
                want = convert_to_tensor(v).dtype
                break
    tensors: list[Tensor] = []
    for i, v in enumerate(values):
        if isinstance(v, Tensor) or hasattr(v, "_as_tensor"):
            t = convert_to_tensor(v)
        else:
            try:
                t = convert_to_tensor(v, dtype=want)
            except (TypeError, ValueError) as e:
                raise TypeError(f"Input '{names[min(i, len(names) - 1)]}' of '{op_type}' Op could not be "
                                f"converted to {want.name if want else 'a tensor'}: {e}") from None
        tensors.append(t)
    first = tensors[0]
    for i, t in enumerate(tensors[1:], start=1):
        if t.dtype is not first.dtype:
            raise TypeError(f"Input '{names[min(i, len(names) - 1)]}' of '{op_type}' Op has type "
                            f"{t.dtype.name} that does not match type {first.dtype.name} of argument "
                            f"'{names[0]}'.")
    return tensors


def check_dtype(op_type: str, t: Tensor, allowed: Sequence[dtypes.DType], arg: str = "x") -> None:
    """TypeError if `t`'s dtype is not one `op_type` accepts."""
    if t.dtype not in allowed:
        raise TypeError(f"Value passed to parameter '{arg}' has DataType {t.dtype.name} not in list of "
                        f"allowed values: {', '.join(d.name for d in allowed)}")


FLOATS = (dtypes.float16, dtypes.float32, dtypes.float64)
INTS = (dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64, dtypes.uint8, dtypes.uint16, dtypes.uint32,
        dtypes.uint64)
NUMERIC = FLOATS + INTS + (dtypes.complex64, dtypes.complex128)


def register_elementwise(op_type: str, fn: Callable[..., Any], out_dtype: dtypes.DType | None = None,
                         not_differentiable: bool = False, lowering: Any = None) -> None:
    """Registers an elementwise op whose NumPy kernel is `fn(*inputs)` (`lowering`: see OpDef)."""
    def kernel(ctx: Any, op: Operation, ins: list) -> Any:
        return fn(*ins)

    registry.register_op(op_type, elementwise_infer(out_dtype), kernel, registry.ELEMENTWISE,
                         not_differentiable=not_differentiable, lowering=lowering)


def const_value(t: Tensor) -> np.ndarray | None:
    """The value of `t` if it is computable at build time (a Const, or Shape of a static shape)."""
    op = t.op
    if op.type == "Const":
        return op.attrs["value"]
    if op.type == "Shape" and op.inputs[0].shape.is_fully_defined():
        return np.array(op.inputs[0].shape.as_list(), dtype=t.dtype.np)
    if op.type in ("Identity", "StopGradient"):
        return const_value(op.inputs[0])
    if op.type == "Cast":
        v = const_value(op.inputs[0])
        return None if v is None else v.astype(t.dtype.np)
    if op.type == "Pack":
        vals = [const_value(i) for i in op.inputs]
        if all(v is not None for v in vals):
            return np.stack(vals, axis=op.attrs.get("axis", 0))  # type: ignore[arg-type]
    return None


def shape_dims(t: Tensor) -> list[int | None] | None:
    """The dims a 1-D shape tensor `t` gives at build time: its value when known; for a Pack of scalars
    (``[tf.shape(x)[0], 2]``) the entries that are known, None for the others; else one None per entry, or
    None when even its length is unknown."""
    v = const_value(t)
    if v is not None:
        return [int(d) for d in np.asarray(v).reshape(-1)]
    if t.op.type == "Pack" and all(i.shape.ndims == 0 for i in t.op.inputs):
        return [None if (d := const_value(i)) is None else int(d) for i in t.op.inputs]
    n = t.shape.as_tuple()
    return None if n is None or not n or n[0] is None else [None] * n[0]
