"""Variables: creation, initialization, assignment, scopes and reuse, per-session state."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf


def test_variable_ops_and_names():
    v = tf.Variable([1.0, 2.0], name="v")
    assert v.name == "v:0" and v.op.type == "VariableV2"
    # a TF 1.x ref variable: its dtype is the reference type, its values are plain float32
    assert v.dtype == tf.float32_ref and v.dtype != tf.float32 and v.dtype.base_dtype == tf.float32
    assert v.value().dtype == tf.float32 and str(v.dtype) == "<dtype: 'float32_ref'>"
    assert v.initializer.name == "v/Assign" and v.value().name == "v/read:0"
    assert v.initial_value.op.name == "v/initial_value"
    assert v in tf.global_variables() and v in tf.trainable_variables()
    w = tf.Variable(1, trainable=False)
    assert w not in tf.trainable_variables() and w.name == "Variable:0"


def test_uninitialized_read_fails_with_name():
    v = tf.Variable(1.0, name="lonely")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.FailedPreconditionError, match="lonely"):
            sess.run(v + 1)
        assert sess.run(tf.report_uninitialized_variables()).tolist() == [b"lonely"]
        assert not sess.run(tf.is_variable_initialized(v))
        sess.run(tf.global_variables_initializer())
        assert sess.run(tf.report_uninitialized_variables()).size == 0


def test_assign_family_and_ordering():
    v = tf.Variable(10, name="v")
    with tf.control_dependencies([v.assign_sub(3)]):
        after = v.read_value()
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(after) == 7
        assert sess.run(tf.assign(v, 1)) == 1
        assert sess.run(v.assign_add(5)) == 6
        with pytest.raises(ValueError):
            tf.assign(v, [1, 2])


def test_sessions_have_separate_state():
    v = tf.Variable(0.0)
    inc = v.assign_add(1.0)
    s1, s2 = tf.Session(), tf.Session()
    s1.run(v.initializer)
    s2.run(v.initializer)
    s1.run(inc)
    assert s1.run(v) == 1.0 and s2.run(v) == 0.0


def test_initialized_value_chains_initializers():
    a = tf.get_variable("a", shape=(), initializer=tf.constant_initializer(2.0))
    b = tf.get_variable("b", initializer=a.initialized_value() * 3)
    with tf.Session() as sess:
        sess.run(tf.variables_initializer([b, a]))
        assert sess.run(b) == 6.0


def test_get_variable_reuse_rules():
    with tf.variable_scope("m"):
        w = tf.get_variable("w", [2, 3])
    assert w.name == "m/w:0"
    with pytest.raises(ValueError, match="already exists"):
        with tf.variable_scope("m"):
            tf.get_variable("w", [2, 3])
    with tf.variable_scope("m", reuse=True):
        assert tf.get_variable("w", [2, 3]) is w
        with pytest.raises(ValueError, match="does not exist"):
            tf.get_variable("missing", [1])
    with tf.variable_scope("m", reuse=tf.AUTO_REUSE):
        assert tf.get_variable("w") is w
        fresh = tf.get_variable("fresh", [1])
    assert fresh.name == "m/fresh:0"
    with pytest.raises(ValueError, match="shape"):
        with tf.variable_scope("m", reuse=True):
            tf.get_variable("w", [5])


def test_default_initializers_and_dtypes():
    f = tf.get_variable("f", [20, 30])
    i = tf.get_variable("i", [3], dtype=tf.int32)
    with pytest.raises(ValueError, match="do not specify shape"):
        tf.get_variable("c", [2], initializer=tf.constant([1.0, 2.0]))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        fv = sess.run(f)
        assert np.abs(fv).max() <= np.sqrt(6 / 50) and fv.std() > 0
        assert sess.run(i).tolist() == [0, 0, 0]


@pytest.mark.parametrize("init,check", [
    (tf.zeros_initializer(), lambda a: np.all(a == 0)),
    (tf.ones_initializer(), lambda a: np.all(a == 1)),
    (tf.constant_initializer(3.5), lambda a: np.all(a == 3.5)),
    (tf.random_normal_initializer(0.0, 2.0, seed=1), lambda a: 1.5 < a.std() < 2.5),
    (tf.truncated_normal_initializer(0.0, 1.0, seed=1), lambda a: np.abs(a).max() <= 2.0),
    (tf.random_uniform_initializer(-1.0, 1.0, seed=1), lambda a: a.min() >= -1 and a.max() < 1),
    (tf.glorot_normal_initializer(seed=1), lambda a: a.std() > 0),
    (tf.variance_scaling_initializer(scale=2.0, mode="fan_in", distribution="uniform", seed=1),
     lambda a: np.abs(a).max() <= np.sqrt(3 * 2.0 / 100)),
])
def test_initializers(init, check):
    v = tf.get_variable("v", [100, 50], initializer=init)
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert check(sess.run(v))


def test_random_seeds_are_deterministic():
    tf.set_random_seed(42)
    a = tf.random_normal([5])
    b = tf.random_uniform([5], seed=7)
    with tf.Session() as s1:
        a1, b1 = s1.run([a, b])
        a1_next = s1.run(a)
    with tf.Session() as s2:
        a2, b2 = s2.run([a, b])
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    assert not np.array_equal(a1, a1_next)


def test_local_variables_and_collections():
    loc = tf.get_variable("loc", shape=(), collections=[tf.GraphKeys.LOCAL_VARIABLES])
    assert loc in tf.local_variables() and loc not in tf.global_variables()
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        assert sess.run(loc).shape == ()


def test_load_and_eval():
    v = tf.Variable([0, 0], name="v")
    with tf.Session() as sess:
        v.load([3, 4], sess)
        assert v.eval(sess).tolist() == [3, 4]
        with pytest.raises(ValueError):
            v.load([1, 2, 3], sess)
