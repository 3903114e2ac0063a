"""TensorFlow's tensorflow/core/framework/graph.proto: GraphDef.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import node_def as _node_def  # noqa: F401 - registers the dependency
from jitflow.protos import versions as _versions  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/graph.proto', 'tensorflow', [
    'tensorflow/core/framework/node_def.proto',
    'tensorflow/core/framework/versions.proto',
], [
    Message('GraphDef', [
        'repeated .tensorflow.NodeDef node = 1',
        '.tensorflow.VersionDef versions = 4',
        'int32 version = 3',
    ]),
])

GraphDef = _classes['GraphDef']
