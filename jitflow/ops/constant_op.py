"""`Const`, `tf.constant` and `convert_to_tensor`: how Python values become graph tensors."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape, as_shape, known_dims


def _const_infer(op: Operation) -> list:
    value: np.ndarray = op.attrs["value"]
    return [(op.attrs["dtype"], TensorShape(value.shape))]


def _const_kernel(ctx: Any, op: Operation, inputs: list) -> np.ndarray:
    return op.attrs["value"]


registry.register_op("Const", _const_infer, _const_kernel, registry.SOURCE, structural=True)


def _python_dtype(value: Any) -> dtypes.DType:
    """The dtype TF infers for a Python/NumPy value."""
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        return dtypes.as_dtype(value.dtype)
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return dtypes.float32
    if arr.dtype.kind in "iu":
        if arr.size and (arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
            return dtypes.int64
        return dtypes.int32
    if arr.dtype.kind == "b":
        return dtypes.bool
    if arr.dtype.kind in "SUO":
        return dtypes.string
    if arr.dtype.kind == "c":
        return dtypes.complex128
    raise TypeError(f"Failed to convert object of type {type(value).__name__} to Tensor. "
                    f"Contents: {value!r}. Consider casting elements to a supported type.")


def to_numpy(value: Any, dtype: dtypes.DType | None = None, what: str = "value") -> np.ndarray:
    """Converts a Python/NumPy value to an array of `dtype` with TF's checks (TypeError/ValueError)."""
    if isinstance(value, (Tensor, Operation)):
        raise TypeError(f"Expected a Python or NumPy value for {what}, got {value}")
    if dtype is None:
        dtype = _python_dtype(value)
    if dtype is dtypes.string:
        arr = np.asarray(value, dtype=object)
        return np.vectorize(lambda s: s.encode() if isinstance(s, str) else s, otypes=[object])(arr) \
            if arr.size else arr
    try:
        raw = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"Failed to convert {what} to a {dtype.name} tensor: {e}") from None
    if raw.dtype.kind in "OSU":
        raise TypeError(f"Expected {dtype.name}, got {value!r} of type '{type(value).__name__}' instead.")
    if dtype.is_integer and raw.dtype.kind == "f" and not isinstance(value, np.ndarray):
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise TypeError(f"Expected {dtype.name}, got {value!r} of type '{type(value).__name__}' instead.")
    if dtype.is_integer and raw.dtype.kind in "iu" and raw.size and not isinstance(value, np.ndarray):
        info = np.iinfo(dtype.np)
        if raw.max() > info.max or raw.min() < info.min:
            raise ValueError(f"Value {value!r} is out of range for {dtype.name}")
    if dtype.is_bool and raw.dtype.kind != "b":
        raise TypeError(f"Expected bool, got {value!r} of type '{type(value).__name__}' instead.")
    if raw.dtype.kind == "c" and not dtype.is_complex:
        raise TypeError(f"Expected {dtype.name}, got {value!r} of type '{type(value).__name__}' instead.")
    return np.asarray(raw, dtype=dtype.np)


def constant(value: Any, dtype: Any = None, shape: Any = None, name: str = "Const",
             verify_shape: bool = False) -> Tensor:
    """`tf.constant`: a tensor holding `value` (broadcast to `shape` if it is a scalar)."""
    dt = dtypes.as_dtype(dtype) if dtype is not None else None
    arr = to_numpy(value, dt, "constant")
    if shape is not None:
        shp = as_shape(shape)
        if not shp.is_fully_defined():
            raise ValueError(f"Shape of constant must be fully defined, got {shp}")
        target = tuple(known_dims(shp.as_list()))
        if arr.shape != target:
            if verify_shape:
                raise TypeError(f"Expected Tensor's shape: {target}, got {arr.shape}.")
            if arr.size == 1:
                arr = np.full(target, arr.reshape(()), dtype=arr.dtype)
            elif arr.size == int(np.prod(target)):
                arr = arr.reshape(target)
            else:
                raise TypeError(f"Eager execution of tf.constant with unsupported shape. Tensor {value!r} "
                                f"(converted from {value!r}) has {arr.size} elements, but got `shape` "
                                f"{target} with {int(np.prod(target))} elements).")
    arr = np.array(arr, copy=True)
    arr.flags.writeable = False  # constants are shared with every run; nobody may mutate them
    op = get_default_graph().create_op("Const", [], {"value": arr, "dtype": dtypes.as_dtype(arr.dtype)
                                                     if dt is None else dt}, name=name)
    return op.outputs[0]


def convert_to_tensor(value: Any, dtype: Any = None, name: str | None = None,
                      preferred_dtype: Any = None, dtype_hint: Any = None) -> Tensor:
    """Converts Tensors, Variables, Python values and NumPy arrays to a Tensor of the default graph."""
    want = dtypes.as_dtype(dtype) if dtype is not None else None
    if isinstance(value, Tensor):
        if want is not None and value.dtype is not want:
            raise ValueError(f"Tensor conversion requested dtype {want.name} for Tensor with dtype "
                             f"{value.dtype.name}: {value!r}")
        return value
    conv = getattr(value, "_as_tensor", None)
    if conv is not None:
        t = conv()
        if want is not None and t.dtype is not want:
            raise ValueError(f"Tensor conversion requested dtype {want.name} for Tensor with dtype "
                             f"{t.dtype.name}: {t!r}")
        return t
    if isinstance(value, Operation):
        raise TypeError(f"Can't convert Operation '{value.name}' to Tensor (target dtype="
                        f"{want.name if want else None}, name={name}, as_ref=False)")
    if isinstance(value, (list, tuple)) and holds_tensor(value):
        return _packed(value, want, name)
    if want is None:
        hint = preferred_dtype if preferred_dtype is not None else dtype_hint
        if hint is not None:
            try:
                return constant(value, dtype=hint, name=name or "Const")
            except (TypeError, ValueError):
                pass
    return constant(value, dtype=want, name=name or "Const")


def holds_tensor(value: Any) -> bool:
    """True when a (nested) list or tuple has a tensor among its items: TF converts it by packing them."""
    return any(is_tensor_like(v) or (isinstance(v, (list, tuple)) and holds_tensor(v)) for v in value)


def _first_dtype(value: Any) -> dtypes.DType:
    for v in value:
        if is_tensor_like(v):
            return convert_to_tensor(v).dtype
        if isinstance(v, (list, tuple)) and holds_tensor(v):
            return _first_dtype(v)
    raise AssertionError("no tensor in the list")  # callers check `holds_tensor` first


def _packed(value: Any, want: dtypes.DType | None, name: str | None) -> Tensor:
    """A list holding tensors as one tensor: its items (converted to the first tensor's dtype, or `want`)
    stacked along a new first axis, as TF's automatic packing does."""
    dt = want or _first_dtype(value)
    items = []
    for v in value:
        if is_tensor_like(v) and convert_to_tensor(v).dtype is not dt:
            t = convert_to_tensor(v)
            raise TypeError(f"Cannot convert a list containing a tensor of dtype {t.dtype!r} to {dt!r} "
                            f"(Tensor is: {t!r})")
        items.append(convert_to_tensor(v, dtype=dt))
    op = get_default_graph().create_op("Pack", items, {"axis": 0, "N": len(items), "T": dt}, name=name or "packed")
    return op.outputs[0]


def is_tensor_like(value: Any) -> bool:
    return isinstance(value, Tensor) or hasattr(value, "_as_tensor")
