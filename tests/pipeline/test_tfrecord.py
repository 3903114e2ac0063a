"""TFRecord files and Example parsing against fixtures TensorFlow wrote (tests/data/tfrecord)."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

import jitflow as tf

HERE = os.path.join(os.path.dirname(__file__), "..", "data", "tfrecord")
PLAIN = os.path.join(HERE, "examples.tfrecord")
GZ = os.path.join(HERE, "examples.tfrecord.gz")


def records():
    return list(tf.python_io.tf_record_iterator(PLAIN))


def example(i):
    """The fixture script's example `i`, built with jitflow's protos."""
    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": f(float_list=tf.train.FloatList(value=[i * 0.25 + k for k in range(4)])),
        "label": f(int64_list=tf.train.Int64List(value=[i % 3])),
        "tokens": f(int64_list=tf.train.Int64List(value=list(range(i % 4)))),
        "name": f(bytes_list=tf.train.BytesList(value=[b"item-%d" % i])),
        "raw": f(bytes_list=tf.train.BytesList(value=[np.arange(3, dtype=np.int16).tobytes() * (i + 1)])),
        "pairs": f(float_list=tf.train.FloatList(value=[float(k) for k in range(2 * (i % 3))])),
    }))


def test_reads_tf_files_and_example_protos_match():
    recs = records()
    assert len(recs) == 7
    assert list(tf.python_io.tf_record_iterator(GZ, tf.python_io.TFRecordOptions("GZIP"))) == recs
    for i, r in enumerate(recs):
        assert tf.train.Example.FromString(r) == example(i)


@pytest.mark.parametrize("comp", ["", "GZIP", "ZLIB"])
def test_writer_round_trip_and_plain_file_is_byte_identical_to_tf(tmp_path, comp):
    path = str(tmp_path / "out.tfrecord")
    opts = tf.io.TFRecordOptions(comp)
    with tf.io.TFRecordWriter(path, opts) as w:
        for r in records():
            w.write(r)
    assert list(tf.python_io.tf_record_iterator(path, opts)) == records()
    if comp == "":
        assert open(path, "rb").read() == open(PLAIN, "rb").read()
    if comp == "GZIP":
        assert gzip.open(path).read() == open(PLAIN, "rb").read()


def test_parse_example_matches_tf():
    want = np.load(os.path.join(HERE, "parsed.npz"))
    ds = tf.data.TFRecordDataset([GZ], compression_type="GZIP").batch(7).map(lambda s: tf.parse_example(s, {
        "image": tf.FixedLenFeature([2, 2], tf.float32),
        "label": tf.FixedLenFeature([], tf.int64),
        "tokens": tf.VarLenFeature(tf.int64),
        "name": tf.FixedLenFeature([], tf.string),
        "pairs": tf.FixedLenSequenceFeature([2], tf.float32, allow_missing=True),
        "missing": tf.FixedLenFeature([1], tf.int64, default_value=[-7]),
    }))
    el = ds.make_one_shot_iterator().get_next()
    assert el["image"].shape.as_list() == [None, 2, 2] and el["pairs"].shape.as_list() == [None, None, 2]
    got = tf.Session().run(el)
    for k in ("image", "label", "tokens", "pairs", "missing"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert got[k].dtype == want[k].dtype
    assert list(got["name"]) == list(want["name"])


def test_parse_single_example_and_decode_raw_match_tf():
    want = np.load(os.path.join(HERE, "parsed.npz"))
    ser = tf.placeholder(tf.string, [])
    one = tf.parse_single_example(ser, {"raw": tf.FixedLenFeature([], tf.string),
                                        "tokens": tf.VarLenFeature(tf.int64)})
    dec = tf.decode_raw(one["raw"], tf.int16)
    d, toks = tf.Session().run([dec, one["tokens"]], {ser: records()[0]})
    np.testing.assert_array_equal(d, want["decoded"])
    assert toks.shape == (0,)


def test_parse_errors():
    ser = tf.placeholder(tf.string, [None])
    req = tf.parse_example(ser, {"nope": tf.FixedLenFeature([], tf.int64)})["nope"]
    wrong_type = tf.parse_example(ser, {"label": tf.FixedLenFeature([], tf.float32)})["label"]
    wrong_size = tf.parse_example(ser, {"image": tf.FixedLenFeature([3], tf.float32)})["image"]
    sess = tf.Session()
    with pytest.raises(tf.errors.InvalidArgumentError, match="required"):
        sess.run(req, {ser: records()})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Data types don't match"):
        sess.run(wrong_type, {ser: records()})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Values size: 4"):
        sess.run(wrong_size, {ser: records()})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Could not parse"):
        sess.run(req, {ser: [b"\xff\xff garbage"]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="same size"):
        sess.run(tf.decode_raw(tf.constant([b"abcd", b"ab"]), tf.int16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 4"):
        sess.run(tf.decode_raw(tf.constant([b"abc"]), tf.float32))


def test_corrupted_and_truncated_files_raise_data_loss(tmp_path):
    data = open(PLAIN, "rb").read()
    bad = bytearray(data)
    bad[40] ^= 0xFF
    p1, p2, p3 = tmp_path / "corrupt", tmp_path / "short", tmp_path / "badgz"
    p1.write_bytes(bytes(bad))
    p2.write_bytes(data[:-3])
    p3.write_bytes(b"\x1f\x8b" + data[:50])
    with pytest.raises(tf.errors.DataLossError, match="corrupted record at 0"):
        list(tf.python_io.tf_record_iterator(str(p1)))
    with pytest.raises(tf.errors.DataLossError, match="truncated record at"):
        list(tf.python_io.tf_record_iterator(str(p2)))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.python_io.tf_record_iterator(str(p3), "GZIP"))
    nxt = tf.data.TFRecordDataset(str(p2)).make_one_shot_iterator().get_next()
    sess = tf.Session()
    for _ in range(6):
        sess.run(nxt)
    with pytest.raises(tf.errors.DataLossError, match=str(p2)):
        sess.run(nxt)
    with pytest.raises(tf.errors.NotFoundError):
        list(tf.python_io.tf_record_iterator(str(tmp_path / "absent")))


def test_text_line_and_fixed_length_datasets(tmp_path):
    t = tmp_path / "a.txt"
    t.write_bytes(b"one\r\ntwo\n\nthree")
    lines = tf.data.TextLineDataset([str(t), str(t)]).make_one_shot_iterator().get_next()
    sess = tf.Session()
    assert [sess.run(lines) for _ in range(8)] == [b"one", b"two", b"", b"three"] * 2
    f = tmp_path / "b.bin"
    f.write_bytes(b"HH" + bytes(range(12)) + b"F")
    rec = tf.data.FixedLengthRecordDataset(str(f), 4, header_bytes=2, footer_bytes=1).map(
        lambda r: tf.decode_raw(r, tf.uint8)).make_one_shot_iterator().get_next()
    assert [list(sess.run(rec)) for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
