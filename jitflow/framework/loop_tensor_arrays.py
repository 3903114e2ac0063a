"""jitflow's TensorArray ops written in TensorFlow's form: a TensorArrayV3 node has a handle (output 0)
and a flow (output 1); every other op takes the handle first and the flow last. jitflow's array
travels in its flow, so the handle is found by following the flow back to its TensorArrayV3 (through
loop variables and captures); inside a loop frame it comes in through a constant Enter."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph_io import ExportContext, make_node, tensor_ref
from jitflow.framework.loop_export import LoopExport, state

_FLOW_OPS = ("TensorArrayWriteV3", "TensorArrayScatterV3", "TensorArrayUnstack", "TensorArraySplitV3")


def array_of(flow: Tensor, st: LoopExport | None) -> Operation:
    """The TensorArrayV3 op whose array the flow tensor carries."""
    t = flow
    for _ in range(10_000):
        op = t.op
        if op.type == "TensorArrayV3":
            return op
        if op.type in _FLOW_OPS or op.type == "Identity":
            t = op.inputs[0]
        elif op.type == "While":
            t = op.inputs[t.value_index]
        elif op.type == "_SubgraphInput" and st is not None and t in st.outer_of:
            t = st.outer_of[t]
        else:
            break
    raise InvalidArgumentError(None, None, f"Cannot write TensorArray flow {flow.name} to a GraphDef: its "
                               f"TensorArray is not found (it comes from {t.op.type} {t.op.name})")


def _handle(ctx: ExportContext, flow: Tensor) -> str:
    st = state(ctx)
    ta = array_of(flow, st)
    return st.handle_ref(ta) if st is not None else f"{ta.name}:0"


def _write(ctx: ExportContext, op: Operation, op_type: str, inputs: list[str], attrs: dict[str, Any],
           name: str | None = None) -> None:
    ctrl = ["^" + c.name for c in op.control_inputs] if name is None else []
    make_node(ctx, name or op.name, op_type, inputs + ctrl, attrs, op.device)


def _range_to(ctx: ExportContext, op: Operation, n_ref: str) -> str:
    """Nodes computing range(0, n) under op's name; returns the Range's name."""
    start, delta, rng = (ctx.unique(f"{op.name}/range/{s}") for s in ("start", "delta", "range"))
    _write(ctx, op, "Const", [], {"value": np.int32(0), "dtype": dtypes.int32}, start)
    _write(ctx, op, "Const", [], {"value": np.int32(1), "dtype": dtypes.int32}, delta)
    _write(ctx, op, "Range", [start, n_ref, delta], {"Tidx": dtypes.int32}, rng)
    return rng


def _export(ctx: ExportContext, op: Operation) -> None:
    st = state(ctx)
    ins = [tensor_ref(t) for t in op.inputs]
    t = op.type
    if t == "TensorArrayV3":
        _write(ctx, op, t, ins, {**op.attrs, "tensor_array_name": op.attrs.get("tensor_array_name") or ""})
        if st is not None:
            st.remap[op.name] = f"{op.name}:1"  # jitflow's flow is output 0; TF's is output 1
        return
    h = _handle(ctx, op.inputs[0])
    attrs = dict(op.attrs)
    if t in ("TensorArrayWriteV3", "TensorArrayScatterV3", "TensorArraySplitV3"):
        attrs["T"] = op.inputs[1 if t == "TensorArraySplitV3" else 2].dtype
        _write(ctx, op, t, [h, *ins[1:], ins[0]], attrs)
    elif t in ("TensorArrayReadV3", "TensorArrayGatherV3", "TensorArraySizeV3", "TensorArrayConcatV3"):
        _write(ctx, op, t, [h, *ins[1:], ins[0]], attrs)
    elif t == "TensorArrayStack":
        size = ctx.unique(f"{op.name}/TensorArraySizeV3")
        _write(ctx, op, "TensorArraySizeV3", [h, ins[0]], {}, size)
        _write(ctx, op, "TensorArrayGatherV3", [h, _range_to(ctx, op, size), ins[0]], attrs)
    elif t == "TensorArrayUnstack":
        _export_unstack(ctx, op, h, ins)


def _export_unstack(ctx: ExportContext, op: Operation, h: str, ins: list[str]) -> None:
    value = op.inputs[1]
    shape, first = ctx.unique(f"{op.name}/Shape"), ctx.unique(f"{op.name}/strided_slice")
    _write(ctx, op, "Shape", [ins[1]], {"T": value.dtype, "out_type": dtypes.int32}, shape)
    idx = [ctx.unique(f"{op.name}/strided_slice/stack{s}") for s in ("", "_1", "_2")]
    for name, v in zip(idx, (0, 1, 1)):
        _write(ctx, op, "Const", [], {"value": np.array([v], np.int32), "dtype": dtypes.int32}, name)
    _write(ctx, op, "StridedSlice", [shape, *idx], {"T": dtypes.int32, "Index": dtypes.int32,
                                                    "shrink_axis_mask": 1}, first)
    _write(ctx, op, "TensorArrayScatterV3", [h, _range_to(ctx, op, first), ins[1], ins[0]], {"T": value.dtype})


EXPORTED = ("TensorArrayV3", "TensorArrayWriteV3", "TensorArrayReadV3", "TensorArrayGatherV3",
            "TensorArrayScatterV3", "TensorArrayConcatV3", "TensorArraySplitV3", "TensorArraySizeV3",
            "TensorArrayStack", "TensorArrayUnstack")
EXPORT_HOOKS = {t: _export for t in EXPORTED}
