"""tf.metrics against TensorFlow's numbers (tests/data/metrics/tf_metrics.json, made by make_fixture.py
there): update results per batch, final values, variable names and collections, reset, errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "data", "metrics", "tf_metrics.json")) as _f:
    TF = json.load(_f)
INPUTS = TF["inputs"]
FIXTURE = fixture_script.load(os.path.join(HERE, "data", "metrics", "make_fixture.py"))


def _graph():  # type: ignore[no-untyped-def]
    phs = [tf.placeholder(tf.int64, [16]), tf.placeholder(tf.float32, [16]), tf.placeholder(tf.float32, [16]),
           tf.placeholder(tf.int32, [16]), tf.placeholder(tf.int32, [16])]
    return phs, FIXTURE.build(tf, *phs)


def _feed(phs, b):  # type: ignore[no-untyped-def]
    keys = ("labels", "scores", "weights", "classes", "pred_classes")
    dts = (np.int64, np.float32, np.float32, np.int32, np.int32)
    return {p: np.array(INPUTS[k][b], dt) for p, k, dt in zip(phs, keys, dts)}


def test_variable_names_and_collections_are_tensorflows() -> None:
    _graph()
    assert [v.name for v in tf.local_variables()] == TF["local_variables"]
    assert [v.name for v in tf.get_collection(tf.GraphKeys.METRIC_VARIABLES)] == TF["metric_variables"]
    assert [v.name for v in tf.global_variables()] == TF["global_variables"] == []
    assert tf.trainable_variables() == []


@pytest.mark.parametrize("jit", [True, False])
def test_updates_and_values_match_tensorflow(jit: bool) -> None:
    phs, metrics = _graph()
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.local_variables_initializer())
        for _ in range(2):  # a reset by the initializer gives the same numbers again
            for b in range(2):
                up = sess.run({k: v[1] for k, v in metrics.items()}, _feed(phs, b))
                for k, v in up.items():
                    np.testing.assert_allclose(v, TF["updates"][b][k], rtol=2e-6, atol=1e-7, err_msg=k)
            values = sess.run({k: v[0] for k, v in metrics.items()})
            for k, v in values.items():
                np.testing.assert_allclose(v, TF["values"][k], rtol=2e-6, atol=1e-7, err_msg=k)
            sess.run(tf.local_variables_initializer())


def test_value_before_any_update_is_zero_and_collections_are_filled() -> None:
    x = tf.placeholder(tf.float32, [None])
    v, up = tf.metrics.mean(x, metrics_collections=["m"], updates_collections=["u"], name="my_mean")
    assert tf.get_collection("m") == [v] and tf.get_collection("u") == [up]
    assert v.op.name == "my_mean/value" and up.op.name == "my_mean/update_op"
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        assert sess.run(v) == 0.0
        sess.run(up, {x: [1.0, 2.0]})
        sess.run(up, {x: [6.0]})
        assert sess.run(v) == pytest.approx(3.0)


def test_weights_with_a_trailing_unit_dimension_and_broadcasting() -> None:
    lab = tf.constant([[1], [0], [1], [1]])
    pred = tf.constant([1, 1, 1, 0])
    acc, up = tf.metrics.accuracy(lab, pred, weights=tf.constant([[1.0], [2.0], [0.0], [1.0]]))
    rec, rup = tf.metrics.recall(lab, pred, weights=2.0)
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        assert sess.run(up) == pytest.approx(0.25)
        assert sess.run(rup) == pytest.approx(2 / 3)  # tp at 0 and 2, fn at 3


def test_auc_rejects_predictions_outside_0_1_and_bad_arguments() -> None:
    p = tf.placeholder(tf.float32, [2])
    a, up = tf.metrics.auc(tf.constant([1, 0]), p)
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"predictions must be in \[0, 1\]"):
            sess.run(up, {p: [0.5, 1.5]})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"predictions must be in \[0, 1\]"):
        tf.metrics.auc(tf.constant([1, 0]), tf.constant([0.5, -1.5]))  # known at build time, as in TF
    with pytest.raises(ValueError, match="curve must be either ROC or PR"):
        tf.metrics.auc([1], [0.5], curve="XY")
    with pytest.raises(ValueError, match="incompatible"):
        tf.metrics.accuracy(tf.constant([1, 0, 1]), tf.constant([1, 0]))


def test_perfect_auc_is_one_and_random_half() -> None:
    rng = np.random.RandomState(3)
    lab = rng.randint(0, 2, 2000)
    a_perfect = tf.metrics.auc(lab, lab.astype(np.float32) * 0.9 + 0.05)[1]
    a_random = tf.metrics.auc(lab, rng.rand(2000).astype(np.float32))[1]
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        assert sess.run(a_perfect) == pytest.approx(1.0, abs=1e-5)
        assert sess.run(a_random) == pytest.approx(0.5, abs=0.05)
