"""TensorFlow's tensorflow/core/framework/node_def.proto: NodeDef: one node of a GraphDef.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import attr_value as _attr_value  # noqa: F401 - registers the dependency
from jitflow.protos import full_type as _full_type  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/node_def.proto', 'tensorflow', [
    'tensorflow/core/framework/attr_value.proto',
    'tensorflow/core/framework/full_type.proto',
], [
    Message('NodeDef', [
        'string name = 1',
        'string op = 2',
        'repeated string input = 3',
        'string device = 4',
        'map<string, .tensorflow.AttrValue> attr = 5',
        '.tensorflow.NodeDef.ExperimentalDebugInfo experimental_debug_info = 6',
        '.tensorflow.FullTypeDef experimental_type = 7',
    ], nested=[
        Message('ExperimentalDebugInfo', [
            'repeated string original_node_names = 1',
            'repeated string original_func_names = 2',
        ]),
    ]),
])

NodeDef = _classes['NodeDef']
