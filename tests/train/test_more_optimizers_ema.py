"""Adadelta, Ftrl, ProximalGradientDescent, ProximalAdagrad and ExponentialMovingAverage against the
numbers TensorFlow computed (tests/data/optimizers_ema/tf_values.json, made by make_fixture.py there):
losses, variable and slot values and names, compiled and interpreted; the EMA's names and restore map."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "data", "optimizers_ema", "tf_values.json")) as _f:
    TF = json.load(_f)
FIXTURE = fixture_script.load(os.path.join(HERE, "..", "data", "optimizers_ema", "make_fixture.py"))
OPTIMIZERS = FIXTURE.optimizers(tf)


def _model():  # type: ignore[no-untyped-def]
    return FIXTURE.model(tf)


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_tensorflow(name: str, jit: bool) -> None:
    want = TF[name]
    _, _, loss = _model()
    train = OPTIMIZERS[name]().minimize(loss)
    assert [v.op.name for v in tf.global_variables()] == list(want["variables"])
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.global_variables_initializer())
        losses = [sess.run([loss, train])[0] for _ in range(3)]
        np.testing.assert_allclose(losses, want["losses"], rtol=2e-5)
        for v in tf.global_variables():
            np.testing.assert_allclose(sess.run(v), want["variables"][v.op.name], rtol=2e-5, atol=1e-6,
                                       err_msg=v.op.name)


def test_ftrl_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="learning_rate_power"):
        tf.train.FtrlOptimizer(0.1, learning_rate_power=0.5)
    with pytest.raises(ValueError, match="l1_regularization_strength"):
        tf.train.FtrlOptimizer(0.1, l1_regularization_strength=-1.0)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        tf.train.ProximalAdagradOptimizer(0.1, initial_accumulator_value=0.0)


@pytest.mark.parametrize("jit", [True, False])
def test_exponential_moving_average_matches_tensorflow(jit: bool) -> None:
    want = TF["ema"]
    (w, b, loss), ema, update = FIXTURE.ema_graph(tf)
    assert [v.op.name for v in tf.global_variables()] == want["names"]
    assert ema.average_name(w) == want["average_name"]
    assert [v.op.name for v in tf.moving_average_variables()] == want["moving_average_variables"]
    assert {k: v.op.name for k, v in ema.variables_to_restore().items()} == want["to_restore"]
    assert tf.trainable_variables() == [w, b]
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.global_variables_initializer())
        for k in range(3):
            sess.run(update)
            for n, v in (("w", w), ("b", b), ("loss", loss)):
                np.testing.assert_allclose(sess.run(ema.average(v)), want["steps"][k][n], rtol=2e-5, atol=1e-6,
                                           err_msg=f"step {k}: {n}")
    with pytest.raises(ValueError, match="already computed"):
        ema.apply([w])


def test_ema_restore_map_loads_averages_into_the_variables(tmp_path: object) -> None:
    w = tf.Variable([1.0, 2.0], name="w")
    ema = tf.train.ExponentialMovingAverage(0.5)
    upd = ema.apply()
    path = os.path.join(str(tmp_path), "m.ckpt")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(tf.assign(w, [3.0, 6.0]))
        sess.run(upd)  # average: 1 + (3 - 1) / 2, 2 + (6 - 2) / 2
        tf.train.Saver().save(sess, path)
    tf.reset_default_graph()
    w2 = tf.Variable([0.0, 0.0], name="w")
    saver = tf.train.Saver(tf.train.ExponentialMovingAverage(0.5).variables_to_restore())
    with tf.Session() as sess:
        saver.restore(sess, path)
        np.testing.assert_allclose(sess.run(w2), [2.0, 4.0])
    with pytest.raises(TypeError, match="half, float, or double"):
        tf.train.ExponentialMovingAverage(0.5).apply([tf.Variable(1, name="i")])
