"""TensorFlow's tensorflow/core/framework/resource_handle.proto: ResourceHandleProto (a field of TensorProto).

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import tensor_shape as _tensor_shape  # noqa: F401 - registers the dependency
from jitflow.protos import types as _types  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/resource_handle.proto', 'tensorflow', [
    'tensorflow/core/framework/tensor_shape.proto',
    'tensorflow/core/framework/types.proto',
], [
    Message('ResourceHandleProto', [
        'string device = 1',
        'string container = 2',
        'string name = 3',
        'uint64 hash_code = 4',
        'string maybe_type_name = 5',
        'repeated .tensorflow.ResourceHandleProto.DtypeAndShape dtypes_and_shapes = 6',
    ], nested=[
        Message('DtypeAndShape', [
            '.tensorflow.DataType dtype = 1',
            '.tensorflow.TensorShapeProto shape = 2',
        ]),
    ]),
])

ResourceHandleProto = _classes['ResourceHandleProto']
