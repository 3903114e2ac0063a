"""Writes jitflow/framework/tf_ops.pbtxt: TensorFlow's OpDefs (attrs, args, defaults; no docs) for the op
types jitflow registers, plus the few that graph export writes for TF's saver. Run with TensorFlow
installed: python tests/data/make_op_schemas.py NAMES.json (a JSON list of op types)."""
import json
import sys

from google.protobuf import text_format
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.framework import op_def_registry

EXTRA = ["SaveV2", "RestoreV2", "BroadcastGradientArgs", "BiasAddGrad", "StringJoin", "ShardedFilename",
         "MergeV2Checkpoints", "ShapeN", "DynamicStitch"]
names = sorted(set(json.load(open(sys.argv[1]))) | set(EXTRA))
out = op_def_pb2.OpList()
for n in names:
    od = op_def_registry.get(n)
    if od is None:
        continue
    od = out.op.add().CopyFrom(od) or out.op[-1]
    od.ClearField("summary")
    od.ClearField("description")
    for a in list(od.input_arg) + list(od.output_arg) + list(od.attr):
        a.ClearField("description")
        if a.DESCRIPTOR.fields_by_name.get("experimental_full_type"):
            a.ClearField("experimental_full_type")
with open("jitflow/framework/tf_ops.pbtxt", "w") as f:
    f.write("# TensorFlow's OpDefs for the op types jitflow has (made by tests/data/make_op_schemas.py)\n")
    f.write(text_format.MessageToString(out))
