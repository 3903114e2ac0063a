"""TensorFlow's tensorflow/core/example/example.proto: Example and SequenceExample.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import feature
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/example/example.proto', 'tensorflow', [
    'tensorflow/core/example/feature.proto',
], [
    Message('Example', ['.tensorflow.Features features = 1']),
    Message('SequenceExample', [
        '.tensorflow.Features context = 1',
        '.tensorflow.FeatureLists feature_lists = 2',
    ]),
])
Example = _classes['Example']
SequenceExample = _classes['SequenceExample']

__all__ = ["Example", "SequenceExample", "feature"]
