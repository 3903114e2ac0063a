"""Registers how loops and TensorArrays travel in GraphDefs: TF's TensorArray ops import as jitflow's
handle-based `TFTensorArray*` ops (and export back under TF's names); jitflow's own loops and
TensorArrays export as TF 1.x frames (loop_export.py)."""
from __future__ import annotations

from typing import Any

from jitflow.framework import loop_grad_export, loop_tensor_arrays, op_attrs
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph_io import ExportContext, ImportContext, tensor_ref, write_op_as
from jitflow.framework.tensor_shape import TensorShape, as_shape
from jitflow.ops import tf_loop_ops
from jitflow.protos.node_def import NodeDef


def _import_tensor_array(ctx: ImportContext, node: NodeDef, data: list[Tensor], attrs: dict[str, Any]) -> Any:
    if node.op in ("TensorArrayReadV3", "TensorArrayGatherV3") and data:
        es = as_shape(attrs.get("element_shape"))
        if es.ndims is None:  # TF's ReadV3 has no element_shape: the array's own, for static shapes
            attrs = {**attrs, "element_shape": _array_element_shape(data[0])}
    return tf_loop_ops.TF_TENSOR_ARRAY_TYPES[node.op], data, attrs


def _array_element_shape(handle: Tensor) -> TensorShape:
    """The element_shape the TensorArrayV3 behind `handle` was created with (unknown if not found)."""
    op = handle.op
    while op.type in ("TensorArrayGradV3", "Identity"):
        op = op.inputs[0].op
    return as_shape(op.attrs.get("element_shape")) if op.type == "TFTensorArrayV3" else TensorShape(None)


def _export_tensor_array(ctx: ExportContext, op: Operation) -> None:
    write_op_as(ctx, op, op.type[2:], [tensor_ref(t) for t in op.inputs], dict(op.attrs))


for _tf, _ours in tf_loop_ops.TF_TENSOR_ARRAY_TYPES.items():
    op_attrs.IMPORT_HOOKS[_tf] = _import_tensor_array
    op_attrs.EXPORT_HOOKS[_ours] = _export_tensor_array


def _export_while(ctx: ExportContext, op: Operation) -> None:
    from jitflow.framework.loop_frame_export import export_while

    export_while(ctx, op)


def _export_nothing(ctx: ExportContext, op: Operation) -> None:
    """A sub-graph input: its frame's Merge or Identity stands for it."""


op_attrs.EXPORT_HOOKS.update(loop_tensor_arrays.EXPORT_HOOKS)
op_attrs.EXPORT_HOOKS.update(loop_grad_export.EXPORT_HOOKS)
op_attrs.EXPORT_HOOKS["While"] = _export_while
op_attrs.EXPORT_HOOKS["_SubgraphInput"] = _export_nothing
