"""Writes jitflow/framework/tf_ops.pb.gz: every OpDef of TensorFlow's op registry (attrs, args, defaults;
docs stripped), as a gzipped binary OpList. Run with TensorFlow installed:

    python tests/data/make_op_schemas.py
"""
import gzip

from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api

ops = op_def_pb2.OpList()
ops.ParseFromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
for od in ops.op:
    od.ClearField("summary")
    od.ClearField("description")
    for a in list(od.input_arg) + list(od.output_arg) + list(od.attr):
        a.ClearField("description")
ops.op.sort(key=lambda od: od.name)
with gzip.GzipFile("jitflow/framework/tf_ops.pb.gz", "wb", mtime=0) as f:
    f.write(ops.SerializeToString())
