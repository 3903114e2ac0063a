"""jitflow attr values <-> TensorFlow's `AttrValue`, by the attr types of TensorFlow's OpDefs."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import tensor_util
from jitflow.framework.tensor_shape import TensorShape, as_shape
from jitflow.protos.attr_value import AttrValue

# TF attr type -> the AttrValue field that holds it
_FIELD = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type", "shape": "shape",
          "tensor": "tensor", "func": "func"}


def _base(dt: Any) -> dtypes.DType:
    dt = dtypes.as_dtype(dt)
    return getattr(dt, "base_dtype", dt)


def _shape(value: Any) -> Any:
    s = value if isinstance(value, TensorShape) else as_shape(value)
    return tensor_util.shape_proto(s.as_list() if s.ndims is not None else None)


def _scalar_to(field: str, value: Any) -> Any:
    """The AttrValue-field form of one value."""
    if field == "s":
        return value if isinstance(value, bytes) else str(value).encode("utf-8")
    if field == "type":
        return _base(value).as_datatype_enum
    if field == "shape":
        return _shape(value)
    if field == "i":
        return int(value)
    if field == "f":
        return float(value)
    if field == "b":
        return bool(value)
    raise TypeError(f"attr field {field}")


def to_attr_value(value: Any, attr_type: str, where: str) -> AttrValue:
    """The AttrValue of `value` for a TF attr of type `attr_type` ("int", "list(type)", ...)."""
    out = AttrValue()
    try:
        if attr_type.startswith("list("):
            field = _FIELD[attr_type[5:-1]]
            items = [_scalar_to(field, v) for v in (value or [])]
            lst = getattr(out.list, field)
            if field == "shape":
                for s in items:
                    lst.add().CopyFrom(s)
            else:
                lst.extend(items)
            out.list.SetInParent()
        elif attr_type == "tensor":
            dt = value.dtype if isinstance(value, np.ndarray) and value.dtype != object else None
            out.tensor.CopyFrom(tensor_util.make_tensor_proto(value, dt))
        elif attr_type == "shape":
            out.shape.CopyFrom(_shape(value))
        elif attr_type == "func":
            raise TypeError("function attrs are not supported")
        else:
            setattr(out, _FIELD[attr_type], _scalar_to(_FIELD[attr_type], value))
    except (TypeError, ValueError, KeyError) as e:
        raise InvalidArgumentError(None, None, f"{where}: cannot write {value!r} as a TensorFlow "
                                   f"{attr_type} attr: {e}") from None
    return out


def _scalar_from(field: str, v: Any) -> Any:
    if field == "s":
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    if field == "type":
        return dtypes.as_dtype(int(v))
    if field == "shape":
        return TensorShape(tensor_util.shape_from_proto(v))
    if field == "i":
        return int(v)
    return v


_KIND_OF_FIELD = {v: k for k, v in _FIELD.items()}


def from_attr_value(av: AttrValue, attr_type: str | None, where: str) -> Any:
    """The jitflow value of an AttrValue; InvalidArgumentError if it is not of `attr_type` (when known)."""
    kind = av.WhichOneof("value")
    if attr_type is not None and kind is not None:
        want = "list" if attr_type.startswith("list(") else _FIELD.get(attr_type)
        if kind != want:
            raise InvalidArgumentError(None, None, f"{where}: attr has a {kind} value, TensorFlow's OpDef "
                                       f"declares {attr_type}")
    try:
        if kind == "list":
            field = _FIELD[attr_type[5:-1]] if attr_type else _list_field(av)
            return [_scalar_from(field, v) for v in getattr(av.list, field)] if field else []
        if kind == "tensor":
            return tensor_util.make_ndarray(av.tensor, where)
        if kind in ("func", "placeholder"):
            raise InvalidArgumentError(None, None, f"{where}: {kind} attrs are not supported")
        if kind is None:
            return None
        return _scalar_from(kind, getattr(av, kind))
    except (TypeError, ValueError, KeyError) as e:
        raise InvalidArgumentError(None, None, f"{where}: malformed attr value: {e}") from None


def _list_field(av: AttrValue) -> str | None:
    for field in ("s", "i", "f", "b", "type", "shape", "tensor"):
        if len(getattr(av.list, field)):
            return field
    return None
