"""tf.losses.hinge_loss and cosine_distance against TensorFlow's values (tests/data/losses_more/, recorded by
make_fixture.py there with the same calls)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "losses_more")
TF = np.load(os.path.join(HERE, "tf_values.npz"))


def test_hinge_and_cosine_distance_match_tensorflow() -> None:
    fetch = fixture_script.load(os.path.join(HERE, "make_fixture.py")).build(tf)
    assert len(tf.losses.get_losses()) == int(TF["collection"])
    with tf.Session() as sess:
        got = sess.run(fetch)
    for k, v in got.items():
        np.testing.assert_allclose(v, TF[k], rtol=1e-6, atol=1e-7, err_msg=k)
    with pytest.raises(ValueError, match="axis"):
        tf.losses.cosine_distance([1.0], [1.0])
