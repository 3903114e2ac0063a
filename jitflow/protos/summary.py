"""TensorFlow's tensorflow/core/framework/summary.proto: Summary: the values of one summary event.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import histogram as _histogram  # noqa: F401 - registers the dependency
from jitflow.protos import tensor as _tensor  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Enum, Message, build_file, enum_values

_classes = build_file('tensorflow/core/framework/summary.proto', 'tensorflow', [
    'xla/tsl/protobuf/histogram.proto',
    'tensorflow/core/framework/tensor.proto',
], [
    Message('SummaryDescription', [
        'string type_hint = 1',
    ]),
    Message('SummaryMetadata', [
        '.tensorflow.SummaryMetadata.PluginData plugin_data = 1',
        'string display_name = 2',
        'string summary_description = 3',
        '.tensorflow.DataClass data_class = 4',
    ], nested=[
        Message('PluginData', [
            'string plugin_name = 1',
            'bytes content = 2',
        ]),
    ]),
    Message('Summary', [
        'repeated .tensorflow.Summary.Value value = 1',
    ], nested=[
        Message('Image', [
            'int32 height = 1',
            'int32 width = 2',
            'int32 colorspace = 3',
            'bytes encoded_image_string = 4',
        ]),
        Message('Audio', [
            'float sample_rate = 1',
            'int64 num_channels = 2',
            'int64 length_frames = 3',
            'bytes encoded_audio_string = 4',
            'string content_type = 5',
        ]),
        Message('Value', [
            'string node_name = 7',
            'string tag = 1',
            '.tensorflow.SummaryMetadata metadata = 9',
            'float simple_value = 2 [oneof value]',
            'bytes obsolete_old_style_histogram = 3 [oneof value]',
            '.tensorflow.Summary.Image image = 4 [oneof value]',
            '.tensorflow.HistogramProto histo = 5 [oneof value]',
            '.tensorflow.Summary.Audio audio = 6 [oneof value]',
            '.tensorflow.TensorProto tensor = 8 [oneof value]',
        ]),
    ]),
], enums=[
    Enum('DataClass', [
        ('DATA_CLASS_UNKNOWN', 0), ('DATA_CLASS_SCALAR', 1), ('DATA_CLASS_TENSOR', 2),
        ('DATA_CLASS_BLOB_SEQUENCE', 3)
    ]),
])

SummaryDescription = _classes['SummaryDescription']
SummaryMetadata = _classes['SummaryMetadata']
Summary = _classes['Summary']
DataClass = enum_values('tensorflow.DataClass')
