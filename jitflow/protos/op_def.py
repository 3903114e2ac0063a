"""TensorFlow's tensorflow/core/framework/op_def.proto: OpDef / OpList: op signatures (MetaGraphDef's stripped_op_list).

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import attr_value as _attr_value  # noqa: F401 - registers the dependency
from jitflow.protos import full_type as _full_type  # noqa: F401 - registers the dependency
from jitflow.protos import resource_handle as _resource_handle  # noqa: F401 - registers the dependency
from jitflow.protos import types as _types  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/op_def.proto', 'tensorflow', [
    'tensorflow/core/framework/attr_value.proto',
    'tensorflow/core/framework/full_type.proto',
    'tensorflow/core/framework/resource_handle.proto',
    'tensorflow/core/framework/types.proto',
], [
    Message('OpDef', [
        'string name = 1',
        'repeated .tensorflow.OpDef.ArgDef input_arg = 2',
        'repeated .tensorflow.OpDef.ArgDef output_arg = 3',
        'repeated string control_output = 20',
        'repeated .tensorflow.OpDef.AttrDef attr = 4',
        '.tensorflow.OpDeprecation deprecation = 8',
        'string summary = 5',
        'string description = 6',
        'bool is_commutative = 18',
        'bool is_aggregate = 16',
        'bool is_stateful = 17',
        'bool allows_uninitialized_input = 19',
        'bool is_distributed_communication = 21',
    ], nested=[
        Message('ArgDef', [
            'string name = 1',
            'string description = 2',
            '.tensorflow.DataType type = 3',
            'string type_attr = 4',
            'string number_attr = 5',
            'string type_list_attr = 6',
            'repeated .tensorflow.ResourceHandleProto.DtypeAndShape handle_data = 7',
            'bool is_ref = 16',
            '.tensorflow.FullTypeDef experimental_full_type = 17',
        ]),
        Message('AttrDef', [
            'string name = 1',
            'string type = 2',
            '.tensorflow.AttrValue default_value = 3',
            'string description = 4',
            'bool has_minimum = 5',
            'int64 minimum = 6',
            '.tensorflow.AttrValue allowed_values = 7',
        ]),
    ]),
    Message('OpDeprecation', [
        'int32 version = 1',
        'string explanation = 2',
    ]),
    Message('OpList', [
        'repeated .tensorflow.OpDef op = 1',
    ]),
])

OpDef = _classes['OpDef']
OpDeprecation = _classes['OpDeprecation']
OpList = _classes['OpList']
