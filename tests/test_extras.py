"""Scans, eye, norms, random_shuffle, tf.app flags, tf.logging and the compat namespace."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import jitflow as tf
from tests.gradcheck import numeric_grad


def run(t, feed=None):
    with tf.Session() as sess:
        return sess.run(t, feed)


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_cumprod(axis, exclusive, reverse):
    x = np.arange(1, 13, dtype=np.float64).reshape(3, 4)
    a = axis % 2

    def ref(fn, ident):
        y = np.flip(x, a) if reverse else x
        r = fn(y, axis=a)
        if exclusive:
            r = np.concatenate([np.full_like(np.take(r, [0], axis=a), ident), np.delete(r, -1, axis=a)], a)
        return np.flip(r, a) if reverse else r

    got_s, got_p = run([tf.cumsum(x, axis, exclusive, reverse), tf.cumprod(x, axis, exclusive, reverse)])
    np.testing.assert_allclose(got_s, ref(np.cumsum, 0))
    np.testing.assert_allclose(got_p, ref(np.cumprod, 1))


def test_cumsum_gradient_matches_finite_differences():
    x0 = np.random.RandomState(0).randn(3, 4)
    w = np.random.RandomState(1).randn(3, 4)
    x = tf.placeholder(tf.float64, [3, 4])
    y = tf.reduce_sum(tf.cumsum(x, 1, exclusive=True) * w)
    (g,) = tf.gradients(y, [x])
    with tf.Session() as sess:
        got = sess.run(g, {x: x0})
        num = numeric_grad(sess, y, [x], [x0], 0)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)


def test_eye_norm_count_nonzero():
    assert run(tf.eye(2, 3, dtype=tf.int32)).tolist() == [[1, 0, 0], [0, 1, 0]]
    v = np.array([[3.0, -4.0], [0.0, 0.0]], np.float32)
    assert run(tf.norm(v)) == pytest.approx(5.0)
    assert run(tf.norm(v, ord=1, axis=1)).tolist() == [7.0, 0.0]
    assert run(tf.norm(v, ord=np.inf)) == 4.0
    assert run(tf.count_nonzero(v, axis=1)).tolist() == [2, 0]
    with pytest.raises(ValueError):
        tf.norm(v, ord=3)
    with pytest.raises(ValueError):
        tf.eye(-1)


def test_random_shuffle_is_a_seeded_permutation():
    tf.set_random_seed(5)
    s = tf.random_shuffle(tf.range(20))
    with tf.Session() as s1:
        a, b = s1.run(s), s1.run(s)
    with tf.Session() as s2:
        a2 = s2.run(s)
    assert sorted(a.tolist()) == list(range(20)) and a.tolist() == a2.tolist() and a.tolist() != b.tolist()


def test_app_flags_and_run():
    from jitflow.app import _FlagValues

    f = _FlagValues()
    f._define("lr", 0.1, "learning rate", float)
    f._define("name", "x", "", str)
    f._define("fast", False, "", __import__("jitflow.app", fromlist=["_parse_bool"])._parse_bool)
    rest = f(["prog", "--lr", "0.5", "--fast", "extra"])
    assert (f.lr, f.name, f.fast, rest) == (0.5, "x", True, ["prog", "extra"])
    f(["prog", "--fast=false"])
    assert f.fast is False
    tf.app.flags.DEFINE_integer("jf_steps", 3, "steps")
    with pytest.raises(SystemExit) as e:
        tf.app.run(lambda argv: tf.app.flags.FLAGS.jf_steps * 2, argv=["prog", "--jf_steps", "4"])
    assert e.value.code == 8


def test_logging_and_compat():
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = tf.logging.get_logger()
    handler = Collect()
    logger.addHandler(handler)
    tf.logging.set_verbosity(tf.logging.INFO)
    try:
        assert tf.logging.get_verbosity() == logging.INFO
        tf.logging.debug("hidden")
        tf.logging.info("step %d", 7)
        for _ in range(3):
            tf.logging.log_first_n(tf.logging.INFO, "once", 1)
    finally:
        logger.removeHandler(handler)
        tf.logging.set_verbosity(tf.logging.WARN)
    assert seen == ["step 7", "once"]
    tf.disable_v2_behavior()
    assert tf.compat.v1 is tf and not tf.executing_eagerly()
    assert tf.compat.as_bytes("a") == b"a" and tf.compat.as_text(b"b") == "b"
    with pytest.raises(NotImplementedError):
        tf.enable_eager_execution()
