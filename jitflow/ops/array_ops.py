"""Array ops: placeholders, identity, shapes, reshapes, fills and friends."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape, as_shape, shape_str
from jitflow.ops.constant_op import constant, convert_to_tensor
from jitflow.ops.op_util import const_value, make_op, out

# -- placeholders ----------------------------------------------------------------------------------------


def _placeholder_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    shape = op.attrs["shape"]
    dims = shape.as_tuple()
    raise InvalidArgumentError(
        op.node_def, op,
        f"You must feed a value for placeholder tensor '{op.name}' with dtype {op.attrs['dtype'].name}"
        + (f" and shape {shape_str(dims)}" if dims is not None else ""))


registry.register_op("Placeholder", lambda op: [(op.attrs["dtype"], op.attrs["shape"])], _placeholder_kernel,
                     registry.SOURCE)


def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor whose value must be fed to `Session.run`."""
    dt = dtypes.as_dtype(dtype)
    return out(get_default_graph().create_op("Placeholder", [], {"dtype": dt, "shape": as_shape(shape)},
                                             name=name or "Placeholder"))


def _pwd_infer(op: Operation) -> list:
    return [(op.inputs[0].dtype, op.attrs["shape"])]


registry.register_op("PlaceholderWithDefault", _pwd_infer, lambda ctx, op, ins: ins[0], registry.OPAQUE)


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """A placeholder that takes `input`'s value when not fed."""
    x = convert_to_tensor(input)
    shp = as_shape(shape)
    if not shp.is_compatible_with(x.shape):
        raise ValueError(f"Shapes {shp} and {x.shape} are incompatible")
    return out(make_op("PlaceholderWithDefault", [x], {"dtype": x.dtype, "shape": shp},
                       name=name or "PlaceholderWithDefault"))


# -- identity ------------------------------------------------------------------------------------------------

registry.register_op("Identity", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: ins[0], registry.OPAQUE)
registry.register_op("StopGradient", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: ins[0], registry.OPAQUE, not_differentiable=True)


def identity(input: Any, name: str | None = None) -> Tensor:
    """Returns a tensor with the same value (a new op, e.g. to attach control dependencies)."""
    x = convert_to_tensor(input)
    return out(make_op("Identity", [x], {"T": x.dtype}, name=name or "Identity"))


def stop_gradient(input: Any, name: str | None = None) -> Tensor:
    """Identity whose gradient is zero (gradients stop here)."""
    x = convert_to_tensor(input)
    return out(make_op("StopGradient", [x], {"T": x.dtype}, name=name or "StopGradient"))


# -- shape queries ----------------------------------------------------------------------------------------

registry.register_op("Shape", lambda op: [(op.attrs["out_type"], TensorShape([op.inputs[0].shape.ndims]))],
                     lambda ctx, op, ins: np.array(np.shape(ins[0]), dtype=op.attrs["out_type"].np),
                     registry.OPAQUE, not_differentiable=True)
registry.register_op("Size", lambda op: [(op.attrs["out_type"], TensorShape([]))],
                     lambda ctx, op, ins: np.array(np.size(ins[0]), dtype=op.attrs["out_type"].np),
                     registry.OPAQUE, not_differentiable=True)
registry.register_op("Rank", lambda op: [(dtypes.int32, TensorShape([]))],
                     lambda ctx, op, ins: np.array(np.ndim(ins[0]), dtype=np.int32), registry.OPAQUE,
                     not_differentiable=True)


def shape(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    """The dynamic shape of `input` as a 1-D int tensor."""
    x = convert_to_tensor(input)
    return out(make_op("Shape", [x], {"out_type": dtypes.as_dtype(out_type), "T": x.dtype},
                       name=name or "Shape"))


def size(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    x = convert_to_tensor(input)
    return out(make_op("Size", [x], {"out_type": dtypes.as_dtype(out_type), "T": x.dtype},
                       name=name or "Size"))


def rank(input: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    return out(make_op("Rank", [x], {"T": x.dtype}, name=name or "Rank"))


# -- reshape -------------------------------------------------------------------------------------------------


def _reshape_target(op: Operation) -> list[int | None] | None:
    v = const_value(op.inputs[1])
    if v is None:
        n = op.inputs[1].shape.as_tuple()
        return None if n is None or n[0] is None else [None] * n[0]
    return [int(d) for d in np.asarray(v).reshape(-1)]


def _reshape_infer(op: Operation) -> list:
    x = op.inputs[0]
    tgt = _reshape_target(op)
    if tgt is None:
        return [(x.dtype, TensorShape(None))]
    if sum(1 for d in tgt if d == -1) > 1:
        raise ValueError(f"Cannot infer multiple unknown dimensions in shape {tgt} for '{op.name}'")
    n = x.shape.num_elements()
    known = [d for d in tgt if d is not None and d != -1]
    prod = int(np.prod(known)) if known else 1
    if -1 in tgt:
        fill = None
        if n is not None and None not in tgt:
            if prod == 0 or n % prod:
                raise ValueError(f"Cannot reshape a tensor with {n} elements to shape {tgt} for '{op.name}' "
                                 f"(op: 'Reshape') with input shapes: {x.shape}")
            fill = n // prod
        return [(x.dtype, TensorShape([fill if d == -1 else d for d in tgt]))]
    if n is not None and None not in tgt and n != prod:
        raise ValueError(f"Cannot reshape a tensor with {n} elements to shape {tgt} ({prod} elements) for "
                         f"'{op.name}' (op: 'Reshape') with input shapes: {shape_str(x.shape.as_tuple())}, "
                         f"[{len(tgt)}].")
    return [(x.dtype, TensorShape(tgt))]


def _reshape_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, s = ins
    tgt = [int(d) for d in np.asarray(s).reshape(-1)]
    try:
        return np.reshape(x, tgt)
    except ValueError:
        raise InvalidArgumentError(None, None, f"Input to reshape is a tensor with {np.size(x)} values, but "
                                               f"the requested shape has {int(np.prod(tgt))}") from None


registry.register_op("Reshape", _reshape_infer, _reshape_kernel, registry.OPAQUE)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    """Reshapes to `shape` (one dim may be -1)."""
    x = convert_to_tensor(tensor)
    s = convert_to_tensor(shape, dtype=dtypes.int32) if not isinstance(shape, Tensor) else shape
    return out(make_op("Reshape", [x, s], {"T": x.dtype}, name=name or "Reshape"))


# -- fills ---------------------------------------------------------------------------------------------------


def _fill_infer(op: Operation) -> list:
    v = const_value(op.inputs[0])
    if v is not None:
        return [(op.inputs[1].dtype, TensorShape([int(d) for d in v.reshape(-1)]))]
    n = op.inputs[0].shape.as_tuple()
    return [(op.inputs[1].dtype, TensorShape(None if not n or n[0] is None else [None] * n[0]))]


def _fill_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    dims, value = ins
    if np.any(np.asarray(dims) < 0):
        raise InvalidArgumentError(None, None, f"Fill dimensions must be >= 0, got {list(dims)}")
    return np.full([int(d) for d in dims], value, dtype=op.outputs[0].dtype.np)


registry.register_op("Fill", _fill_infer, _fill_kernel, registry.OPAQUE)


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    """A tensor of shape `dims` filled with the scalar `value`."""
    d = convert_to_tensor(dims, dtype=dtypes.int32) if not isinstance(dims, Tensor) else dims
    v = convert_to_tensor(value)
    return out(make_op("Fill", [d, v], {"T": v.dtype}, name=name or "Fill"))


def _filled(shape: Any, dtype: Any, value: int, name: str) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if isinstance(shape, Tensor):
        with _name_scope(name):
            return fill(shape, constant(value, dtype=dt), name=name)
    shp = as_shape(shape)
    if shp.is_fully_defined():
        return constant(np.full(shp.as_list(), value, dtype=dt.np if dt is not dtypes.string else object),
                        dtype=dt, name=name)
    raise ValueError(f"Shape {shp} must be fully defined or a tensor")


def zeros(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    """A tensor of zeros."""
    return _filled(shape, dtype, 0, name or "zeros")


def ones(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    """A tensor of ones."""
    return _filled(shape, dtype, 1, name or "ones")


registry.register_op("ZerosLike", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: np.zeros_like(ins[0]), registry.ELEMENTWISE,
                     not_differentiable=True)
registry.register_op("OnesLike", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: np.ones_like(ins[0]), registry.ELEMENTWISE,
                     not_differentiable=True)


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None, optimize: bool = True) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        from jitflow.ops.math_ops import cast

        x = cast(x, dtype)
    return out(make_op("ZerosLike", [x], {"T": x.dtype}, name=name or "zeros_like"))


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None, optimize: bool = True) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        from jitflow.ops.math_ops import cast

        x = cast(x, dtype)
    return out(make_op("OnesLike", [x], {"T": x.dtype}, name=name or "ones_like"))
