"""TensorFlow's xla/tsl/protobuf/histogram.proto: HistogramProto.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Message, build_file

_classes = build_file('xla/tsl/protobuf/histogram.proto', 'tensorflow', [], [
    Message('HistogramProto', [
        'double min = 1',
        'double max = 2',
        'double num = 3',
        'double sum = 4',
        'double sum_squares = 5',
        'repeated double bucket_limit = 6',
        'repeated double bucket = 7',
    ]),
])

HistogramProto = _classes['HistogramProto']
