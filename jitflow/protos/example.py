"""tensorflow/core/example/example.proto: Example and SequenceExample."""
from __future__ import annotations

from jitflow.protos import builder as b
from jitflow.protos import feature

_file = b.new_file("tensorflow/core/example/example.proto", "tensorflow",
                   ("tensorflow/core/example/feature.proto",))
b.add_message(_file, "Example", [("features", 1, b.MESSAGE, b.OPTIONAL, ".tensorflow.Features", False)])
b.add_message(_file, "SequenceExample", [
    ("context", 1, b.MESSAGE, b.OPTIONAL, ".tensorflow.Features", False),
    ("feature_lists", 2, b.MESSAGE, b.OPTIONAL, ".tensorflow.FeatureLists", False)])

_classes = b.register(_file)
Example = _classes["Example"]
SequenceExample = _classes["SequenceExample"]

__all__ = ["Example", "SequenceExample", "feature"]
