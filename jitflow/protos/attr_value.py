"""TensorFlow's tensorflow/core/framework/attr_value.proto: AttrValue: the value of one attribute of a node.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import tensor as _tensor  # noqa: F401 - registers the dependency
from jitflow.protos import tensor_shape as _tensor_shape  # noqa: F401 - registers the dependency
from jitflow.protos import types as _types  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/attr_value.proto', 'tensorflow', [
    'tensorflow/core/framework/tensor.proto',
    'tensorflow/core/framework/tensor_shape.proto',
    'tensorflow/core/framework/types.proto',
], [
    Message('AttrValue', [
        'bytes s = 2 [oneof value]',
        'int64 i = 3 [oneof value]',
        'float f = 4 [oneof value]',
        'bool b = 5 [oneof value]',
        '.tensorflow.DataType type = 6 [oneof value]',
        '.tensorflow.TensorShapeProto shape = 7 [oneof value]',
        '.tensorflow.TensorProto tensor = 8 [oneof value]',
        '.tensorflow.AttrValue.ListValue list = 1 [oneof value]',
        '.tensorflow.NameAttrList func = 10 [oneof value]',
        'string placeholder = 9 [oneof value]',
    ], nested=[
        Message('ListValue', [
            'repeated bytes s = 2',
            'repeated int64 i = 3',
            'repeated float f = 4',
            'repeated bool b = 5',
            'repeated .tensorflow.DataType type = 6',
            'repeated .tensorflow.TensorShapeProto shape = 7',
            'repeated .tensorflow.TensorProto tensor = 8',
            'repeated .tensorflow.NameAttrList func = 9',
        ]),
    ]),
    Message('NameAttrList', [
        'string name = 1',
        'map<string, .tensorflow.AttrValue> attr = 2',
    ]),
])

AttrValue = _classes['AttrValue']
NameAttrList = _classes['NameAttrList']
