"""NumPy arrays <-> TensorFlow's `TensorProto` (`tf.make_tensor_proto`, `tf.make_ndarray`).

Numeric arrays of more than one element are written as little-endian `tensor_content`, scalars and
strings through the typed `*_val` fields, as TensorFlow writes them; reading accepts both, including
TF's short form where one value fills the whole shape.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.protos.tensor import TensorProto
from jitflow.protos.tensor_shape import TensorShapeProto

# dtype name -> the repeated field that holds its values when tensor_content is not used
_VAL_FIELD = {
    "float32": "float_val", "float64": "double_val", "int32": "int_val", "uint8": "int_val",
    "int16": "int_val", "int8": "int_val", "uint16": "int_val", "int64": "int64_val", "bool": "bool_val",
    "string": "string_val", "float16": "half_val", "bfloat16": "half_val", "uint32": "uint32_val",
    "uint64": "uint64_val", "complex64": "scomplex_val", "complex128": "dcomplex_val",
}


def shape_proto(dims: Any) -> TensorShapeProto:
    """A TensorShapeProto for a list of dims (None = unknown dim) or None (unknown rank)."""
    p = TensorShapeProto()
    if dims is None:
        p.unknown_rank = True
        return p
    for d in dims:
        p.dim.add(size=-1 if d is None else int(d))
    return p


def shape_from_proto(p: TensorShapeProto) -> list[int | None] | None:
    """Inverse of `shape_proto`."""
    if p.unknown_rank:
        return None
    return [None if d.size < 0 else int(d.size) for d in p.dim]


def make_tensor_proto(values: Any, dtype: Any = None, shape: Any = None) -> TensorProto:
    """`tf.make_tensor_proto`: the TensorProto of `values` (cast to `dtype`, reshaped to `shape`)."""
    dt = dtypes.as_dtype(dtype) if dtype is not None else None
    if dt is not None and dt.name == "string" or (dt is None and _is_strings(values)):
        arr = np.asarray(values, dtype=object)
        dt = dtypes.string
    else:
        arr = np.asarray(values, dtype=dt.np if dt is not None else None)
        if dt is None:
            dt = dtypes.as_dtype(arr.dtype)
    if shape is not None:
        arr = np.broadcast_to(arr, tuple(shape)) if arr.size == 1 else arr.reshape(tuple(shape))
    p = TensorProto(dtype=dt.as_datatype_enum, tensor_shape=shape_proto(arr.shape))
    if dt.name != "string" and arr.size > 1:
        p.tensor_content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        return p
    field = _VAL_FIELD.get(dt.name)
    if field is None:
        raise TypeError(f"Cannot make a TensorProto of dtype {dt.name}")
    flat = arr.reshape(-1)
    if dt.name == "string":
        getattr(p, field).extend(x if isinstance(x, bytes) else str(x).encode() for x in flat)
    elif field == "half_val":
        getattr(p, field).extend(int(x) for x in flat.view(np.uint16))
    elif field in ("scomplex_val", "dcomplex_val"):
        getattr(p, field).extend(float(v) for x in flat for v in (x.real, x.imag))
    else:
        getattr(p, field).extend(flat.tolist())
    return p


def _is_strings(values: Any) -> bool:
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "SU":
        return True
    return arr.dtype == object and arr.size > 0 and isinstance(arr.reshape(-1)[0], (bytes, str))


def make_ndarray(p: TensorProto, where: str = "tensor") -> np.ndarray:
    """`tf.make_ndarray`: the NumPy array a TensorProto holds (InvalidArgumentError if malformed)."""
    try:
        dt = dtypes.as_dtype(int(p.dtype))
    except (TypeError, ValueError, KeyError):
        raise InvalidArgumentError(None, None, f"{where}: unsupported tensor dtype {p.dtype}") from None
    shape = tuple(0 if d is None else d for d in (shape_from_proto(p.tensor_shape) or []))
    n = int(np.prod(shape, dtype=np.int64))
    if dt.name == "string":
        flat = np.empty(len(p.string_val), dtype=object)
        flat[:] = list(p.string_val)
        return _fill(flat, shape, n, where)
    if p.tensor_content:
        le = np.dtype(dt.np).newbyteorder("<")
        if len(p.tensor_content) != n * le.itemsize:
            raise InvalidArgumentError(None, None, f"{where}: tensor_content holds {len(p.tensor_content)} "
                                       f"bytes, shape {list(shape)} of {dt.name} needs {n * le.itemsize}")
        return np.frombuffer(p.tensor_content, dtype=le).astype(dt.np).reshape(shape)
    field = _VAL_FIELD.get(dt.name)
    if field is None:
        raise InvalidArgumentError(None, None, f"{where}: unsupported tensor dtype {dt.name}")
    vals = list(getattr(p, field))
    if field == "half_val":
        flat = np.asarray(vals, dtype=np.uint16).view(dt.np)
    elif field in ("scomplex_val", "dcomplex_val"):
        pairs = np.asarray(vals, dtype=np.float64).reshape(-1, 2)
        flat = (pairs[:, 0] + 1j * pairs[:, 1]).astype(dt.np)
    else:
        flat = np.asarray(vals, dtype=dt.np)
    return _fill(flat, shape, n, where)


def _fill(flat: np.ndarray, shape: tuple[int, ...], n: int, where: str) -> np.ndarray:
    """TF's short form: fewer values than elements repeat the last one (none: zeros)."""
    if flat.size == n:
        return flat.reshape(shape)
    if flat.size > n:
        raise InvalidArgumentError(None, None, f"{where}: {flat.size} values for shape {list(shape)}")
    out = np.empty(n, dtype=flat.dtype)
    out[:flat.size] = flat
    out[flat.size:] = flat[-1] if flat.size else (b"" if flat.dtype == object else 0)
    return out.reshape(shape)
