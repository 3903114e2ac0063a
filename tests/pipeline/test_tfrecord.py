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


def test_list_files_and_shard(tmp_path):
    for name in ("b.txt", "a.txt", "c.log"):
        (tmp_path / name).write_text(name)
    files = tf.data.Dataset.list_files(str(tmp_path / "*.txt"), shuffle=False)
    nxt = files.make_one_shot_iterator().get_next()
    sess = tf.Session()
    assert [sess.run(nxt) for _ in range(2)] == [str(tmp_path / n).encode() for n in ("a.txt", "b.txt")]
    shuffled = tf.data.Dataset.list_files(str(tmp_path / "*"), seed=1).make_one_shot_iterator().get_next()
    assert sorted(sess.run(shuffled) for _ in range(3)) == sorted(str(p).encode() for p in tmp_path.iterdir())
    sh = tf.data.Dataset.range(10).shard(3, 1).make_one_shot_iterator().get_next()
    assert [sess.run(sh) for _ in range(3)] == [1, 4, 7]
    none = tf.data.Dataset.list_files(str(tmp_path / "*.none")).make_one_shot_iterator().get_next()
    with pytest.raises(tf.errors.InvalidArgumentError, match="No files matched"):
        sess.run(none)


def test_fixed_length_features_take_the_compiled_wire_path_with_the_same_results():
    from jitflow.ops.example_wire import parse_fixed

    want = np.load(os.path.join(HERE, "parsed.npz"))
    recs = records()
    fast = parse_fixed(recs, ["image", "label"], [2, 3], [(2, 2), ()])
    assert fast is not None
    np.testing.assert_array_equal(fast[0], want["image"])
    np.testing.assert_array_equal(fast[1], want["label"])
    assert parse_fixed(recs, ["image", "absent"], [2, 3], [(2, 2), ()]) is None  # general path decides
    assert parse_fixed(recs, ["image"], [2], [(3,)]) is None
    # negative int64s and unpacked floats (proto2-style writers) read right too
    ex = tf.train.Example(features=tf.train.Features(feature={
        "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[-5, 2**40]))}))
    neg = parse_fixed([ex.SerializeToString()], ["n"], [3], [(2,)])
    assert neg is not None and neg[0].tolist() == [[-5, 2**40]]
    unpacked = bytes.fromhex("0a13" "0a11" "0a0166" "120c" "120a" "0d0000803f" "0d00000040")
    assert tf.train.Example.FromString(unpacked).features.feature["f"].float_list.value == [1.0, 2.0]
    got = parse_fixed([unpacked], ["f"], [2], [(2,)])
    assert got is not None and got[0].tolist() == [[1.0, 2.0]]
    ser = tf.placeholder(tf.string, [None])
    parsed = tf.parse_example(ser, {"image": tf.FixedLenFeature([4], tf.float32),
                                    "label": tf.FixedLenFeature([], tf.int64)})
    out = tf.Session().run(parsed, {ser: recs})
    np.testing.assert_array_equal(out["image"], want["image"].reshape(7, 4))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Values size: 4"):
        tf.Session().run(tf.parse_example(ser, {"image": tf.FixedLenFeature([3], tf.float32)}), {ser: recs})


@pytest.mark.parametrize("drop", [False, True])
def test_batches_of_records_span_files_and_equal_the_records_in_order(tmp_path, drop):
    paths = []
    expect = []
    for k, count in enumerate((5, 0, 7)):  # an empty file in the middle
        p = str(tmp_path / f"part-{k}.tfrecord")
        with tf.python_io.TFRecordWriter(p) as w:
            for i in range(count):
                rec = b"r%d-%d" % (k, i) * (i + 1)
                w.write(rec)
                expect.append(rec)
        paths.append(p)
    batched = tf.data.TFRecordDataset(paths).batch(4, drop_remainder=drop)
    lines = tf.data.TextLineDataset([str(tmp_path / "lines.txt")]).batch(2)
    (tmp_path / "lines.txt").write_bytes(b"a\nbb\r\nccc")
    got, got_lines = [], []
    nb, nl = batched.make_one_shot_iterator().get_next(), lines.make_one_shot_iterator().get_next()
    with tf.Session() as sess:
        for out, dst in ((nb, got), (nl, got_lines)):
            try:
                while True:
                    b = sess.run(out)
                    assert b.dtype == object and b.ndim == 1
                    dst.append(list(b))
            except tf.errors.OutOfRangeError:
                pass
    want = [expect[i:i + 4] for i in range(0, len(expect), 4)]
    assert got == ([w for w in want if len(w) == 4] if drop else want)
    assert got_lines == [[b"a", b"bb"], [b"ccc"]]
