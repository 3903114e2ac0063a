"""jitflow's former meta graph format (JSON + raw arrays, never code), still read for one release.

New files are TensorFlow's MetaGraphDef (`meta_graph`); `meta_graph.import_meta_graph` hands files
of this format here, with a deprecation warning.

File layout: one header line of JSON (`format`, `version`, and the length and CRC32C of each section),
then the JSON body, then a binary section holding the bytes of every numeric array attr (referenced
from the body by offset and size, so large constants cost a memcpy, not base64). The body is an object
with `ops` (type, name, inputs, control inputs, device, attrs, in creation order), `variables` (each
Variable's op names), `collections` and `saver_def`. Attr values are tagged so that types survive the
round trip (floats vs ints, bytes, DTypes, shapes, arrays, tuples). In memory (what
`export_meta_graph` returns) array attrs are kept as NumPy arrays.
"""
from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import DataLossError
from jitflow.framework.graph import Graph, GraphKeys, Operation, Tensor, get_default_graph
from jitflow.framework.graph_io import check_input_map
from jitflow.framework.tensor_shape import TensorShape

from .checkpoint import atomic, crc

logger = logging.getLogger("jitflow.train")

FORMAT = "jitflow.MetaGraph"
VERSION = 1

MetaGraphDef = dict  # the in-memory form: the body object (see module docstring)


# ---- attr values -------------------------------------------------------------------------------

def encode_value(value: Any, where: str = "value") -> Any:
    """A JSON-able, type-tagged form of an attr value."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"int": str(value)}  # strings keep big ints exact in every JSON reader
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dtypes.DType):
        return {"dtype": value.name}
    if isinstance(value, TensorShape):
        return {"shape": value.as_list() if value.ndims is not None else None}
    if isinstance(value, np.ndarray):
        return {"ndarray": _check_array(value, where)}
    if isinstance(value, np.generic):
        return {"scalar": _check_array(np.asarray(value), where)}
    if isinstance(value, list):
        return [encode_value(v, where) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v, where) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: encode_value(v, where) for k, v in value.items()}}
    raise ValueError(f"Cannot serialize {where} of type {type(value).__name__} into a meta graph")


def _check_array(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype.kind not in "OSU":
        try:
            dtypes.as_dtype(arr.dtype.newbyteorder("="))
        except TypeError:
            raise ValueError(f"Cannot serialize {where}: arrays of {arr.dtype} are not supported") from None
    return arr


def _array_to_json(arr: np.ndarray, blob: list[memoryview], offset: list[int]) -> dict[str, Any]:
    """The JSON form of an array; numeric bytes go to the binary section (`blob`)."""
    if arr.dtype.kind in "OSU":
        items = [x if isinstance(x, bytes) else str(x).encode() for x in arr.reshape(-1).tolist()]
        return {"dtype": "string", "shape": list(arr.shape),
                "items": [base64.b64encode(x).decode("ascii") for x in items]}
    le = arr.dtype.newbyteorder("<")
    data = np.ascontiguousarray(arr, dtype=le).reshape(-1).view(np.uint8)
    blob.append(data.data)
    start = offset[0]
    offset[0] += data.nbytes
    return {"dtype": dtypes.as_dtype(le.newbyteorder("=")).name, "shape": list(arr.shape),
            "blob": [start, data.nbytes]}


def _array_from_json(d: dict[str, Any], blob: bytes | memoryview) -> np.ndarray:
    shape = tuple(int(x) for x in d["shape"])
    if d["dtype"] == "string":
        out = np.empty(len(d["items"]), dtype=object)
        out[:] = [base64.b64decode(x, validate=True) for x in d["items"]]
        return out.reshape(shape)
    dt = dtypes.as_dtype(d["dtype"]).np
    start, size = (int(x) for x in d["blob"])
    if start < 0 or start + size > len(blob) or size != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
        raise ValueError("array bytes out of range")
    return np.frombuffer(blob, dtype=dt.newbyteorder("<"), count=size // dt.itemsize,
                         offset=start).astype(dt).reshape(shape)


def decode_value(obj: Any) -> Any:
    """Inverse of `encode_value`; anything unexpected → DataLossError."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, list):
        return [decode_value(v) for v in obj]
    if isinstance(obj, dict) and len(obj) == 1:
        (tag, payload), = obj.items()
        try:
            return _DECODERS[tag](payload)
        except KeyError:
            pass
        except (TypeError, ValueError) as e:
            raise DataLossError(None, None, f"Malformed meta graph value {tag}: {e}") from None
    raise DataLossError(None, None, f"Malformed meta graph value: {str(obj)[:80]}")


def _decode_array(payload: Any) -> np.ndarray:
    if isinstance(payload, np.ndarray):
        return payload
    raise ValueError("array payload without its data")


_DECODERS: dict[str, Any] = {
    "int": int,
    "float": float,
    "bytes": lambda p: base64.b64decode(p, validate=True),
    "dtype": dtypes.as_dtype,
    "shape": lambda p: TensorShape(None if p is None else [None if d is None else int(d) for d in p]),
    "ndarray": _decode_array,
    "scalar": lambda p: _decode_array(p)[()],
    "tuple": lambda p: tuple(decode_value(v) for v in p),
    "dict": lambda p: {str(k): decode_value(v) for k, v in p.items()},
}


# ---- export ------------------------------------------------------------------------------------

def _is_variable(x: Any) -> bool:
    return hasattr(x, "_to_dict") and hasattr(x, "_variable")


def _strip(name: str, scope: str | None) -> str | None:
    """`name` relative to `scope`, or None if it lies outside it."""
    if not scope:
        return name
    prefix = scope.rstrip("/") + "/"
    return name[len(prefix):] if name.startswith(prefix) else None


def _encode_item(item: Any, scope: str | None) -> dict[str, Any] | None:
    if _is_variable(item):
        name = _strip(item.op.name, scope)
        return None if name is None else {"variable": name}
    if isinstance(item, Tensor):
        name = _strip(item.name, scope)
        return None if name is None else {"tensor": name}
    if isinstance(item, Operation):
        name = _strip(item.name, scope)
        return None if name is None else {"operation": name}
    if item is None or isinstance(item, (bool, int, float, str, bytes)):
        return {"value": encode_value(item)}
    saver_def = getattr(item, "saver_def", None)
    if isinstance(saver_def, dict) and hasattr(item, "restore"):
        return {"saver": saver_def}
    return None


def export_meta_graph(filename: str | None = None, meta_info_def: Any = None, graph_def: Any = None,
                      saver_def: dict[str, Any] | None = None, collection_list: list[str] | None = None,
                      as_text: bool = False, graph: Graph | None = None, export_scope: str | None = None,
                      clear_devices: bool = False, clear_extraneous_savers: bool = False,
                      strip_default_attrs: bool = False, save_debug_info: bool = False,
                      **kwargs: Any) -> MetaGraphDef:
    """Describes `graph` (default: the default graph) as data, writes it to `filename` if given,
    and returns it. `export_scope` keeps only ops under that name scope, with the scope stripped."""
    if kwargs:
        raise TypeError(f"export_meta_graph() got unexpected keyword arguments {sorted(kwargs)}")
    g = graph or get_default_graph()
    ops_out = []
    for op in g.get_operations():
        name = _strip(op.name, export_scope)
        if name is None:
            continue
        inputs = [_strip(t.name, export_scope) for t in op.inputs]
        controls = [_strip(c.name, export_scope) for c in op.control_inputs]
        if any(n is None for n in inputs):
            raise ValueError(f"Op {op.name} reads a tensor outside export_scope {export_scope!r}")
        ops_out.append({
            "name": name, "type": op.type, "inputs": inputs, "control_inputs": [c for c in controls if c],
            "device": "" if clear_devices else op.device,
            "attrs": {k: encode_value(v, f"attr {k!r} of op {op.name!r}") for k, v in op.attrs.items()},
        })
    variables: dict[str, Any] = {}
    collections: dict[str, list[Any]] = {}
    keys = collection_list if collection_list is not None else g.get_all_collection_keys()
    for key in keys:
        items = []
        for item in g.get_collection(key):
            enc = _encode_item(item, export_scope)
            if enc is None:
                if _strip(getattr(item, "name", ""), export_scope) is not None:
                    logger.warning("Collection %r: item of type %s is not serializable; skipped",
                                   key, type(item).__name__)
                continue
            if "variable" in enc:
                d = dict(item._to_dict())
                for k, v in d.items():
                    if k.endswith("_name"):
                        d[k] = _strip(v, export_scope)
                if any(v is None for v in d.values()):
                    continue
                variables[enc["variable"]] = d
            items.append(enc)
        collections[key] = items
    body: dict[str, Any] = {"meta_info": {"producer": "jitflow", "tags": []},
                            "graph_seed": g.seed, "ops": ops_out, "variables": variables,
                            "collections": collections, "saver_def": saver_def}
    if filename:
        write_meta_graph_file(filename, body)
    return body


def _serialize(body: MetaGraphDef) -> list[bytes | memoryview]:
    """The file's pieces: header line + JSON body, then each array's bytes (no copies)."""
    blob: list[memoryview] = []
    offset = [0]

    def array_hook(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return _array_to_json(obj, blob, offset)
        raise TypeError(f"Cannot serialize {type(obj).__name__} into a meta graph")

    payload = json.dumps(body, separators=(",", ":"), allow_nan=False, default=array_hook).encode("utf-8")
    blob_crc = 0
    for view in blob:
        blob_crc = crc.value(view, blob_crc)
    header = json.dumps({"format": FORMAT, "version": VERSION, "length": len(payload),
                         "crc32c": crc.value(payload), "blob_length": offset[0], "blob_crc32c": blob_crc},
                        separators=(",", ":"))  # no whitespace: every header byte is significant
    return [header.encode("utf-8") + b"\n" + payload, *blob]


def dumps(body: MetaGraphDef) -> bytes:
    """The bytes of a meta graph file for `body`."""
    return b"".join(_serialize(body))


def write_meta_graph_file(filename: str, body: MetaGraphDef) -> None:
    """Writes a meta graph file atomically: header line, JSON body, binary array section."""
    chunks = _serialize(body)
    os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
    with atomic.open_temp(filename) as (f, tmp):
        for chunk in chunks:
            atomic.write_all(f, memoryview(chunk))
    os.replace(tmp, filename)
    atomic.fsync_dir(os.path.dirname(os.path.abspath(filename)))


def _corrupt(filename: str, what: str) -> Exception:
    return DataLossError(None, None, f"Meta graph file {filename} is {what}")


def read_meta_graph_file(filename: str) -> MetaGraphDef:
    """Reads and checks a meta graph file: OSError if missing, DataLossError if damaged or foreign."""
    if not os.path.exists(filename):
        raise OSError(f"File {filename} does not exist.")
    with open(filename, "rb") as f:
        return loads(f.read(), filename)


def loads(data: bytes, filename: str = "<bytes>") -> MetaGraphDef:
    """Parses and checks the bytes of a meta graph file; DataLossError if damaged or foreign."""
    raw = memoryview(data)
    nl = bytes(raw[:4096]).find(b"\n")
    try:
        header = json.loads(bytes(raw[:nl])) if nl > 0 else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataLossError(None, None, f"{filename} is not a jitflow meta graph file (TensorFlow's binary "
                            "MetaGraphDef protos are not supported)")
    if header.get("version") != VERSION:
        raise DataLossError(None, None, f"{filename}: unsupported meta graph version {header.get('version')}")
    try:
        n, blob_n = int(header["length"]), int(header["blob_length"])
        want_crc, want_blob_crc = int(header["crc32c"]), int(header["blob_crc32c"])
    except (KeyError, TypeError, ValueError):
        raise _corrupt(filename, "corrupted (bad header)") from None
    payload, blob = raw[nl + 1:nl + 1 + n], raw[nl + 1 + n:]
    if len(payload) != n or len(blob) != blob_n:
        raise _corrupt(filename, "truncated or has trailing data")
    if crc.value(payload) != want_crc or crc.value(blob) != want_blob_crc:
        raise _corrupt(filename, "corrupted (checksum mismatch)")
    try:
        body = json.loads(bytes(payload))
        if not isinstance(body, dict) or not isinstance(body.get("ops"), list):
            raise ValueError("no op list")
        for op in body["ops"]:
            op["attrs"] = {k: _resolve_arrays(v, blob) for k, v in op["attrs"].items()}
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:
        raise _corrupt(filename, f"corrupted: {e}") from None
    return body


def _resolve_arrays(obj: Any, blob: memoryview) -> Any:
    """Replaces the JSON form of array attrs by NumPy arrays read from the binary section."""
    if isinstance(obj, list):
        return [_resolve_arrays(v, blob) for v in obj]
    if isinstance(obj, dict) and len(obj) == 1:
        (tag, payload), = obj.items()
        if tag in ("ndarray", "scalar"):
            return {tag: _array_from_json(payload, blob)}
        if tag == "tuple":
            return {tag: [_resolve_arrays(v, blob) for v in payload]}
        if tag == "dict":
            return {tag: {k: _resolve_arrays(v, blob) for k, v in payload.items()}}
    return obj


# ---- import ------------------------------------------------------------------------------------

def _scoped(name: str, scope: str | None) -> str:
    return f"{scope.rstrip('/')}/{name}" if scope else name


def import_scoped_meta_graph(meta: MetaGraphDef | str, graph: Graph | None = None,
                             import_scope: str | None = None, clear_devices: bool = False,
                             input_map: dict[str, Any] | None = None) -> dict[str, Any]:
    """Adds the ops and collections of `meta` to `graph`; returns the imported Variables by op name.

    `input_map` maps tensor names of the saved graph ("x:0", or "x" for its first output) to tensors
    of `graph` that imported ops read instead.
    """
    body = read_meta_graph_file(meta) if isinstance(meta, str) else meta
    g = graph or get_default_graph()
    mapping = check_input_map(g, input_map)
    try:
        _import_ops(g, body["ops"], import_scope, clear_devices, mapping)
        if g.seed is None and body.get("graph_seed") is not None:
            g.seed = int(body["graph_seed"])
        variables = _import_variables(g, body.get("variables") or {}, import_scope)
        _import_collections(g, body.get("collections") or {}, variables, import_scope)
    except (KeyError, TypeError, AttributeError) as e:
        raise DataLossError(None, None, f"Malformed meta graph: {type(e).__name__}: {e}") from None
    return variables


def _import_ops(g: Graph, ops: list[dict[str, Any]], scope: str | None, clear_devices: bool,
                mapping: dict[str, Tensor]) -> None:
    for spec in ops:
        try:
            inputs = [mapping[n] if n in mapping else g.get_tensor_by_name(_scoped(n, scope))
                      for n in spec["inputs"]]
            controls = [g.get_operation_by_name(_scoped(n, scope)) for n in spec["control_inputs"]]
        except KeyError as e:
            raise DataLossError(None, None, f"Meta graph op {spec.get('name')!r} refers to a missing "
                                f"input: {e}") from None
        attrs = {str(k): decode_value(v) for k, v in spec["attrs"].items()}
        with g.control_dependencies(None):
            g.create_op(str(spec["type"]), inputs, attrs=attrs, name=_scoped(str(spec["name"]), scope),
                        control_inputs=controls, device=None if clear_devices else str(spec["device"]),
                        exact_name=True)


def _import_variables(g: Graph, specs: dict[str, Any], scope: str | None) -> dict[str, Any]:
    from jitflow.variables import Variable

    out = {}
    for name, d in specs.items():
        d = {k: (_scoped(v, scope) if k.endswith("_name") else v) for k, v in d.items()}
        out[_scoped(name, scope)] = Variable._from_dict(g, d)
    return out


def _import_collections(g: Graph, collections: dict[str, list[Any]], variables: dict[str, Any],
                        scope: str | None) -> None:
    for key, items in collections.items():
        for item in items:
            if "variable" in item:
                value = variables[_scoped(item["variable"], scope)]
            elif "tensor" in item:
                value = g.get_tensor_by_name(_scoped(item["tensor"], scope))
            elif "operation" in item:
                value = g.get_operation_by_name(_scoped(item["operation"], scope))
            elif "saver" in item:
                from .saver import Saver

                value = Saver._from_saver_def(item["saver"], variables, scope)
            else:
                value = decode_value(item["value"])
            g.add_to_collection(key, value)


def import_meta_graph(meta_graph_or_file: MetaGraphDef | str, clear_devices: bool = False,
                      import_scope: str | None = None, input_map: dict[str, Any] | None = None,
                      **kwargs: Any) -> Any:
    """Recreates a saved graph in the default graph and returns a Saver for it (None if it has no
    variables), so that `saver.restore(sess, path)` loads the values."""
    from .saver import Saver

    unknown = set(kwargs) - {"return_elements"}
    if unknown:
        raise TypeError(f"import_meta_graph() got unexpected keyword arguments {sorted(unknown)}")
    body = read_meta_graph_file(meta_graph_or_file) if isinstance(meta_graph_or_file, str) \
        else meta_graph_or_file
    variables = import_scoped_meta_graph(body, None, import_scope, clear_devices, input_map)
    saver_def = body.get("saver_def")
    if saver_def:
        return Saver._from_saver_def(saver_def, variables, import_scope)
    if get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES):
        return Saver()
    logger.info("Saver not created because there are no variables in the graph to restore")
    return None
