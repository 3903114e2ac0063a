"""`tf.graph_util`: frozen graphs (`convert_variables_to_constants`) and GraphDef surgery."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.framework.attr_values import to_attr_value
from jitflow.protos.graph import GraphDef
from jitflow.protos.node_def import NodeDef

_VARIABLE_OPS = ("VariableV2", "Variable")


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def extract_sub_graph(graph_def: GraphDef, dest_nodes: list[str]) -> GraphDef:
    """The nodes that `dest_nodes` need (through data and control inputs), in their original order."""
    if isinstance(dest_nodes, str):
        raise TypeError("dest_nodes must be a list.")
    by_name = {n.name: n for n in graph_def.node}
    for d in dest_nodes:
        if d not in by_name:
            raise AssertionError(f"{d} is not in graph")
    keep: set[str] = set()
    stack = list(dest_nodes)
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(_node_name(i) for i in by_name[name].input if _node_name(i) in by_name)
    out = GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.node.extend(n for n in graph_def.node if n.name in keep)
    return out


def convert_variables_to_constants(sess: Any, input_graph_def: GraphDef, output_node_names: list[str],
                                   variable_names_whitelist: list[str] | None = None,
                                   variable_names_blacklist: list[str] | None = None) -> GraphDef:
    """A frozen graph: the part that `output_node_names` need, each variable replaced by a Const
    holding its current value in `sess`."""
    sub = extract_sub_graph(input_graph_def, output_node_names)
    names = [n.name for n in sub.node if n.op in _VARIABLE_OPS
             and (variable_names_whitelist is None or n.name in variable_names_whitelist)
             and not (variable_names_blacklist and n.name in variable_names_blacklist)]
    values = dict(zip(names, sess.run([n + ":0" for n in names]))) if names else {}
    out = GraphDef()
    out.versions.CopyFrom(sub.versions)
    for node in sub.node:
        if node.name in values:
            out.node.append(_const_node(node, np.asarray(values[node.name])))
        else:
            out.node.add().CopyFrom(node)
    return out


def _const_node(var: NodeDef, value: np.ndarray) -> NodeDef:
    node = NodeDef(name=var.name, op="Const", device=var.device)
    node.attr["dtype"].CopyFrom(var.attr["dtype"])
    node.attr["value"].CopyFrom(to_attr_value(value.astype(value.dtype), "tensor", var.name))
    return node


def remove_training_nodes(input_graph: GraphDef, protected_nodes: list[str] | None = None) -> GraphDef:
    """Splices out Identity and CheckNumerics nodes (but `protected_nodes` and identities that carry
    control inputs), rewiring their consumers to their inputs."""
    protected = set(protected_nodes or ())
    forward: dict[str, str] = {}
    for n in input_graph.node:
        if n.name in protected or n.op not in ("Identity", "CheckNumerics"):
            continue
        if any(i.startswith("^") for i in n.input):
            continue
        forward[n.name] = n.input[0]

    def resolve(ref: str) -> str:
        ctrl = ref.startswith("^")
        name, _, idx = ref.lstrip("^").partition(":")
        while name in forward and idx in ("", "0"):
            name, _, idx = forward[name].partition(":")
        return "^" + name if ctrl else (f"{name}:{idx}" if idx else name)

    out = GraphDef()
    out.versions.CopyFrom(input_graph.versions)
    for n in input_graph.node:
        if n.name in forward:
            continue
        m = out.node.add()
        m.CopyFrom(n)
        del m.input[:]
        m.input.extend(resolve(i) for i in n.input)
    return out
