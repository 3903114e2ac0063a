"""A Saver as TensorFlow's graph nodes and SaverDef, for meta graphs both ways.

jitflow's Saver moves values without graph ops, but TensorFlow restores a meta graph's variables by
running the ops its SaverDef names. Export therefore writes TF's V2 saver subgraph (`save/Const`,
`save/SaveV2`, `save/control_dependency`, `save/RestoreV2`, `save/Assign*`, `save/restore_all`);
import reads the checkpoint keys and variables back from the SaveV2 nodes and skips the subgraph.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import tensor_util
from jitflow.framework.graph import Graph
from jitflow.framework.graph_io import ExportContext, make_node
from jitflow.protos.graph import GraphDef
from jitflow.protos.node_def import NodeDef
from jitflow.protos.saver import SaverDef

V2 = 2


def _scope(ctx: ExportContext) -> str:
    """"save", or "save_N" if the graph already uses that name (as TF's name scopes do)."""
    prefixes = {n.split("/")[0] for n in ctx.names}
    name, i = "save", 0
    while name in prefixes:
        i += 1
        name = f"save_{i}"
    return name


def _string_const(ctx: ExportContext, name: str, values: list[bytes] | bytes) -> str:
    arr = np.empty((), dtype=object) if isinstance(values, bytes) else np.empty(len(values), dtype=object)
    arr[...] = values if isinstance(values, bytes) else list(values)
    make_node(ctx, name, "Const", [], {"value": arr, "dtype": dtypes.string}, out_types=[dtypes.string])
    return name


def add_saver_nodes(ctx: ExportContext, graph: Graph, d: dict[str, Any]) -> SaverDef:
    """Writes TF's saver subgraph for jitflow's `saver_def` dict; returns the matching SaverDef."""
    s = _scope(ctx)
    keys = list(d["var_list"])
    var_ops = [graph.get_operation_by_name(d["var_list"][k]) for k in keys]
    types = [v.outputs[0].dtype for v in var_ops]
    str1 = [dtypes.string]
    _string_const(ctx, f"{s}/filename/input", b"model")
    make_node(ctx, f"{s}/filename", "PlaceholderWithDefault", [f"{s}/filename/input"],
              {"dtype": dtypes.string, "shape": []}, in_types=str1, out_types=str1)
    make_node(ctx, f"{s}/Const", "PlaceholderWithDefault", [f"{s}/filename"],
              {"dtype": dtypes.string, "shape": []}, in_types=str1, out_types=str1)
    names = [k.encode() for k in keys]
    slices = [b""] * len(keys)
    _string_const(ctx, f"{s}/SaveV2/tensor_names", names)
    _string_const(ctx, f"{s}/SaveV2/shape_and_slices", slices)
    make_node(ctx, f"{s}/SaveV2", "SaveV2", [f"{s}/Const", f"{s}/SaveV2/tensor_names",
                                            f"{s}/SaveV2/shape_and_slices"] + [v.name for v in var_ops],
              {"dtypes": types})
    make_node(ctx, f"{s}/control_dependency", "Identity", [f"{s}/Const", f"^{s}/SaveV2"], {"T": dtypes.string})
    _string_const(ctx, f"{s}/RestoreV2/tensor_names", names)
    _string_const(ctx, f"{s}/RestoreV2/shape_and_slices", slices)
    make_node(ctx, f"{s}/RestoreV2", "RestoreV2", [f"{s}/Const", f"{s}/RestoreV2/tensor_names",
                                                  f"{s}/RestoreV2/shape_and_slices"], {"dtypes": types})
    assigns = []
    for i, (v, dt) in enumerate(zip(var_ops, types)):
        a = f"{s}/Assign" + (f"_{i}" if i else "")
        src = f"{s}/RestoreV2" + (f":{i}" if i else "")
        make_node(ctx, a, "Assign", [v.name, src], {"T": dt, "use_locking": False, "validate_shape": True})
        assigns.append("^" + a)
    make_node(ctx, f"{s}/restore_all", "NoOp", assigns, {})
    return SaverDef(filename_tensor_name=f"{s}/Const:0", save_tensor_name=f"{s}/control_dependency:0",
                    restore_op_name=f"{s}/restore_all", max_to_keep=int(d.get("max_to_keep", 5) or 0),
                    sharded=bool(d.get("sharded", False)),
                    keep_checkpoint_every_n_hours=float(d.get("keep_checkpoint_every_n_hours", 10000.0)),
                    version=V2)


def saver_scope(saver_def: SaverDef) -> str:
    """The name scope of a SaverDef's nodes ("save/"), or "" if it names none."""
    name = saver_def.restore_op_name or saver_def.save_tensor_name
    return name.rsplit("/", 1)[0] + "/" if "/" in name else ""


# Checkpoint I/O ops of TF's savers: jitflow's Saver does their work, so their subgraphs are not imported.
SAVER_IO_OPS = {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save", "SaveSlices", "Restore", "RestoreSlice",
                "ShardedFilename", "ShardedFilespec"}


def saver_scopes(graph_def: GraphDef, saver_def: SaverDef | None) -> tuple[str, ...]:
    """Name scopes of saver subgraphs: the SaverDef's, and that of every checkpoint I/O node."""
    scopes = {n.name.rsplit("/", 1)[0] + "/" for n in graph_def.node if n.op in SAVER_IO_OPS and "/" in n.name}
    if saver_def is not None and saver_scope(saver_def):
        scopes.add(saver_scope(saver_def))
    return tuple(sorted(scopes))


def var_list_from_nodes(graph_def: GraphDef, scope: str) -> dict[str, str]:
    """Checkpoint key -> variable op name, read from the SaveV2 nodes under `scope`."""
    by_name = {n.name: n for n in graph_def.node}
    out: dict[str, str] = {}
    for n in graph_def.node:
        if not n.name.startswith(scope) or n.op != "SaveV2" or len(n.input) < 3:
            continue
        keys = _const_strings(by_name.get(n.input[1].split(":")[0]))
        tensors = [i for i in n.input[3:] if not i.startswith("^")]
        for k, t in zip(keys, tensors):
            src = by_name.get(t.split(":")[0])
            while src is not None and src.op == "Identity" and src.input:  # resource reads, snapshots
                src = by_name.get(src.input[0].split(":")[0])
            out[k.decode()] = src.name if src is not None else t.split(":")[0]
    return out


def _const_strings(node: NodeDef | None) -> list[bytes]:
    if node is None or node.op != "Const":
        return []
    return list(tensor_util.make_ndarray(node.attr["value"].tensor, node.name).reshape(-1))


def saver_dict(saver_def: SaverDef, var_list: dict[str, str], prefix: str) -> dict[str, Any]:
    """jitflow's `saver_def` dict for a SaverDef whose variables are `var_list` (under `prefix`)."""
    return {"version": V2, "var_list": {k: prefix + v for k, v in var_list.items()},
            "max_to_keep": saver_def.max_to_keep, "sharded": saver_def.sharded,
            "keep_checkpoint_every_n_hours": saver_def.keep_checkpoint_every_n_hours or 10000.0}
