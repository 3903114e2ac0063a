"""The `while_context` collection of a MetaGraphDef: one `WhileContextDef` per loop frame, as TF 1.x
writes them. TensorFlow needs them to build new gradients through an imported loop (jitflow does not:
it reads the frames themselves). Written for the outermost loops that are not gradient frames; nested
loops get none (TensorFlow then runs them but cannot differentiate them anew)."""
from __future__ import annotations

from jitflow.errors import InvalidArgumentError
from jitflow.framework import op_schemas
from jitflow.framework.loop_import import TOP, FrameGraph
from jitflow.protos.graph import GraphDef
from jitflow.protos.meta_graph import MetaGraphDef
from jitflow.protos.node_def import NodeDef

KEY = "while_context"


def n_outputs(node: NodeDef) -> int:
    """How many outputs a node has, by TF's OpDef and the node's attrs."""
    schema = op_schemas.get(node.op)
    if schema is None:
        return 1
    n = 0
    for arg in schema.output_arg:
        if arg.number_attr:
            n += node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            n += len(node.attr[arg.type_list_attr].list.type)
        else:
            n += 1
    return n


def _ref(r: str) -> str:
    return r if ":" in r else r + ":0"


def while_contexts(gd: GraphDef) -> list[bytes]:
    """Serialized WhileContextDefs for the loops of `gd`."""
    from jitflow.framework.loop_frame import _parts
    from jitflow.protos.control_flow import WhileContextDef

    nodes = list(gd.node)
    if not any(n.op in ("Enter", "RefEnter") for n in nodes):
        return []
    fg = FrameGraph(nodes)
    out = []
    for name, fr in fg.frames.items():
        if fr.parent != TOP or fr.children or any(n.op == "StackPopV2" for n in fr.nodes):
            continue
        try:
            p = _parts(fg, name)
        except InvalidArgumentError:
            continue
        sw0 = next((s for s, k in p.switch_var.items() if k == 0), None)
        body_pivot = next((n for n in fr.nodes if n.op == "Identity" and list(n.input) == [f"{sw0}:1"]), None)
        if sw0 is None or body_pivot is None:
            continue
        ctx = WhileContextDef(context_name=name, parallel_iterations=p.enters[0].attr["parallel_iterations"].i,
                              back_prop=True, swap_memory=False, pivot_name=f"{p.cond.name}:0",
                              pivot_for_pred_name=f"{p.merges[0].name}:0",
                              pivot_for_body_name=f"{body_pivot.name}:0")
        ctx.loop_exit_names.extend(f"{e.name}:0" for e in p.exits)
        ctx.loop_enter_names.extend(f"{e.name}:0" for e in p.enters)
        values = {f"{n.name}:{i}" for n in fr.nodes for i in range(n_outputs(n))}
        for e in p.invariants:
            values.add(_ref(e.input[0]))
            ctx.values_def.external_values[_ref(e.input[0])] = f"{e.name}:0"
        ctx.values_def.values.extend(sorted(values))
        out.append(ctx.SerializeToString())
    return out


def add_while_contexts(meta: MetaGraphDef) -> None:
    """Fills the meta graph's `while_context` collection from its GraphDef."""
    found = while_contexts(meta.graph_def)
    if found:
        meta.collection_def[KEY].bytes_list.value.extend(found)
