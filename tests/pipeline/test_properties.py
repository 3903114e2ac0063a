"""Property tests: TFRecord framing round trips, batch/unbatch and shuffle keep every element."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf


@settings(max_examples=12, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), st.sampled_from(["", "GZIP", "ZLIB"]))
def test_tfrecord_round_trip(tmp_path_factory, records, comp):
    path = str(tmp_path_factory.mktemp("rec") / "f.tfrecord")
    with tf.io.TFRecordWriter(path, comp) as w:
        for r in records:
            w.write(r)
    assert list(tf.python_io.tf_record_iterator(path, comp)) == records


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 12), st.booleans(), st.integers(0, 2**31 - 1))
def test_shuffle_batch_unbatch_keep_every_element(n, batch, buffer, drop, seed):
    tf.reset_default_graph()
    ds = tf.data.Dataset.from_tensor_slices(np.arange(n)).shuffle(buffer, seed=seed).batch(batch, drop)
    nxt = ds.unbatch().make_one_shot_iterator().get_next()
    sess = tf.Session()
    out = []
    try:
        while True:
            out.append(int(sess.run(nxt)))
    except tf.errors.OutOfRangeError:
        pass
    assert len(out) == (n // batch) * batch if drop else len(out) == n
    assert len(set(out)) == len(out) and set(out) <= set(range(n))
