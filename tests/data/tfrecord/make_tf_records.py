"""Writes the TFRecord fixtures with TensorFlow (run once with a TF install; tests never import TF).

    python tests/data/tfrecord/make_tf_records.py

Produces examples.tfrecord (plain), examples.tfrecord.gz (GZIP), and parsed.npz: TF's own parse of
the records (parse_example with fixed, var-len and sequence features) and decode_raw of one field.
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
HERE = os.path.dirname(os.path.abspath(__file__))


def example(i):
    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": f(float_list=tf.train.FloatList(value=[i * 0.25 + k for k in range(4)])),
        "label": f(int64_list=tf.train.Int64List(value=[i % 3])),
        "tokens": f(int64_list=tf.train.Int64List(value=list(range(i % 4)))),
        "name": f(bytes_list=tf.train.BytesList(value=[b"item-%d" % i])),
        "raw": f(bytes_list=tf.train.BytesList(value=[np.arange(3, dtype=np.int16).tobytes() * (i + 1)][:1])),
        "pairs": f(float_list=tf.train.FloatList(value=[float(k) for k in range(2 * (i % 3))])),
    })).SerializeToString()


records = [example(i) for i in range(7)]
with tf.python_io.TFRecordWriter(os.path.join(HERE, "examples.tfrecord")) as w:
    for r in records:
        w.write(r)
opts = tf.python_io.TFRecordOptions(tf.python_io.TFRecordCompressionType.GZIP)
with tf.python_io.TFRecordWriter(os.path.join(HERE, "examples.tfrecord.gz"), opts) as w:
    for r in records:
        w.write(r)

ser = tf.placeholder(tf.string, [None])
parsed = tf.parse_example(ser, {
    "image": tf.FixedLenFeature([2, 2], tf.float32),
    "label": tf.FixedLenFeature([], tf.int64),
    "tokens": tf.VarLenFeature(tf.int64),
    "name": tf.FixedLenFeature([], tf.string),
    "pairs": tf.FixedLenSequenceFeature([2], tf.float32, allow_missing=True),
    "missing": tf.FixedLenFeature([1], tf.int64, default_value=[-7]),
})
one = tf.parse_single_example(ser[0], {"raw": tf.FixedLenFeature([], tf.string)})
decoded = tf.decode_raw(one["raw"], tf.int16)
with tf.Session() as sess:
    p, d = sess.run([parsed, decoded], {ser: records})
np.savez(os.path.join(HERE, "parsed.npz"), image=p["image"], label=p["label"],
         tokens=tf.sparse.to_dense(tf.SparseTensor(p["tokens"].indices, p["tokens"].values,
                                                    p["tokens"].dense_shape)).eval(session=tf.Session()),
         name=p["name"].astype("S"), pairs=p["pairs"], missing=p["missing"], decoded=d)
print("wrote", sorted(os.listdir(HERE)))
