"""TensorFlow's tensorflow/core/protobuf/saved_model.proto: SavedModel: a list of MetaGraphDefs.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import meta_graph as _meta_graph  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/protobuf/saved_model.proto', 'tensorflow', [
    'tensorflow/core/protobuf/meta_graph.proto',
], [
    Message('SavedModel', [
        'int64 saved_model_schema_version = 1',
        'repeated .tensorflow.MetaGraphDef meta_graphs = 2',
    ]),
])

SavedModel = _classes['SavedModel']
