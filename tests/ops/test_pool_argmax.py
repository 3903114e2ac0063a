"""tf.nn.max_pool_with_argmax against TensorFlow (tests/data/pool_argmax/, recorded by make_fixture.py there with
the same calls): values, indices with ties, the batch term, gradients."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pool_argmax")
TF = np.load(os.path.join(HERE, "tf_values.npz"))


@pytest.mark.parametrize("jit", [True, False])
def test_max_pool_with_argmax_matches_tensorflow(jit: bool) -> None:
    fx = fixture_script.load(os.path.join(HERE, "make_fixture.py"))
    x = tf.placeholder(tf.float32, fx.X.shape)
    fetch = fx.build(tf, x)
    assert fetch["same_i"].dtype == tf.int64 and fetch["same"].shape.as_list() == [2, 3, 3, 3]
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        got = sess.run(fetch, {x: fx.X})
    for k, v in got.items():
        assert v.dtype == TF[k].dtype, k
        np.testing.assert_allclose(v, TF[k], rtol=1e-6, err_msg=k)
