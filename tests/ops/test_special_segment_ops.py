"""Special math (`tf.math.erf`, `xlogy`, ...), segment reductions and sort: values and gradients as
TensorFlow computed them (tests/data/api_math/tf_values.npz, made by make_fixture.py there), the compiled
path against the interpreter, and gradients against finite differences."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from tests import fixture_script
from tests.compiler.helpers import assert_same, counts, run_both
from tests.gradcheck import numeric_grad

HERE = os.path.dirname(os.path.abspath(__file__))
TF = np.load(os.path.join(HERE, "..", "data", "api_math", "tf_values.npz"))
FIXTURE = fixture_script.load(os.path.join(HERE, "..", "data", "api_math", "make_fixture.py"))
X, Y, D, SORTED, UNSORTED = FIXTURE.X, FIXTURE.Y, FIXTURE.D, FIXTURE.SORTED, FIXTURE.UNSORTED
UNARY, BINARY, SEG, USEG = FIXTURE.UNARY, FIXTURE.BINARY, FIXTURE.SEG, FIXTURE.USEG


def _fetches(x: tf.Tensor, y: tf.Tensor) -> dict:
    f = {n: getattr(tf.math, n)(x) for n in UNARY}
    f.update({n: getattr(tf.math, n)(x, y) for n in BINARY})
    f["selu"] = tf.nn.selu(x)
    f["swish"] = tf.nn.swish(x)
    return f


def test_special_math_matches_tensorflow_compiled_and_interpreted() -> None:
    x, y = tf.placeholder(tf.float32, [14]), tf.placeholder(tf.float32, [14])
    got, interp, _ = run_both(_fetches(x, y), {x: X, y: Y})
    for n, v in got.items():
        assert v.dtype == np.float32, n
        np.testing.assert_allclose(v, TF[n], rtol=2e-6, atol=1e-6, equal_nan=True, err_msg=n)
        assert_same(v, interp[n], what=n)


@pytest.mark.parametrize("fn", [tf.math.asinh, tf.math.atanh, tf.math.softsign, tf.nn.selu, tf.math.erf,
                                tf.math.erfc, tf.math.lgamma, tf.math.log_sigmoid, tf.nn.swish,
                                lambda v: tf.math.atan2(v, v * v + 1.0), lambda v: tf.math.xlogy(v, v * v + 1.0),
                                lambda v: tf.math.xdivy(v * v, v + 3.0), lambda v: tf.math.div_no_nan(v, v + 3.0)])
def test_gradients_match_finite_differences(fn: object) -> None:
    x = tf.placeholder(tf.float64, [5])
    loss = tf.reduce_sum(fn(x) * tf.constant([1.0, -2.0, 0.5, 3.0, 1.5], tf.float64))  # type: ignore[operator]
    (g,) = tf.gradients(loss, [x])
    v = np.array([-0.7, -0.2, 0.3, 0.6, 0.9])
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(g, {x: v}), numeric_grad(sess, loss, [x], [v], 0), rtol=1e-5, atol=1e-7)


def test_acosh_gradient_and_the_formula_ops_fuse() -> None:
    x = tf.placeholder(tf.float32, [4])
    y = tf.math.acosh(x) + tf.math.asinh(x) * tf.nn.selu(x) - tf.math.div_no_nan(x, x - 2.0)
    got, want, plan = run_both([y, tf.gradients(tf.reduce_sum(tf.math.acosh(x)), x)[0]],
                               {x: np.array([1.5, 2.0, 3.0, 10.0], np.float32)})
    assert counts(plan)[1] == 0, plan.report  # every op of these has a formula
    assert_same(got[0], want[0])
    np.testing.assert_allclose(got[1], 1 / np.sqrt(np.array([1.5, 2.0, 3.0, 10.0]) ** 2 - 1), rtol=1e-5)


def test_erf_and_lgamma_run_interpreted_with_a_reason() -> None:
    from jitflow.framework import registry
    for t in ("Erf", "Erfc", "Lgamma", "Digamma"):
        assert "no " in registry.get_opdef(t).no_lowering


def test_integer_inputs_are_a_type_error_naming_the_argument() -> None:
    with pytest.raises(TypeError, match="'x'"):
        tf.math.erf(tf.constant([1, 2]))
    with pytest.raises(TypeError, match="features"):
        tf.nn.selu(tf.constant([1, 2]))


def test_segment_ops_and_their_gradients_match_tensorflow() -> None:
    d = tf.placeholder(tf.float32, [5, 3])
    fetch = {}
    for n in SEG:
        fetch[n] = r = getattr(tf.math, n)(d, SORTED)
        assert r.shape.as_list() == [None, 3]
        fetch[n + "/grad"] = tf.gradients(tf.reduce_sum(r * r), d)[0]
    for n in USEG:
        fetch[n] = r = getattr(tf.math, n)(d, UNSORTED, 5)
        assert r.shape.as_list() == [5, 3], n
        fetch[n + "/grad"] = tf.gradients(tf.reduce_sum(r * r), d)[0]
    got, interp, _ = run_both(fetch, {d: D})
    for n, v in got.items():
        np.testing.assert_allclose(v, TF[n], rtol=1e-6, err_msg=n)
        np.testing.assert_allclose(v, interp[n], rtol=1e-6, err_msg=n)


def test_segment_errors_are_tensorflows() -> None:
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="not increasing"):
            sess.run(tf.math.segment_sum(D, [0, 2, 1, 3, 3]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
            sess.run(tf.math.unsorted_segment_max(D, [0, 1, 7, 0, 0], 3))
        with pytest.raises(tf.errors.InvalidArgumentError, match="does not start with"):
            sess.run(tf.math.unsorted_segment_min(D, [0, 1], 3))
    with pytest.raises(ValueError, match="rank 1"):
        tf.math.segment_sum(D, [[0]])


def test_sort_and_argsort() -> None:
    with tf.Session() as sess:
        s, a = sess.run([tf.sort(D, axis=0, direction="DESCENDING"),
                         tf.argsort(tf.constant([3, 1, 3, -5, 1]), stable=True)])
        np.testing.assert_array_equal(s, TF["sort"])
        np.testing.assert_array_equal(a, TF["argsort"])
        u = np.array([[3, 0, 255, 7]], np.uint8)
        np.testing.assert_array_equal(sess.run(tf.sort(u)), np.sort(u))
        i = np.array([np.iinfo(np.int32).min, 5, -2, np.iinfo(np.int32).max], np.int32)
        np.testing.assert_array_equal(sess.run(tf.sort(i)), np.sort(i))
    with pytest.raises(ValueError, match="ASCENDING"):
        tf.sort(D, direction="UP")


def test_confusion_matrix_and_reduce_variance() -> None:
    lab, pred = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 1, 1])
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], np.float32)
    want = np.zeros((4, 4))
    np.add.at(want, (lab, pred), 1)
    x = np.random.RandomState(0).randn(3, 4).astype(np.float32)
    with tf.Session() as sess:
        cm, cmw, cm_auto = sess.run([tf.math.confusion_matrix(lab, pred, 4),
                                     tf.confusion_matrix(lab, pred, 3, weights=w, dtype=tf.float32),
                                     tf.math.confusion_matrix(lab, pred)])
        var, std = sess.run([tf.math.reduce_variance(x, 1, keepdims=True), tf.math.reduce_std(x)])
    np.testing.assert_array_equal(cm, want)
    assert cm.dtype == np.int32 and cm_auto.shape == (3, 3)
    wantw = np.zeros((3, 3))
    np.add.at(wantw, (lab, pred), w)
    np.testing.assert_allclose(cmw, wantw)
    np.testing.assert_allclose(var, x.var(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(std, x.std(), rtol=1e-5)
