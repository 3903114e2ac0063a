"""Ops whose jitflow form differs from TensorFlow's NodeDef: export and import hooks, and the reasons
for the few op types that do not travel.

jitflow keeps some static values as attrs where TensorFlow takes an input tensor (reduction axes,
ArgMax's dimension, Cumsum's axis): export adds the Const node TF would have, import folds a
constant input back into the attr (and a reduction over a computed axis becomes `DynamicReduce`).
A few jitflow-only ops are written as the TF subgraph that computes the same thing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph_io import ExportContext, ImportContext, make_node, tensor_ref, write_op_as
from jitflow.protos.node_def import NodeDef

REDUCTIONS = ("Sum", "Mean", "Max", "Min", "Prod", "All", "Any")

# jitflow op types that are not written to a GraphDef, and why (kept by the registry-walk test).
NOT_EXPORTED: dict[str, str] = {}


def _const(ctx: ExportContext, name: str, value: Any, dtype: dtypes.DType) -> str:
    """Adds a Const node (name made unique) and returns its name."""
    name = ctx.unique(name)
    arr = np.asarray(value, dtype=dtype.np)
    make_node(ctx, name, "Const", [], {"value": arr, "dtype": dtype}, out_types=[dtype])
    return name


def _reduction_axes(ctx: ExportContext, op: Operation) -> str:
    """The reduction_indices input TF's reductions take; all axes when jitflow's attr is None."""
    x = op.inputs[0]
    axes = op.attrs["axis"]
    if axes is not None:
        return _const(ctx, f"{op.name}/reduction_indices", list(axes), dtypes.int32)
    if x.shape.ndims is not None:
        return _const(ctx, f"{op.name}/Const", list(range(x.shape.ndims)), dtypes.int32)
    rank = ctx.unique(f"{op.name}/Rank")
    make_node(ctx, rank, "Rank", [tensor_ref(x)], {}, op.device, [x.dtype], [dtypes.int32])
    start = _const(ctx, f"{op.name}/range/start", 0, dtypes.int32)
    delta = _const(ctx, f"{op.name}/range/delta", 1, dtypes.int32)
    rng = ctx.unique(f"{op.name}/range")
    make_node(ctx, rng, "Range", [start, rank, delta], {"Tidx": dtypes.int32}, op.device)
    return rng


def _export_reduction(ctx: ExportContext, op: Operation) -> None:
    axes = _reduction_axes(ctx, op)
    write_op_as(ctx, op, op.type, [tensor_ref(op.inputs[0]), axes],
                {"keep_dims": op.attrs["keep_dims"], "Tidx": dtypes.int32})


def _export_axis_input(input_name: str) -> Any:
    """Export for ops with a scalar axis attr where TF takes an input named `input_name`."""

    def hook(ctx: ExportContext, op: Operation) -> None:
        attrs = {k: v for k, v in op.attrs.items() if k != "axis"}
        axis = _const(ctx, f"{op.name}/{input_name}", int(op.attrs["axis"]), dtypes.int32)
        attrs["Tidx"] = dtypes.int32
        write_op_as(ctx, op, op.type, [tensor_ref(op.inputs[0]), axis], attrs)

    return hook


def _export_as_const(ctx: ExportContext, op: Operation) -> None:
    """A source op with static attrs (Eye): its value, as TF's Const."""
    kernel = op.opdef.kernel
    assert kernel is not None  # registered ops have kernels
    value = kernel(None, op, [])
    write_op_as(ctx, op, "Const", [], {"value": np.asarray(value), "dtype": op.outputs[0].dtype})


def _export_unbroadcast(ctx: ExportContext, op: Operation) -> None:
    """UnbroadcastTo(grad, shape): TF's gradient form, Reshape(Sum(grad, BroadcastGradientArgs), shape)."""
    grad, shape = op.inputs
    sdt = shape.dtype
    shp = ctx.unique(f"{op.name}/Shape")
    make_node(ctx, shp, "Shape", [tensor_ref(grad)], {"out_type": sdt}, op.device, [grad.dtype], [sdt])
    bga = ctx.unique(f"{op.name}/BroadcastGradientArgs")
    make_node(ctx, bga, "BroadcastGradientArgs", [shp, tensor_ref(shape)], {"T": sdt}, op.device, [sdt, sdt])
    total = ctx.unique(f"{op.name}/Sum")
    # output 1: the axes that take the (full-shaped) gradient down to `shape`, the second operand
    make_node(ctx, total, "Sum", [tensor_ref(grad), f"{bga}:1"], {"keep_dims": False, "Tidx": sdt}, op.device,
              [grad.dtype, sdt])
    write_op_as(ctx, op, "Reshape", [total, tensor_ref(shape)], {"T": grad.dtype, "Tshape": sdt})


def _export_report_uninitialized(ctx: ExportContext, op: Operation) -> None:
    """TF's report_uninitialized_variables: boolean_mask(names, logical_not(stack(is_initialized)))."""
    names = np.array(op.attrs["names"], dtype=object)
    if not op.inputs:
        write_op_as(ctx, op, "Const", [], {"value": names.reshape(0), "dtype": dtypes.string})
        return
    const = _const(ctx, f"{op.name}/Const", names, dtypes.string)
    stack = ctx.unique(f"{op.name}/stack")
    make_node(ctx, stack, "Pack", [tensor_ref(t) for t in op.inputs], {"axis": 0}, op.device,
              [dtypes.bool] * len(op.inputs))
    mask = ctx.unique(f"{op.name}/LogicalNot")
    make_node(ctx, mask, "LogicalNot", [stack], {}, op.device)
    where = ctx.unique(f"{op.name}/boolean_mask/Where")
    make_node(ctx, where, "Where", [mask], {"T": dtypes.bool}, op.device)
    squeeze = ctx.unique(f"{op.name}/boolean_mask/Squeeze")
    make_node(ctx, squeeze, "Squeeze", [where], {"squeeze_dims": [1], "T": dtypes.int64}, op.device)
    axis = _const(ctx, f"{op.name}/boolean_mask/GatherV2/axis", 0, dtypes.int32)
    write_op_as(ctx, op, "GatherV2", [const, squeeze, axis],
                {"Tparams": dtypes.string, "Tindices": dtypes.int64, "Taxis": dtypes.int32, "batch_dims": 0})


def _export_initialized_value(ctx: ExportContext, op: Operation) -> None:
    """Variable.initialized_value() as TF builds it: cond(is_variable_initialized(v), read v, initial value)."""
    var, init = op.inputs
    dt, n, dev = init.dtype, op.name, op.device
    pred = ctx.unique(f"{n}/IsVariableInitialized")
    make_node(ctx, pred, "IsVariableInitialized", [tensor_ref(var)], {"dtype": dt}, dev)
    make_node(ctx, ctx.unique(f"{n}/cond/Switch"), "Switch", [pred, pred], {"T": dtypes.bool}, dev)
    pred_id = ctx.unique(f"{n}/cond/pred_id")
    make_node(ctx, pred_id, "Identity", [pred], {"T": dtypes.bool}, dev)
    ref_switch = ctx.unique(f"{n}/cond/read/Switch")
    make_node(ctx, ref_switch, "RefSwitch", [tensor_ref(var), pred_id], {"T": dt}, dev)
    read = ctx.unique(f"{n}/cond/read")
    make_node(ctx, read, "Identity", [f"{ref_switch}:1"], {"T": dt}, dev)
    other = ctx.unique(f"{n}/cond/Switch_1")
    make_node(ctx, other, "Switch", [tensor_ref(init), pred_id], {"T": dt}, dev)
    write_op_as(ctx, op, "Merge", [other, read], {"T": dt, "N": 2})


def _export_print_v2(ctx: ExportContext, op: Operation) -> None:
    """tf.print as TF writes it: StringFormat(tensors, template) feeding PrintV2."""
    pieces = list(op.attrs["template"])
    placeholder = "{}"
    while any(placeholder in p for p in pieces):  # TF too picks a placeholder no literal contains
        placeholder = "{" + placeholder + "}"
    for pos in op.attrs["tensor_positions"]:
        pieces[pos] = placeholder
    fmt = ctx.unique(f"{op.name}/StringFormat")
    make_node(ctx, fmt, "StringFormat", [tensor_ref(t) for t in op.inputs],
              {"template": op.attrs["sep"].join(pieces), "placeholder": placeholder,
               "summarize": op.attrs["summarize"]}, op.device, [t.dtype for t in op.inputs])
    write_op_as(ctx, op, "PrintV2", [fmt], {"output_stream": op.attrs["output_stream"], "end": op.attrs["end"]})


def _export_dynamic_reduce(ctx: ExportContext, op: Operation) -> None:
    write_op_as(ctx, op, op.attrs["reduction"], [tensor_ref(t) for t in op.inputs],
                {"keep_dims": op.attrs["keep_dims"]})


EXPORT_HOOKS: dict[str, Any] = {
    **{t: _export_reduction for t in REDUCTIONS},
    "ArgMax": _export_axis_input("dimension"), "ArgMin": _export_axis_input("dimension"),
    "Cumsum": _export_axis_input("axis"), "Cumprod": _export_axis_input("axis"),
    "Eye": _export_as_const, "UnbroadcastTo": _export_unbroadcast,
    "ReportUninitializedVariables": _export_report_uninitialized, "DynamicReduce": _export_dynamic_reduce,
    "InitializedValue": _export_initialized_value, "PrintV2": _export_print_v2,
}


# ---- import --------------------------------------------------------------------------------------

def const_input(t: Tensor) -> np.ndarray | None:
    """The value of `t` when the graph fixes it (a Const, possibly behind Identity), else None."""
    from jitflow.ops.op_util import const_value

    return const_value(t)


def _import_reduction(ctx: ImportContext, node: NodeDef, data: list[Tensor], attrs: dict[str, Any]) -> Any:
    x, idx = data
    attrs = {"keep_dims": bool(attrs.get("keep_dims", False)), "T": x.dtype}
    value = const_input(idx)
    if value is None:
        return "DynamicReduce", [x, idx], {**attrs, "reduction": node.op}
    from jitflow.ops.math_ops import _norm_axes

    axes = _norm_axes(np.asarray(value).reshape(-1).tolist(), x.shape.ndims, node.name)
    if axes is not None and x.shape.ndims is not None and len(axes) == x.shape.ndims == 0:
        axes = None
    return node.op, [x], {**attrs, "axis": axes}


def _import_axis_input(ctx: ImportContext, node: NodeDef, data: list[Tensor], attrs: dict[str, Any]) -> Any:
    x, axis_t = data
    value = const_input(axis_t)
    if value is None:
        raise InvalidArgumentError(None, None, f"Node '{node.name}' ({node.op}): jitflow needs its axis "
                                   f"input '{node.input[1]}' to be a constant")
    axis = int(np.asarray(value).reshape(()))
    attrs = {k: v for k, v in attrs.items() if k != "Tidx"}
    if node.op in ("ArgMax", "ArgMin") and x.shape.ndims:
        axis %= x.shape.ndims
    return node.op, [x], {**attrs, "axis": axis, "T": x.dtype}


def _import_logical(ctx: ImportContext, node: NodeDef, data: list[Tensor], attrs: dict[str, Any]) -> Any:
    return node.op, data, {**attrs, "T": dtypes.bool}


def _import_print_v2(ctx: ImportContext, node: NodeDef, data: list[Tensor], attrs: dict[str, Any]) -> Any:
    """TF's PrintV2 prints one string (a StringFormat's output): jitflow's PrintV2 with one tensor."""
    stream = str(attrs.get("output_stream", "stderr"))
    return node.op, data, {"template": [""], "tensor_positions": [0], "summarize": -1, "sep": "",
                           "end": attrs.get("end", "\n"), "output_stream": "stdout" if "stdout" in stream else "stderr"}


IMPORT_HOOKS: dict[str, Any] = {
    **{t: _import_reduction for t in REDUCTIONS},
    "ArgMax": _import_axis_input, "ArgMin": _import_axis_input,
    "Cumsum": _import_axis_input, "Cumprod": _import_axis_input,
    "LogicalAnd": _import_logical, "LogicalOr": _import_logical, "LogicalNot": _import_logical,
    "PrintV2": _import_print_v2,
}
