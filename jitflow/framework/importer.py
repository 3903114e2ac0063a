"""`tf.import_graph_def` and `tf.train.write_graph`: GraphDefs into graphs and onto disk."""
from __future__ import annotations

import os
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from jitflow.errors import DataLossError
from jitflow.framework import graph_io
from jitflow.framework.graph import Graph, get_default_graph
from jitflow.protos.graph import GraphDef


def _check_graph_def(graph_def: Any) -> GraphDef:
    if isinstance(graph_def, GraphDef):
        return graph_def
    if type(graph_def).__name__ == "GraphDef" and hasattr(graph_def, "SerializeToString"):
        out = GraphDef()  # another library's GraphDef class (TensorFlow's own): same bytes
        out.ParseFromString(graph_def.SerializeToString())
        return out
    raise TypeError(f"graph_def must be a GraphDef proto, got {type(graph_def).__name__}")


def _return_elements(ctx: graph_io.ImportContext, names: list[str]) -> list[Any]:
    out: list[Any] = []
    for name in names:
        op_name, _, idx = name.partition(":")
        op = ctx.ops.get(op_name)
        if op is None:
            raise ValueError(f"Requested return_element {name!r} not found in graph_def.")
        if not idx:
            out.append(op)
            continue
        try:
            out.append(op.outputs[int(idx)])
        except (ValueError, IndexError):
            raise ValueError(f"Requested return_element {name!r} not found in graph_def.") from None
    return out


def import_graph_def(graph_def: Any, input_map: dict[str, Any] | None = None,
                     return_elements: list[str] | None = None, name: str | None = None,
                     op_dict: Any = None, producer_op_list: Any = None) -> list[Any] | None:
    """Adds the nodes of `graph_def` to the default graph under the name scope `name` ("import" if
    None, none if ""); `input_map` replaces tensors of the GraphDef ("x:0") by tensors of the graph;
    returns the Tensors ("x:0") and Operations ("x") named in `return_elements`."""
    gd = _check_graph_def(graph_def)
    g = get_default_graph()
    mapping = graph_io.check_input_map(g, input_map)
    with g.name_scope(name if name is not None else "import") as scope:
        ctx = graph_io.ImportContext(g, scope, mapping)
        graph_io.import_nodes(ctx, gd)
    unused = sorted(set(mapping) - ctx.used_inputs)
    if unused:
        raise ValueError(f"Attempted to map inputs that were not found in graph_def: [{', '.join(unused)}]")
    return _return_elements(ctx, list(return_elements)) if return_elements is not None else None


def as_graph_def(graph: Graph, from_version: int | None = None, add_shapes: bool = False) -> GraphDef:
    """The GraphDef of `graph` (`add_shapes` adds TF's `_output_shapes` attr to every node)."""
    gd = graph_io.graph_to_graph_def(graph)
    if add_shapes:
        from jitflow.framework.attr_values import to_attr_value

        for node in gd.node:
            op = graph._ops_by_name.get(node.name)
            if op is not None:
                node.attr["_output_shapes"].CopyFrom(
                    to_attr_value([t.shape for t in op.outputs], "list(shape)", node.name))
    return gd


def write_graph(graph_or_graph_def: Any, logdir: str, name: str, as_text: bool = True) -> str:
    """`tf.train.write_graph`: writes the GraphDef (text or binary) to logdir/name; returns the path."""
    gd = graph_or_graph_def.as_graph_def() if isinstance(graph_or_graph_def, Graph) else \
        _check_graph_def(graph_or_graph_def)
    path = os.path.join(os.fspath(logdir), name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = text_format.MessageToString(gd).encode("utf-8") if as_text else gd.SerializeToString()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def parse_file(path: str, message: Any) -> Any:
    """Reads a binary (or, for .pbtxt, text) proto file into `message`; DataLossError naming the file
    when it cannot be parsed."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        if path.endswith((".pbtxt", ".txt")):
            text_format.Parse(data.decode("utf-8"), message)
        else:
            message.ParseFromString(data)
    except (DecodeError, text_format.ParseError, UnicodeDecodeError, RuntimeError) as e:
        raise DataLossError(None, None, f"Can't parse {path} as binary proto: {e}") from None
    return message
