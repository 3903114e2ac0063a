"""Parsing ops: `parse_example`/`parse_single_example` of tf.train.Example records, and `decode_raw`.

`VarLenFeature` gives a dense tensor (jitflow has no sparse tensors): each example's values padded with
0 (b"" for strings) to the longest in the batch; `parse_single_example` gives the values as a vector.
"""
from __future__ import annotations

import collections
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape, as_shape, known_dims, shape_str
from jitflow.ops.constant_op import convert_to_tensor

FixedLenFeature = collections.namedtuple("FixedLenFeature", ["shape", "dtype", "default_value"])
FixedLenFeature.__new__.__defaults__ = (None,)
VarLenFeature = collections.namedtuple("VarLenFeature", ["dtype"])
FixedLenSequenceFeature = collections.namedtuple("FixedLenSequenceFeature",
                                                 ["shape", "dtype", "allow_missing", "default_value"])
FixedLenSequenceFeature.__new__.__defaults__ = (False, None)

_KIND = {dtypes.float32: "float_list", dtypes.int64: "int64_list", dtypes.string: "bytes_list"}
_TYPE_NAME = {"float_list": "float", "int64_list": "int64", "bytes_list": "string"}


def _spec(key: str, f: Any) -> tuple:
    """A serializable spec: (kind, dtype, shape, default array or None)."""
    dt = dtypes.as_dtype(f.dtype)
    if dt not in _KIND:
        raise ValueError(f"Unsupported dtype {dt.name} for feature '{key}': use float32, int64 or string")
    if isinstance(f, VarLenFeature):
        return ("var", dt, TensorShape([]), None)
    shape = as_shape(f.shape)
    if not shape.is_fully_defined():
        raise ValueError(f"Shape of feature '{key}' must be fully defined, got {shape}")
    default = None if f.default_value is None else \
        np.asarray(f.default_value, dtype=dt.np).astype(dt.np)
    if isinstance(f, FixedLenSequenceFeature):
        return ("seq", dt, shape, default)
    if isinstance(f, FixedLenFeature):
        if default is not None:
            default = np.broadcast_to(default, known_dims(shape.as_list())).copy()
        return ("fixed", dt, shape, default)
    raise ValueError(f"Unsupported feature spec for '{key}': {f!r}")


def _infer(op: Operation) -> list:
    ser = op.inputs[0].shape
    batch = [] if ser.ndims == 0 else [ser.as_list()[0] if ser.ndims else None]
    out = []
    for kind, dt, shape, _ in op.attrs["specs"]:
        rest = shape.as_list() if kind == "fixed" else [None] + shape.as_list()
        out.append((dt, TensorShape(batch + rest)))
    return out


def _values(ex: Any, key: str, dt: dtypes.DType, i: int) -> np.ndarray | None:
    feats = ex.features.feature
    if key not in feats:
        return None
    f = feats[key]
    kind = f.WhichOneof("kind")
    want = _KIND[dt]
    if kind is None:
        return np.zeros(0, dtype=dt.np)
    if kind != want:
        raise errors.InvalidArgumentError(None, None, f"Name: <unknown>, Key: {key}, Index: {i}.  Data types "
                                                      f"don't match. Data type: {_TYPE_NAME[kind]} but expected "
                                                      f"type: {_TYPE_NAME[want]}")
    if kind == "float_list":
        return _packed_floats(f.float_list)
    vals = getattr(f, kind).value
    if dt == dtypes.string:
        arr = np.empty(len(vals), dtype=object)
        arr[:] = list(vals)
        return arr
    return np.array(vals, dtype=dt.np)


def _packed_floats(fl: Any) -> np.ndarray:
    """A FloatList's values straight from its packed encoding (one copy, no Python floats)."""
    data = fl.SerializeToString()
    if not data:
        return np.zeros(0, np.float32)
    if data[0] != 0x0A:  # not `field 1, length-delimited`: take the slow, general way
        return np.array(fl.value, dtype=np.float32)
    n, shift, pos = 0, 0, 1
    while True:  # the varint length
        b = data[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if b < 0x80:
            break
    return np.frombuffer(data, dtype="<f4", count=n // 4, offset=pos).astype(np.float32)


def _fixed(key: str, per: list, dt: dtypes.DType, shape: TensorShape, default: Any) -> np.ndarray:
    dims = tuple(known_dims(shape.as_list())) if shape.ndims is not None else ()
    n = int(np.prod(dims)) if dims else 1
    rows = []
    for i, v in enumerate(per):
        if v is None:
            if default is None:
                raise errors.InvalidArgumentError(None, None, f"Name: <unknown>, Feature: {key} (data type: "
                                                              f"{_TYPE_NAME[_KIND[dt]]}) is required but could "
                                                              "not be found.")
            rows.append(default.reshape(dims))
            continue
        if v.size != n:
            raise errors.InvalidArgumentError(None, None, f"Name: <unknown>, Key: {key}, Index: {i}.  Number of "
                                                          f"{_TYPE_NAME[_KIND[dt]]} values != expected.  Values "
                                                          f"size: {v.size} but output shape: {shape_str(dims)}")
        rows.append(v.reshape(dims))
    return np.stack(rows) if rows else np.zeros((0,) + tuple(dims), dtype=dt.np)


def _ragged(key: str, per: list, dt: dtypes.DType, shape: TensorShape, default: Any, kind: str) -> np.ndarray:
    dims = tuple(int(d or 0) for d in shape.as_tuple() or ())
    n = int(np.prod(dims)) if dims else 1
    rows = []
    for i, v in enumerate(per):
        if v is None:
            v = np.zeros(0, dtype=dt.np)
        if v.size % n:
            raise errors.InvalidArgumentError(None, None, f"Name: <unknown>, Key: {key}, Index: {i}.  Number of "
                                              f"values is not a multiple of the element size {n}: {v.size}")
        rows.append(v.reshape((v.size // n,) + dims))
    longest = max((len(r) for r in rows), default=0)
    fill = default if default is not None else (b"" if dt == dtypes.string else 0)
    out = np.empty((len(rows), longest) + dims, dtype=dt.np)
    out[...] = fill
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _parse_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    from jitflow.protos.example import Example

    ser = np.asarray(ins[0], dtype=object)
    records = list(ser.ravel())
    fast = _parse_fast(op, records)
    if fast is not None:
        outs = [a[0] for a in fast] if ser.ndim == 0 else fast
        return outs[0] if len(outs) == 1 else tuple(outs)
    exs = []
    for r in records:
        try:
            exs.append(Example.FromString(r))
        except Exception:  # noqa: BLE001 - the protobuf decoder's errors
            raise errors.InvalidArgumentError(None, None, f"Could not parse example input, value: "
                                                          f"'{r[:64]!r}'") from None
    outs = []
    for key, (kind, dt, shape, default) in zip(op.attrs["keys"], op.attrs["specs"]):
        per = [_values(ex, key, dt, i) for i, ex in enumerate(exs)]
        if kind == "fixed":
            arr = _fixed(key, per, dt, shape, default)
        else:
            if kind == "seq" and not op.attrs["allow_missing"][op.attrs["keys"].index(key)] and \
                    any(v is None for v in per):
                raise errors.InvalidArgumentError(None, None, f"Name: <unknown>, Key: {key}, Index: "
                                                  f"{next(i for i, v in enumerate(per) if v is None)}.  Feature "
                                                  "list is required but could not be found.")
            arr = _ragged(key, per, dt, shape, default, kind)
        outs.append(arr[0] if ser.ndim == 0 else arr)
    return outs[0] if len(outs) == 1 else tuple(outs)


_WIRE_KIND = {dtypes.float32: 2, dtypes.int64: 3}


def _parse_fast(op: Operation, records: list) -> list | None:
    """Fixed-length float/int64 features straight from the wire bytes (None: use the general path)."""
    specs = op.attrs["specs"]
    if not records or any(kind != "fixed" or dt not in _WIRE_KIND for kind, dt, _, _ in specs) or \
            not all(type(r) is bytes for r in records):
        return None
    from jitflow.ops.example_wire import parse_fixed

    return parse_fixed(records, list(op.attrs["keys"]), [_WIRE_KIND[dt] for _, dt, _, _ in specs],
                       [tuple(shape.as_list()) for _, _, shape, _ in specs])


registry.register_op("ParseExample", _infer, _parse_kernel, registry.OPAQUE, not_differentiable=True)


def _parse(serialized: Any, features: dict[str, Any], name: str | None, rank: int) -> dict[str, Tensor]:
    if not features:
        raise ValueError("Missing: features was empty.")
    ser = convert_to_tensor(serialized, dtype=dtypes.string)
    if ser.shape.ndims is not None and ser.shape.ndims != rank:
        raise ValueError(f"Shape must be rank {rank} but is rank {ser.shape.ndims} for the serialized input of "
                         f"{'parse_single_example' if rank == 0 else 'parse_example'}")
    keys = sorted(features)
    specs = [_spec(k, features[k]) for k in keys]
    allow = [bool(getattr(features[k], "allow_missing", False)) for k in keys]
    op = get_default_graph().create_op("ParseExample", [ser], {"keys": keys, "specs": specs,
                                                               "allow_missing": allow},
                                       name=name or "ParseExample")
    return dict(zip(keys, op.outputs))


def parse_example(serialized: Any, features: dict[str, Any], name: str | None = None,
                  example_names: Any = None) -> dict[str, Tensor]:
    """Parses a vector of serialized Examples into a dict of batched tensors, one per feature key."""
    return _parse(serialized, features, name, 1)


def parse_single_example(serialized: Any, features: dict[str, Any], name: str | None = None,
                         example_names: Any = None) -> dict[str, Tensor]:
    """Parses one serialized Example (a scalar string) into a dict of tensors."""
    return _parse(serialized, features, name, 0)


# -- decode_raw ---------------------------------------------------------------------------------------------


def _decode_raw_infer(op: Operation) -> list:
    s = op.inputs[0].shape
    return [(op.attrs["out_type"], TensorShape(None) if s.ndims is None else s.concatenate([None]))]


def _decode_raw_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    dt: dtypes.DType = op.attrs["out_type"]
    npdt = dt.np.newbyteorder("<" if op.attrs["little_endian"] else ">")
    arr = np.asarray(ins[0], dtype=object)
    flat = list(arr.ravel())
    size = len(flat[0]) if flat else 0
    for i, b in enumerate(flat):
        if len(b) != size:
            raise errors.InvalidArgumentError(None, None, f"DecodeRaw requires input strings to all be the same "
                                                          f"size, but element {i} has size {len(b)} != {size}")
    if size % npdt.itemsize:
        raise errors.InvalidArgumentError(None, None, f"Input to DecodeRaw has length {size} that is not a "
                                                      f"multiple of {npdt.itemsize}, the size of {dt.name}")
    out = np.frombuffer(b"".join(flat), dtype=npdt).astype(dt.np, copy=False)
    return out.reshape(arr.shape + (size // npdt.itemsize,))


registry.register_op("DecodeRaw", _decode_raw_infer, _decode_raw_kernel, registry.OPAQUE, not_differentiable=True)


def decode_raw(input_bytes: Any = None, out_type: Any = None, little_endian: bool = True, name: str | None = None,
               bytes: Any = None) -> Tensor:  # noqa: A002 - TF's argument name
    """Reinterprets the bytes of each string as a vector of `out_type`."""
    x = convert_to_tensor(input_bytes if input_bytes is not None else bytes, dtype=dtypes.string)
    dt = dtypes.as_dtype(out_type)
    return get_default_graph().create_op("DecodeRaw", [x], {"out_type": dt, "little_endian": bool(little_endian)},
                                         name=name or "DecodeRaw").outputs[0]
