"""tf.nn extras against TensorFlow's values (tests/data/nn_extras/tf_values.npz, recorded by make_fixture.py
there with the same calls), compiled and interpreted; shape errors."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "nn_extras")
TF = np.load(os.path.join(HERE, "tf_values.npz"))


def _fixture_module():  # type: ignore[no-untyped-def]
    return fixture_script.load(os.path.join(HERE, "make_fixture.py"))


@pytest.mark.parametrize("jit", [True, False])
def test_nn_extras_match_tensorflow(jit: bool) -> None:
    fx = _fixture_module()
    x, logits = tf.placeholder(tf.float32, fx.X.shape), tf.placeholder(tf.float32, fx.LOGITS.shape)
    fetch = fx.build(tf, x, logits)
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        got = sess.run(fetch, {x: fx.X, logits: fx.LOGITS})
    for k, v in got.items():
        assert np.shape(v) == TF[k].shape, k
        np.testing.assert_allclose(v, TF[k], rtol=2e-5, atol=2e-6, err_msg=k)
    assert fetch["s2d"].shape.as_list() == [2, 2, 3, 32] and fetch["d2s"].shape.as_list() == [2, 8, 12, 2]


def test_space_depth_round_trip_with_unknown_batch_and_errors() -> None:
    x = tf.placeholder(tf.float32, [None, 4, 6, 3])
    y = tf.nn.depth_to_space(tf.nn.space_to_depth(x, 2), 2)
    v = np.random.RandomState(0).rand(3, 4, 6, 3).astype(np.float32)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: v}), v)
    with pytest.raises(ValueError, match="divisible by 4"):
        tf.nn.space_to_depth(tf.zeros([1, 5, 4, 1]), 4)
    with pytest.raises(ValueError, match="rank 4"):
        tf.nn.lrn(tf.zeros([2, 3]))
