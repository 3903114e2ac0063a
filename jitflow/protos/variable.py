"""TensorFlow's tensorflow/core/framework/variable.proto: VariableDef: the ops of a Variable (meta graph collections).

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Enum, Message, build_file, enum_values

_classes = build_file('tensorflow/core/framework/variable.proto', 'tensorflow', [], [
    Message('VariableDef', [
        'string variable_name = 1',
        'string initial_value_name = 6',
        'string initializer_name = 2',
        'string snapshot_name = 3',
        '.tensorflow.SaveSliceInfoDef save_slice_info_def = 4',
        'bool is_resource = 5',
        'bool trainable = 7',
        '.tensorflow.VariableSynchronization synchronization = 8',
        '.tensorflow.VariableAggregation aggregation = 9',
    ]),
    Message('SaveSliceInfoDef', [
        'string full_name = 1',
        'repeated int64 full_shape = 2',
        'repeated int64 var_offset = 3',
        'repeated int64 var_shape = 4',
    ]),
], enums=[
    Enum('VariableSynchronization', [
        ('VARIABLE_SYNCHRONIZATION_AUTO', 0), ('VARIABLE_SYNCHRONIZATION_NONE', 1),
        ('VARIABLE_SYNCHRONIZATION_ON_WRITE', 2), ('VARIABLE_SYNCHRONIZATION_ON_READ', 3)
    ]),
    Enum('VariableAggregation', [
        ('VARIABLE_AGGREGATION_NONE', 0), ('VARIABLE_AGGREGATION_SUM', 1),
        ('VARIABLE_AGGREGATION_MEAN', 2), ('VARIABLE_AGGREGATION_ONLY_FIRST_REPLICA', 3)
    ]),
])

VariableDef = _classes['VariableDef']
SaveSliceInfoDef = _classes['SaveSliceInfoDef']
VariableSynchronization = enum_values('tensorflow.VariableSynchronization')
VariableAggregation = enum_values('tensorflow.VariableAggregation')
