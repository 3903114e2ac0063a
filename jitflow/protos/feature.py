"""TensorFlow's tensorflow/core/example/feature.proto: Feature, Features, FeatureList, FeatureLists and
the value lists.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/example/feature.proto', 'tensorflow', [], [
    Message('BytesList', ['repeated bytes value = 1']),
    Message('FloatList', ['repeated float value = 1']),  # proto3: packed
    Message('Int64List', ['repeated int64 value = 1']),
    Message('Feature', [
        '.tensorflow.BytesList bytes_list = 1 [oneof kind]',
        '.tensorflow.FloatList float_list = 2 [oneof kind]',
        '.tensorflow.Int64List int64_list = 3 [oneof kind]',
    ]),
    Message('Features', ['map<string, .tensorflow.Feature> feature = 1']),
    Message('FeatureList', ['repeated .tensorflow.Feature feature = 1']),
    Message('FeatureLists', ['map<string, .tensorflow.FeatureList> feature_list = 1']),
])
BytesList = _classes['BytesList']
FloatList = _classes['FloatList']
Int64List = _classes['Int64List']
Feature = _classes['Feature']
Features = _classes['Features']
FeatureList = _classes['FeatureList']
FeatureLists = _classes['FeatureLists']
