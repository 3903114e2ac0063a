"""Small TF 1.x APIs: tf.arg_max / tf.arg_min, tf.train.SaverDef, dtype reprs."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf


def test_arg_max_arg_min_are_tf1_spellings() -> None:
    x = tf.constant([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    a, b = tf.arg_max(x, 1), tf.arg_min(x, dimension=0, output_type=tf.int32)
    assert a.op.type == "ArgMax" and a.dtype == tf.int64 and b.dtype == tf.int32
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(a), [1, 0])
        np.testing.assert_array_equal(sess.run(b), [0, 1, 0])


def test_saver_def_versions_and_fields() -> None:
    assert (tf.train.SaverDef.LEGACY, tf.train.SaverDef.V1, tf.train.SaverDef.V2) == (0, 1, 2)
    assert tf.train.SaverDef.CheckpointFormatVersion.V2 == 2
    d = tf.train.SaverDef(max_to_keep=3, version=tf.train.SaverDef.V2)
    assert d.max_to_keep == 3 and d.sharded is False and d == tf.train.SaverDef(max_to_keep=3, version=2)
    with pytest.raises(ValueError, match="no_such"):
        tf.train.SaverDef(no_such=1)
    v = tf.Variable(1.0, name="v")
    tf.train.Saver([v], write_version=tf.train.SaverDef.V2)  # accepted as in TF


def test_ref_dtypes() -> None:
    v = tf.Variable([1, 2], name="iv")
    assert v.dtype == tf.int32_ref and v.dtype.base_dtype is tf.int32
    assert repr(v.dtype) == "tf.int32_ref" and str(tf.int32) == "<dtype: 'int32'>"
    assert tf.as_dtype(v.dtype) is tf.int32  # ops take values: a ref type converts to its value type
    assert tf.zeros([2], dtype=v.dtype).dtype == tf.int32
    assert tf.float32_ref.as_datatype_enum == 101
