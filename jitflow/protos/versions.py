"""TensorFlow's tensorflow/core/framework/versions.proto: VersionDef: producer and consumer versions of a graph.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/framework/versions.proto', 'tensorflow', [], [
    Message('VersionDef', [
        'int32 producer = 1',
        'int32 min_consumer = 2',
        'repeated int32 bad_consumers = 3',
    ]),
])

VersionDef = _classes['VersionDef']
