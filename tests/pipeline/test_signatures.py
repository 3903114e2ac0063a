"""output_types/output_shapes/output_classes of tf.data pipelines, against what TensorFlow reported."""
from __future__ import annotations

import importlib.util
import json
import os

import jitflow as tf

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def test_signatures_match_tensorflow():
    spec = importlib.util.spec_from_file_location("make_sigs", os.path.join(DATA, "make_tf_data_signatures.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    want = json.load(open(os.path.join(DATA, "tf_data_signatures.json")))
    got = json.loads(json.dumps(mod.signatures(tf)))
    assert set(got) == set(want)
    for case in want:
        assert got[case] == want[case], case
