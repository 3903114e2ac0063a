"""TensorFlow's tensorflow/core/framework/tensor.proto: TensorProto: a tensor's dtype, shape and values.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import resource_handle as _resource_handle  # noqa: F401 - registers the dependency
from jitflow.protos import tensor_shape as _tensor_shape  # noqa: F401 - registers the dependency
from jitflow.protos import types as _types  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/tensor.proto', 'tensorflow', [
    'tensorflow/core/framework/resource_handle.proto',
    'tensorflow/core/framework/tensor_shape.proto',
    'tensorflow/core/framework/types.proto',
], [
    Message('TensorProto', [
        '.tensorflow.DataType dtype = 1',
        '.tensorflow.TensorShapeProto tensor_shape = 2',
        'int32 version_number = 3',
        'bytes tensor_content = 4',
        'repeated int32 half_val = 13',
        'repeated float float_val = 5',
        'repeated double double_val = 6',
        'repeated int32 int_val = 7',
        'repeated bytes string_val = 8',
        'repeated float scomplex_val = 9',
        'repeated int64 int64_val = 10',
        'repeated bool bool_val = 11',
        'repeated double dcomplex_val = 12',
        'repeated .tensorflow.ResourceHandleProto resource_handle_val = 14',
        'repeated .tensorflow.VariantTensorDataProto variant_val = 15',
        'repeated uint32 uint32_val = 16',
        'repeated uint64 uint64_val = 17',
        'bytes float8_val = 18',
    ]),
    Message('VariantTensorDataProto', [
        'string type_name = 1',
        'bytes metadata = 2',
        'repeated .tensorflow.TensorProto tensors = 3',
    ]),
])

TensorProto = _classes['TensorProto']
VariantTensorDataProto = _classes['VariantTensorDataProto']
