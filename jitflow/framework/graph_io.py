"""Graphs as TensorFlow's `GraphDef`: export (`Graph.as_graph_def`) and import (`tf.import_graph_def`).

Each op becomes a NodeDef with TensorFlow's op type and attrs: the attrs TensorFlow's OpDef
declares (from the op's attrs, else derived from its inputs and outputs, else TF's default), and
nothing else. Ops whose jitflow form differs from TensorFlow's (an axis held as an attr where TF
takes an input, ...) go through the hooks of `op_attrs`. Import is the reverse; a node whose op
type jitflow lacks is a NotFoundError naming it, never dropped. Nothing in a GraphDef is executed
as code: attrs are data, ops come from the registry.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError, NotFoundError
from jitflow.framework import op_schemas, registry
from jitflow.framework.attr_values import from_attr_value, to_attr_value
from jitflow.framework.graph import Graph, Operation, Tensor
from jitflow.protos.graph import GraphDef
from jitflow.protos.node_def import NodeDef
from jitflow.protos.op_def import OpDef

PRODUCER = 27  # GraphDef version TensorFlow 1.15 writes; TensorFlow reads it with its own defaults


# ---- export ------------------------------------------------------------------------------------

@dataclass
class ExportContext:
    """State of one export: the GraphDef being filled and the names already used in it."""

    graph_def: GraphDef
    clear_devices: bool = False
    names: set[str] = field(default_factory=set)
    loops: Any = None  # loop_export.LoopExport: the frames being written

    def unique(self, name: str) -> str:
        """A node name not yet in this GraphDef (for nodes that an export adds)."""
        out, i = name, 0
        while out in self.names:
            i += 1
            out = f"{name}_{i}"
        self.names.add(out)
        return out


def tensor_ref(t: Tensor) -> str:
    """How a NodeDef names an input tensor: 'op' for output 0, else 'op:i'."""
    return t.op.name if t.value_index == 0 else t.name


def _arg_counts(args: Iterable[Any], total: int) -> list[int]:
    """How many tensors each arg of an OpDef takes when the op has `total` of them in all."""
    args = list(args)
    variable = [i for i, a in enumerate(args) if a.number_attr or a.type_list_attr]
    fixed = len(args) - len(variable)
    counts = [1] * len(args)
    if variable:
        counts[variable[0]] = max(total - fixed, 0)
    return counts


def _derived_attrs(schema: OpDef, in_types: list[Any], out_types: list[Any]) -> dict[str, Any]:
    """Type and length attrs of an OpDef, as the op's input and output tensors determine them."""
    out: dict[str, Any] = {}
    for args, types in ((schema.input_arg, in_types), (schema.output_arg, out_types)):
        pos = 0
        for arg, n in zip(args, _arg_counts(args, len(types))):
            mine = types[pos:pos + n]
            pos += n
            if arg.number_attr:
                out.setdefault(arg.number_attr, n)
            if arg.type_list_attr:
                out.setdefault(arg.type_list_attr, list(mine))
            elif arg.type_attr and mine:
                out.setdefault(arg.type_attr, mine[0])
    return out


def make_node(ctx: ExportContext, name: str, op_type: str, inputs: list[str], attrs: dict[str, Any],
              device: str = "", in_types: Sequence[Any] = (), out_types: Sequence[Any] = ()) -> NodeDef:
    """Adds a NodeDef with TF's attrs for `op_type` to the GraphDef being exported."""
    schema = op_schemas.get(op_type)
    if schema is None:
        raise NotFoundError(None, None, f"Op type '{op_type}' (node {name}) has no TensorFlow OpDef; it "
                            "cannot be written to a GraphDef")
    node = ctx.graph_def.node.add(name=name, op=op_type, device="" if ctx.clear_devices else device)
    node.input.extend(inputs)
    derived = _derived_attrs(schema, list(in_types), list(out_types))
    for a in schema.attr:
        if a.name in attrs:
            value = attrs[a.name]
        elif a.name in derived:
            value = derived[a.name]
        elif a.HasField("default_value"):
            node.attr[a.name].CopyFrom(a.default_value)
            continue
        else:
            raise InvalidArgumentError(None, None, f"Node {name} ({op_type}) has no value for TensorFlow's "
                                       f"required attr '{a.name}'")
        node.attr[a.name].CopyFrom(to_attr_value(value, a.type, f"attr '{a.name}' of node {name}"))
    ctx.names.add(name)
    return node


def export_op(ctx: ExportContext, op: Operation) -> None:
    """Writes `op` as one NodeDef (or a few, through its export hook)."""
    from jitflow.framework import op_attrs

    hook = op_attrs.EXPORT_HOOKS.get(op.type)
    if hook is not None:
        hook(ctx, op)
        return
    if op.type in op_attrs.NOT_EXPORTED:
        raise InvalidArgumentError(None, None, f"Op {op.name} ({op.type}) cannot be written to a GraphDef: "
                                   f"{op_attrs.NOT_EXPORTED[op.type]}")
    write_op_as(ctx, op, op.type, [tensor_ref(t) for t in op.inputs], dict(op.attrs))


def write_op_as(ctx: ExportContext, op: Operation, op_type: str, inputs: list[str],
                attrs: dict[str, Any]) -> NodeDef:
    """`op` as a node of type `op_type` with these data inputs (its control inputs are appended)."""
    ins = inputs + ["^" + c.name for c in op.control_inputs]
    return make_node(ctx, op.name, op_type, ins, attrs, op.device, [t.dtype for t in op.inputs],
                     [t.dtype for t in op.outputs])


def graph_to_graph_def(graph: Graph, ops: Iterable[Operation] | None = None,
                       clear_devices: bool = False) -> GraphDef:
    """The GraphDef of `graph` (or of the given ops, in graph order)."""
    gd = GraphDef()
    gd.versions.producer = PRODUCER
    ctx = ExportContext(gd, clear_devices, {op.name for op in graph.get_operations()})
    from jitflow.framework import loop_export  # loops: their sub-graphs are written as TF frames

    for op in loop_export.prepare(ctx, graph, list(graph.get_operations() if ops is None else ops)):
        export_op(ctx, op)
    loop_export.finish(ctx)
    return gd


# ---- import ------------------------------------------------------------------------------------

@dataclass
class ImportContext:
    """State of one import: the graph, the name of each imported node, and what inputs resolve to."""

    graph: Graph
    prefix: str
    input_map: dict[str, Tensor]
    clear_devices: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # GraphDef node name -> op name in the graph
    ops: dict[str, Operation] = field(default_factory=dict)  # GraphDef node name -> imported op
    used_inputs: set[str] = field(default_factory=set)
    skip: Callable[[NodeDef], bool] | None = None

    def tensor(self, ref: str, node: str) -> Tensor:
        """The tensor a NodeDef input names ('op', 'op:i'), after input_map."""
        name, _, idx = ref.partition(":")
        key = f"{name}:{idx or 0}"
        if key in self.input_map:
            self.used_inputs.add(key)
            return self.input_map[key]
        op = self.ops.get(name)
        if op is None:
            raise ValueError(f"Node '{node}': Unknown input node '{ref}'")
        try:
            return op.outputs[int(idx or 0)]
        except (IndexError, ValueError):
            raise ValueError(f"Node '{node}': input '{ref}' names output {idx} of an op with "
                             f"{len(op.outputs)} outputs") from None


def _topological(nodes: list[NodeDef]) -> list[NodeDef]:
    """Nodes ordered so that every node follows its inputs; ValueError on a cycle or missing input."""
    by_name = {n.name: n for n in nodes}
    if len(by_name) != len(nodes):
        dup = next(n.name for n in nodes if sum(m.name == n.name for m in nodes) > 1)
        raise ValueError(f"Duplicate node name in graph: '{dup}'")
    deps = {n.name: [i.lstrip("^").split(":")[0] for i in n.input] for n in nodes}
    order: list[NodeDef] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for root in by_name:
        stack = [(root, 0)]
        while stack:
            name, i = stack.pop()
            if i == 0:
                if state.get(name) == 2:
                    continue
                state[name] = 1
            if i < len(deps[name]):
                stack.append((name, i + 1))
                d = deps[name][i]
                if d in by_name:
                    if state.get(d) == 1:
                        raise ValueError(f"GraphDef cannot be imported: it has a cycle through node '{d}'")
                    if state.get(d) != 2:
                        stack.append((d, 0))
                continue
            state[name] = 2
            order.append(by_name[name])
    return order


def _exists(g: Graph, prefixes: set[str], name: str) -> bool:
    return name in g._ops_by_name or name in prefixes


def _unique_names(ctx: ImportContext, nodes: list[NodeDef]) -> None:
    """TF's importer rule: a node whose name exists in the graph (as an op or a name scope) gets the
    first free `name_N`, counting names of the GraphDef too."""
    g = ctx.graph
    prefixes = {op.name.rsplit("/", 1)[0] for op in g.get_operations() if "/" in op.name}
    prefixes |= {p[:i] for p in list(prefixes) for i in range(len(p)) if p[i] == "/"}
    in_def = {n.name for n in nodes}
    for n in nodes:
        full = ctx.prefix + n.name
        if _exists(g, prefixes, full):
            i, cand = 1, f"{full}_1"
            while cand in in_def or _exists(g, prefixes, cand) or cand in ctx.renamed.values():
                i += 1
                cand = f"{full}_{i}"
            full = cand
        ctx.renamed[n.name] = full


def node_attrs(node: NodeDef, schema: OpDef | None) -> dict[str, Any]:
    """The jitflow attrs of a NodeDef: typed by TF's OpDef, TF defaults filled in, '_' attrs dropped."""
    types = {a.name: a.type for a in schema.attr} if schema is not None else {}
    attrs = {k: from_attr_value(v, types.get(k), f"attr '{k}' of node {node.name} ({node.op})")
             for k, v in node.attr.items() if not k.startswith("_")}
    for a in (schema.attr if schema is not None else ()):
        if a.name not in attrs and a.HasField("default_value"):
            attrs[a.name] = from_attr_value(a.default_value, a.type, f"default of attr '{a.name}'")
    return attrs


def import_node(ctx: ImportContext, node: NodeDef) -> Operation:
    """Creates the op of one NodeDef (inputs already imported)."""
    from jitflow.framework import op_attrs

    try:
        opdef = registry.get_opdef(node.op)
    except ValueError:
        opdef = None
    if opdef is None or opdef.kernel is None:
        raise NotFoundError(None, None, f"Op type not registered '{node.op}' (node '{node.name}'): jitflow "
                            "has no such op")
    data = [ctx.tensor(i, node.name) for i in node.input if not i.startswith("^")]
    controls = [ctx.ops[i[1:]] for i in node.input if i.startswith("^") and i[1:] in ctx.ops]
    missing = [i for i in node.input if i.startswith("^") and i[1:] not in ctx.ops]
    if missing:
        raise ValueError(f"Node '{node.name}': Unknown input node '{missing[0]}'")
    schema = op_schemas.get(node.op)
    attrs = node_attrs(node, schema)
    _check_input_count(node, schema, attrs, len(data))
    hook = op_attrs.IMPORT_HOOKS.get(node.op)
    op_type = node.op
    try:
        if hook is not None:
            op_type, data, attrs = hook(ctx, node, data, attrs)
        with ctx.graph.control_dependencies(None):
            return ctx.graph.create_op(op_type, data, attrs=attrs, name=ctx.renamed[node.name],
                                       control_inputs=controls,
                                       device=None if ctx.clear_devices else node.device, exact_name=True)
    except (IndexError, KeyError, TypeError, AttributeError) as e:  # attrs or inputs the op cannot take
        raise InvalidArgumentError(None, None, f"Node '{node.name}' ({node.op}) is malformed: "
                                   f"{type(e).__name__}: {e}") from None


def _check_input_count(node: NodeDef, schema: OpDef | None, attrs: dict[str, Any], n: int) -> None:
    """InvalidArgumentError when a node has more or fewer data inputs than TF's OpDef says."""
    if schema is None:
        return
    want = 0
    for arg in schema.input_arg:
        if arg.number_attr:
            want += int(attrs.get(arg.number_attr, -1_000_000))
        elif arg.type_list_attr:
            want += len(attrs.get(arg.type_list_attr) or ())
        else:
            want += 1
    if want != n:
        raise InvalidArgumentError(None, None, f"NodeDef '{node.name}' ({node.op}) has {n} data inputs, "
                                   f"TensorFlow's OpDef expects {max(want, 0)}")


def import_nodes(ctx: ImportContext, graph_def: GraphDef) -> None:
    """Imports every node of `graph_def` (but those `ctx.skip` rejects) into `ctx.graph`."""
    nodes = [n for n in graph_def.node if ctx.skip is None or not ctx.skip(n)]
    kept = {n.name for n in nodes}
    for k, n in enumerate(nodes):  # control edges from skipped nodes simply go (on a copy: the caller's
        kept_inputs = [i for i in n.input if not (i.startswith("^") and i[1:] not in kept)]  # proto stays)
        if len(kept_inputs) != len(n.input):
            nodes[k] = NodeDef()
            nodes[k].CopyFrom(n)
            del nodes[k].input[:]
            nodes[k].input.extend(kept_inputs)
    if any(n.op in ("Enter", "RefEnter") for n in nodes):  # TF 1.x loop frames: rebuilt as While ops
        from jitflow.framework import loop_import

        loop_import.import_nodes(ctx, nodes)
        return
    order = _topological(nodes)
    _unique_names(ctx, order)
    for node in order:
        ctx.ops[node.name] = import_node(ctx, node)


def check_input_map(g: Graph, input_map: dict[Any, Any] | None) -> dict[str, Tensor]:
    """input_map keys as 'name:i'; TypeError/ValueError for values that are not tensors of `g`."""
    out: dict[str, Tensor] = {}
    for name, t in (input_map or {}).items():
        t = getattr(t, "_as_tensor", lambda t=t: t)()  # a Variable maps to its value
        if not isinstance(name, str) or not isinstance(t, Tensor):
            raise TypeError(f"input_map must map tensor names to Tensors, got {name!r}: {t!r}")
        if t.graph is not g:
            raise ValueError(f"input_map tensor {t.name} is not in the graph being imported into")
        out[name if ":" in name else name + ":0"] = t
    return out


def dtype_of(node: NodeDef, attr: str) -> dtypes.DType | None:
    """A node's type attr, if it has one."""
    return dtypes.as_dtype(node.attr[attr].type) if attr in node.attr else None
