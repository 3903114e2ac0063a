"""tensorflow/core/example/feature.proto: Feature, Features, FeatureList, FeatureLists and value lists."""
from __future__ import annotations

from jitflow.protos import builder as b

_file = b.new_file("tensorflow/core/example/feature.proto", "tensorflow")
b.add_message(_file, "BytesList", [("value", 1, b.BYTES, b.REPEATED, "", False)])
b.add_message(_file, "FloatList", [("value", 1, b.FLOAT, b.REPEATED, "", True)])
b.add_message(_file, "Int64List", [("value", 1, b.INT64, b.REPEATED, "", True)])
b.add_message(_file, "Feature", [("bytes_list", 1, b.MESSAGE, b.OPTIONAL, ".tensorflow.BytesList", False),
                                 ("float_list", 2, b.MESSAGE, b.OPTIONAL, ".tensorflow.FloatList", False),
                                 ("int64_list", 3, b.MESSAGE, b.OPTIONAL, ".tensorflow.Int64List", False)],
              oneof="kind")
_features = b.add_message(_file, "Features", [])
b.add_map(_features, "tensorflow.Features", "feature", 1, ".tensorflow.Feature")
b.add_message(_file, "FeatureList", [("feature", 1, b.MESSAGE, b.REPEATED, ".tensorflow.Feature", False)])
_lists = b.add_message(_file, "FeatureLists", [])
b.add_map(_lists, "tensorflow.FeatureLists", "feature_list", 1, ".tensorflow.FeatureList")

_classes = b.register(_file)
BytesList = _classes["BytesList"]
FloatList = _classes["FloatList"]
Int64List = _classes["Int64List"]
Feature = _classes["Feature"]
Features = _classes["Features"]
FeatureList = _classes["FeatureList"]
FeatureLists = _classes["FeatureLists"]
