"""TensorFlow's tensorflow/core/framework/tensor_shape.proto: TensorShapeProto.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/tensor_shape.proto', 'tensorflow', [], [
    Message('TensorShapeProto', [
        'repeated .tensorflow.TensorShapeProto.Dim dim = 2',
        'bool unknown_rank = 3',
    ], nested=[
        Message('Dim', [
            'int64 size = 1',
            'string name = 2',
        ]),
    ]),
])

TensorShapeProto = _classes['TensorShapeProto']
