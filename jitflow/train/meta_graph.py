"""Meta graphs in TensorFlow's `MetaGraphDef` format (binary or text): the graph, its collections and
its Saver. Files written here load in TensorFlow and the other way round. Files of jitflow's former
JSON format are still read (`meta_graph_json`), with a deprecation warning.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from jitflow.errors import DataLossError
from jitflow.framework import graph_io, op_schemas
from jitflow.framework.graph import Graph, GraphKeys, Operation, Tensor, get_default_graph
from jitflow.protos.meta_graph import CollectionDef, MetaGraphDef
from jitflow.protos.variable import VariableDef

from . import meta_graph_json, saver_nodes
from .checkpoint import atomic

logger = logging.getLogger("jitflow.train")

# Collections whose bytes_list items are serialized VariableDefs (TF's registered proto functions).
VARIABLE_COLLECTIONS = {GraphKeys.GLOBAL_VARIABLES, GraphKeys.TRAINABLE_VARIABLES, GraphKeys.LOCAL_VARIABLES,
                        GraphKeys.MODEL_VARIABLES, GraphKeys.MOVING_AVERAGE_VARIABLES,
                        GraphKeys.METRIC_VARIABLES, GraphKeys.GLOBAL_STEP}
_SKIPPED = {"savers", GraphKeys.QUEUE_RUNNERS, GraphKeys.COND_CONTEXT, GraphKeys.WHILE_CONTEXT}
TF_VERSION = "1.15.0"  # what meta_info_def says: the TensorFlow release whose formats are written


# ---- export ------------------------------------------------------------------------------------

def _strip(name: str, scope: str | None) -> str | None:
    """`name` relative to `scope`, or None if it lies outside it."""
    if not scope:
        return name
    prefix = scope.rstrip("/") + "/"
    return name[len(prefix):] if name.startswith(prefix) else None


def _graph_def(g: Graph, scope: str | None, clear_devices: bool) -> graph_io.ExportContext:
    ops = [op for op in g.get_operations() if _strip(op.name, scope) is not None]
    gd = graph_io.graph_to_graph_def(g, ops, clear_devices)
    if scope:
        for node in gd.node:
            node.name = _strip(node.name, scope) or node.name
            for i, ref in enumerate(node.input):
                ctrl = ref.startswith("^")
                inner = _strip(ref.lstrip("^"), scope)
                if inner is None:
                    raise ValueError(f"Op {node.name} reads {ref} from outside export_scope {scope!r}")
                node.input[i] = ("^" if ctrl else "") + inner
    return graph_io.ExportContext(gd, clear_devices, {n.name for n in gd.node})


def _variable_def(v: Any, scope: str | None) -> bytes | None:
    d = v._to_dict()
    names = {k: _strip(d[k], scope) for k in ("variable_name", "initializer_name", "snapshot_name",
                                               "initial_value_name")}
    if any(n is None for n in names.values()):
        return None
    return VariableDef(**names, trainable=bool(d["trainable"])).SerializeToString()


def _add_item(cd: CollectionDef, item: Any, scope: str | None, as_variable: bool) -> bool:
    """Adds one collection item in TF's form; False if it has none (or lies outside `scope`).
    Variables are VariableDefs in the variable collections, their tensor names elsewhere (as in TF)."""
    if hasattr(item, "_to_dict") and hasattr(item, "_variable") and as_variable:
        b = _variable_def(item, scope)
        return b is not None and (cd.bytes_list.value.append(b) or True)
    if isinstance(item, (Tensor, Operation)) or hasattr(item, "_variable"):
        from jitflow.framework.loop_frame_export import graph_def_name  # a loop's outputs: its Exit nodes

        name = _strip(graph_def_name(item), scope)
        return name is not None and (cd.node_list.value.append(name) or True)
    if isinstance(item, (str, bytes)):
        cd.bytes_list.value.append(item.encode() if isinstance(item, str) else item)
    elif isinstance(item, (bool, int)):
        cd.int64_list.value.append(int(item))
    elif isinstance(item, float):
        cd.float_list.value.append(item)
    else:
        return False
    return True


def _collections(meta: MetaGraphDef, g: Graph, keys: list[str] | None, scope: str | None) -> None:
    for key in (keys if keys is not None else g.get_all_collection_keys()):
        if key in _SKIPPED:
            continue
        cd = CollectionDef()
        for item in g.get_collection(key):
            kind = cd.WhichOneof("kind")
            probe = CollectionDef()
            if not _add_item(probe, item, scope, key in VARIABLE_COLLECTIONS):
                if _strip(getattr(item, "name", ""), scope) is not None:
                    logger.warning("Collection %r: item of type %s is not serializable; skipped",
                                   key, type(item).__name__)
                continue
            if kind is not None and probe.WhichOneof("kind") != kind:
                logger.warning("Collection %r mixes kinds of items; %r skipped", key, item)
                continue
            cd.MergeFrom(probe)
        if cd.WhichOneof("kind") is not None:
            meta.collection_def[key].CopyFrom(cd)


def export_meta_graph(filename: str | None = None, meta_info_def: Any = None, graph_def: Any = None,
                      saver_def: Any = None, collection_list: list[str] | None = None,
                      as_text: bool = False, graph: Graph | None = None, export_scope: str | None = None,
                      clear_devices: bool = False, clear_extraneous_savers: bool = False,
                      strip_default_attrs: bool = False, save_debug_info: bool = False,
                      **kwargs: Any) -> MetaGraphDef:
    """`tf.train.export_meta_graph`: the MetaGraphDef of `graph` (default graph), written to `filename`
    if given. `export_scope` keeps only ops under that name scope, with the scope stripped."""
    if kwargs:
        raise TypeError(f"export_meta_graph() got unexpected keyword arguments {sorted(kwargs)}")
    g = graph or get_default_graph()
    ctx = _graph_def(g, export_scope, clear_devices)
    meta = MetaGraphDef()
    if isinstance(saver_def, dict) and saver_def.get("var_list") and not export_scope:
        meta.saver_def.CopyFrom(saver_nodes.add_saver_nodes(ctx, g, saver_def))
    elif saver_def is not None and hasattr(saver_def, "restore_op_name"):
        meta.saver_def.CopyFrom(saver_def)
    if meta_info_def is not None:
        meta.meta_info_def.CopyFrom(meta_info_def)
    meta.meta_info_def.tensorflow_version = meta.meta_info_def.tensorflow_version or TF_VERSION
    meta.meta_info_def.tensorflow_git_version = meta.meta_info_def.tensorflow_git_version or "jitflow"
    meta.meta_info_def.stripped_op_list.CopyFrom(op_schemas.op_list([n.op for n in ctx.graph_def.node]))
    meta.graph_def.CopyFrom(ctx.graph_def)
    _collections(meta, g, collection_list, export_scope)
    if collection_list is None or GraphKeys.WHILE_CONTEXT in collection_list:
        from jitflow.framework.loop_contexts import add_while_contexts  # (TF builds loop gradients from them)

        add_while_contexts(meta)
    if filename:
        write_meta_graph_file(filename, meta, as_text)
    return meta


def write_meta_graph_file(filename: str, meta: MetaGraphDef, as_text: bool = False) -> None:
    """Writes a MetaGraphDef (binary, or text format) atomically."""
    data = text_format.MessageToString(meta).encode("utf-8") if as_text else meta.SerializeToString()
    folder = os.path.dirname(os.path.abspath(filename))
    os.makedirs(folder, exist_ok=True)
    with atomic.open_temp(filename) as (f, tmp):
        atomic.write_all(f, memoryview(data))
    os.replace(tmp, filename)
    atomic.fsync_dir(folder)


# ---- reading -----------------------------------------------------------------------------------

def read_meta_graph_file(filename: str) -> MetaGraphDef | dict:
    """A MetaGraphDef from a binary or text file (a dict for jitflow's former format); OSError if
    missing, DataLossError naming the file if it is neither."""
    if not os.path.exists(filename):
        raise OSError(f"File {filename} does not exist.")
    with open(filename, "rb") as f:
        data = f.read()
    if data.startswith(b'{"format":"' + meta_graph_json.FORMAT.encode()):
        warnings.warn(f"{filename} is in jitflow's former meta graph format, which is deprecated and will "
                      "not be read by the next release; save it again to write TensorFlow's format",
                      DeprecationWarning, stacklevel=3)
        return meta_graph_json.loads(data, filename)
    meta = MetaGraphDef()
    try:
        meta.ParseFromString(data)
        return meta
    except (DecodeError, RuntimeError):
        pass
    try:
        return text_format.Parse(data.decode("utf-8"), MetaGraphDef())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise DataLossError(None, None, f"Cannot parse {filename} as a MetaGraphDef (binary or text): "
                            f"{str(e)[:200]}") from None


# ---- import ------------------------------------------------------------------------------------

def _scoped(name: str, scope: str | None) -> str:
    return f"{scope.rstrip('/')}/{name}" if scope else name


def _variable(g: Graph, raw: bytes, scope: str | None, cache: dict[str, Any]) -> Any:
    from jitflow.variables import Variable

    vd = VariableDef()
    try:
        vd.ParseFromString(raw)
    except (DecodeError, RuntimeError) as e:
        raise DataLossError(None, None, f"Malformed VariableDef in a meta graph collection: {e}") from None
    name = _scoped(vd.variable_name, scope)
    if name not in cache:
        cache[name] = Variable._from_dict(g, {
            "variable_name": name, "initializer_name": _scoped(vd.initializer_name, scope),
            "snapshot_name": _scoped(vd.snapshot_name, scope),
            "initial_value_name": _scoped(vd.initial_value_name or vd.snapshot_name, scope),
            "trainable": vd.trainable})
    return cache[name]


def _import_collections(g: Graph, meta: MetaGraphDef, scope: str | None) -> dict[str, Any]:
    """Adds the collections (names resolved as TF does: the import scope prepended); returns the
    Variables by op name."""
    cache: dict[str, Any] = {}
    for key, cd in meta.collection_def.items():
        if key in _SKIPPED:
            continue
        kind = cd.WhichOneof("kind")
        items: list[Any] = []
        if kind == "node_list":
            items = [g.as_graph_element(_scoped(n, scope)) for n in cd.node_list.value]
        elif kind == "bytes_list" and key in VARIABLE_COLLECTIONS:
            items = [_variable(g, b, scope, cache) for b in cd.bytes_list.value]
        elif kind in ("bytes_list", "int64_list", "float_list"):
            items = list(getattr(cd, kind).value)
        for item in items:
            g.add_to_collection(key, item)
    return {v.op.name: v for v in cache.values()}


def import_scoped_meta_graph(meta: MetaGraphDef | str, graph: Graph | None = None,
                             import_scope: str | None = None, clear_devices: bool = False,
                             input_map: dict[str, Any] | None = None) -> dict[str, Any]:
    """Adds the nodes and collections of `meta` to `graph`; returns the imported Variables by op name.
    Nodes whose names are taken are renamed as TensorFlow's importer does (`v1` -> `v1_1`)."""
    return _import(meta, graph, import_scope, clear_devices, input_map)[0]


def _import(meta_or_file: Any, graph: Graph | None, scope: str | None, clear_devices: bool,
            input_map: dict[str, Any] | None) -> tuple[dict[str, Any], Any, str | None]:
    """(Variables by op name, jitflow's saver_def dict or None, the scope its names are relative to)."""
    meta = read_meta_graph_file(meta_or_file) if isinstance(meta_or_file, str) else meta_or_file
    if isinstance(meta, dict):
        variables = meta_graph_json.import_scoped_meta_graph(meta, graph, scope, clear_devices, input_map)
        return variables, meta.get("saver_def"), scope
    g = graph or get_default_graph()
    s_scope = saver_nodes.saver_scope(meta.saver_def) if meta.HasField("saver_def") else ""
    var_list = saver_nodes.var_list_from_nodes(meta.graph_def, s_scope) if s_scope else {}
    skipped = saver_nodes.saver_scopes(meta.graph_def, meta.saver_def if s_scope else None)
    prefix = scope.rstrip("/") + "/" if scope else ""
    ctx = graph_io.ImportContext(g, prefix, graph_io.check_input_map(g, input_map), clear_devices,
                                 skip=(lambda n: n.name.startswith(skipped)) if skipped else None)
    graph_io.import_nodes(ctx, meta.graph_def)
    variables = _import_collections(g, meta, scope)
    saver = saver_nodes.saver_dict(meta.saver_def, var_list, prefix) if var_list else None
    return variables, saver, None


def import_meta_graph(meta_graph_or_file: MetaGraphDef | str, clear_devices: bool = False,
                      import_scope: str | None = None, input_map: dict[str, Any] | None = None,
                      **kwargs: Any) -> Any:
    """`tf.train.import_meta_graph`: recreates a saved graph in the default graph and returns a Saver
    for it (None if it has no variables), so that `saver.restore(sess, path)` loads the values."""
    from .saver import Saver

    unknown = set(kwargs) - {"return_elements"}
    if unknown:
        raise TypeError(f"import_meta_graph() got unexpected keyword arguments {sorted(unknown)}")
    variables, saver_def, names_scope = _import(meta_graph_or_file, None, import_scope, clear_devices,
                                                input_map)
    if saver_def:
        return Saver._from_saver_def(saver_def, variables, names_scope)
    if get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES):
        return Saver()
    logger.info("Saver not created because there are no variables in the graph to restore")
    return None
