"""`tf.io` and `tf.python_io`: file formats and parsing ops (re-exports only)."""
from __future__ import annotations

import types

from jitflow.data.tf_record import TFRecordCompressionType, TFRecordOptions, TFRecordWriter, tf_record_iterator
from jitflow.ops import parsing_ops

python_io = types.SimpleNamespace(TFRecordWriter=TFRecordWriter, tf_record_iterator=tf_record_iterator,
                                  TFRecordOptions=TFRecordOptions, TFRecordCompressionType=TFRecordCompressionType)

io = types.SimpleNamespace(
    TFRecordWriter=TFRecordWriter, tf_record_iterator=tf_record_iterator, TFRecordOptions=TFRecordOptions,
    TFRecordCompressionType=TFRecordCompressionType, parse_example=parsing_ops.parse_example,
    parse_single_example=parsing_ops.parse_single_example, FixedLenFeature=parsing_ops.FixedLenFeature,
    VarLenFeature=parsing_ops.VarLenFeature, FixedLenSequenceFeature=parsing_ops.FixedLenSequenceFeature,
    decode_raw=parsing_ops.decode_raw)
