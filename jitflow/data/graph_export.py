"""How input-pipeline ops are written to a GraphDef (for meta graphs and checkpoints' `.meta` files).

Datasets, queues and readers are Python objects held by the session, which a GraphDef cannot carry.
An exported graph therefore gets a feedable stand-in for each such op: its outputs become
Placeholders of the same dtypes and shapes (joined by TF's IdentityN when there are several, so that
`op:1` still names the second output), and an op without outputs becomes a NoOp that keeps its
control dependencies. A model imported from such a graph is fed through those placeholders.
"""
from __future__ import annotations

from typing import Any

from jitflow.framework import op_attrs, registry
from jitflow.framework.graph import Operation
from jitflow.framework.graph_io import ExportContext, make_node

RUNTIME_OPS = ("MakeIterator", "IteratorGetNext", "IteratorToStringHandle", "ParseExample", "DecodeRaw",
               "QueueEnqueueV2", "QueueDequeueV2", "QueueCloseV2", "QueueSizeV2", "QueueIsClosedV2",
               "ReaderReadV2", "ReaderNumRecordsProducedV2", "LimitEpochs")


def _export_as_feeds(ctx: ExportContext, op: Operation) -> None:
    outs = op.outputs
    if not outs:
        deps = ["^" + t.op.name for t in op.inputs] + ["^" + c.name for c in op.control_inputs]
        make_node(ctx, op.name, "NoOp", list(dict.fromkeys(deps)), {}, op.device)
        return
    if len(outs) == 1:
        make_node(ctx, op.name, "Placeholder", [], {"dtype": outs[0].dtype, "shape": outs[0].shape}, op.device)
        return
    names = []
    for i, t in enumerate(outs):
        name = ctx.unique(f"{op.name}/component_{i}")
        make_node(ctx, name, "Placeholder", [], {"dtype": t.dtype, "shape": t.shape}, op.device)
        names.append(name)
    make_node(ctx, op.name, "IdentityN", names, {"T": [t.dtype for t in outs]}, op.device,
              [t.dtype for t in outs], [t.dtype for t in outs])


def _identity_n_infer(op: Operation) -> list:
    return [(t.dtype, t.shape) for t in op.inputs]


def _identity_n_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    return tuple(ins) if len(ins) != 1 else ins[0]


registry.register_op("IdentityN", _identity_n_infer, _identity_n_kernel, registry.OPAQUE,
                     grad=lambda op, *grads: list(grads))
for _t in RUNTIME_OPS:
    op_attrs.EXPORT_HOOKS[_t] = _export_as_feeds

