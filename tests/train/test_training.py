"""Training end to end: global step, learning-rate schedules, replica placement, an MLP, slots in checkpoints."""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import pytest

import jitflow as tf

# -- the global step ------------------------------------------------------------------------------------------


def test_global_step_lifecycle() -> None:
    assert tf.train.get_global_step() is None
    gs = tf.train.get_or_create_global_step()
    assert gs.name == "global_step:0" and gs.dtype.base_dtype == tf.int64 and gs.shape.as_list() == []
    assert tf.get_collection(tf.GraphKeys.GLOBAL_STEP) == [gs]
    assert gs in tf.global_variables() and gs not in tf.trainable_variables()
    assert tf.train.get_global_step() is gs and tf.train.get_or_create_global_step() is gs
    with pytest.raises(ValueError, match="already exists"):
        tf.train.create_global_step()
    inc = tf.assign_add(gs, 5)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(inc)
        step = tf.train.global_step(sess, gs)
        assert step == 5 and type(step) is int


def test_global_step_in_another_graph_and_by_name() -> None:
    g = tf.Graph()
    gs = tf.train.create_global_step(g)
    assert gs.graph is g and tf.train.get_global_step() is None
    with tf.Graph().as_default():
        t = tf.constant(3, dtype=tf.int64, name="global_step")
        assert tf.train.get_global_step() is t  # found by name when the collection is empty
    with tf.Graph().as_default():
        tf.constant(1.5, name="global_step")
        with pytest.raises(TypeError, match="does not have integer type"):
            tf.train.get_global_step()


# -- learning-rate schedules ------------------------------------------------------------------------------------

STEPS = [0, 1, 7, 10, 25, 100, 150]
SCHEDULES: dict[str, tuple[Callable, Callable[[int], float]]] = {
    "exponential": (lambda gs: tf.train.exponential_decay(0.1, gs, 10, 0.5),
                    lambda s: 0.1 * 0.5 ** (s / 10)),
    "exponential_staircase": (lambda gs: tf.train.exponential_decay(0.1, gs, 10, 0.5, staircase=True),
                              lambda s: 0.1 * 0.5 ** (s // 10)),
    "natural_exp": (lambda gs: tf.train.natural_exp_decay(0.1, gs, 10, 0.5),
                    lambda s: 0.1 * math.exp(-0.5 * s / 10)),
    "natural_exp_staircase": (lambda gs: tf.train.natural_exp_decay(0.1, gs, 10, 0.5, staircase=True),
                              lambda s: 0.1 * math.exp(-0.5 * (s // 10))),
    "inverse_time": (lambda gs: tf.train.inverse_time_decay(0.1, gs, 10, 0.5),
                     lambda s: 0.1 / (1 + 0.5 * s / 10)),
    "inverse_time_staircase": (lambda gs: tf.train.inverse_time_decay(0.1, gs, 10, 0.5, staircase=True),
                               lambda s: 0.1 / (1 + 0.5 * (s // 10))),
    "polynomial": (lambda gs: tf.train.polynomial_decay(0.1, gs, 100, 0.01, power=2.0),
                   lambda s: (0.1 - 0.01) * (1 - min(s, 100) / 100) ** 2 + 0.01),
    "polynomial_cycle": (lambda gs: tf.train.polynomial_decay(0.1, gs, 10, 0.01, cycle=True),
                         lambda s: (0.1 - 0.01) * (1 - s / (10 * max(1, math.ceil(s / 10)))) + 0.01),
    "cosine": (lambda gs: tf.train.cosine_decay(0.1, gs, 100, alpha=0.2),
               lambda s: 0.1 * (0.8 * 0.5 * (1 + math.cos(math.pi * min(s, 100) / 100)) + 0.2)),
    "piecewise": (lambda gs: tf.train.piecewise_constant(gs, [10, 100], [1.0, 0.5, 0.1]),
                  lambda s: 1.0 if s <= 10 else 0.5 if s <= 100 else 0.1),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_learning_rate_schedules(name: str) -> None:
    build, formula = SCHEDULES[name]
    gs = tf.placeholder(tf.int64, [])
    lr = build(gs)
    assert lr.dtype == tf.float32
    with tf.Session() as sess:
        got = [float(sess.run(lr, {gs: s})) for s in STEPS]
    np.testing.assert_allclose(got, [formula(s) for s in STEPS], rtol=1e-5)


def test_schedule_errors_and_use_with_an_optimizer() -> None:
    with pytest.raises(ValueError, match="global_step is required"):
        tf.train.exponential_decay(0.1, None, 10, 0.5)
    with pytest.raises(ValueError, match="1 less than"):
        tf.train.piecewise_constant(tf.constant(1), [1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same dtype"):
        tf.train.piecewise_constant(tf.constant(1), [1], [0.1, tf.constant(2, tf.int32)])
    lr_op = tf.train.exponential_decay(0.1, tf.constant(1), 10, 0.5, name="lr")
    assert lr_op.op.name == "lr"
    # A decayed rate drives an optimizer; the step it reads advances with minimize.
    w = tf.Variable(0.0, name="w")
    gs = tf.train.get_or_create_global_step()
    lr = tf.train.piecewise_constant(gs, [1], [1.0, 0.5])
    train = tf.train.GradientDescentOptimizer(lr).minimize(-w, global_step=gs)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        vals = []
        for _ in range(3):
            sess.run(train)
            vals.append(float(sess.run(w)))
    assert vals == [1.0, 2.0, 2.5]  # steps 0 and 1 use 1.0, step 2 uses 0.5


# -- replica_device_setter ---------------------------------------------------------------------------------------


def test_replica_device_setter_places_variables_round_robin() -> None:
    cluster = {"ps": ["ps0:2222", "ps1:2222"], "worker": ["w0:2222", "w1:2222"]}
    with tf.device(tf.train.replica_device_setter(cluster=cluster)):
        a = tf.Variable(1.0, name="a")
        b = tf.get_variable("b", shape=[2])
        c = tf.Variable(2.0, name="c")
        y = a * c
        with tf.device("/cpu:0"):
            d = tf.Variable(3.0, name="d")
    assert [v.device for v in (a, b, c)] == ["/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:0"]
    assert y.device == "/job:worker"
    assert d.device == "/job:ps/task:1/device:CPU:0"  # an inner device scope merges in


def test_replica_device_setter_options() -> None:
    assert tf.train.replica_device_setter() is None  # no ps tasks: no placement
    assert tf.train.replica_device_setter(cluster={"worker": ["w0:1"]}) is None
    setter = tf.train.replica_device_setter(ps_tasks=3, ps_device="/job:param", worker_device="/job:w/task:1",
                                            ps_strategy=lambda op: 2)
    with tf.device(setter):
        v = tf.Variable(1.0, name="v")
        x = v + 1.0
    assert v.device == "/job:param/task:2" and x.device == "/job:w/task:1"
    # The optimizer's slots follow their variable to its ps task.
    loss = tf.square(tf.Variable(1.0, name="u"))
    with tf.device(tf.train.replica_device_setter(ps_tasks=2)):
        u = tf.Variable(1.0, name="u2")
        opt = tf.train.AdamOptimizer()
        opt.minimize(loss + u * u)
    assert opt.get_slot(u, "m").device == u.device == "/job:ps/task:0"


# -- an MLP learns a nonlinear classification ------------------------------------------------------------------


def _xor_data(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.RandomState(1).uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def _mlp_accuracy(make_opt: Callable[[], tf.train.Optimizer], steps: int, math_only: bool) -> float:
    x_np, y_np = _xor_data()
    tf.set_random_seed(3)
    x = tf.placeholder(tf.float32, [None, 2])
    y = tf.placeholder(tf.int64, [None])
    w1 = tf.get_variable("w1", [2, 32], initializer=tf.random_normal_initializer(stddev=1.0, seed=1))
    b1 = tf.get_variable("b1", [32], initializer=tf.zeros_initializer())
    w2 = tf.get_variable("w2", [32, 2], initializer=tf.random_normal_initializer(stddev=0.3, seed=2))
    b2 = tf.get_variable("b2", [2], initializer=tf.zeros_initializer())
    if math_only:  # relu and softmax cross-entropy from math ops alone
        hidden = tf.maximum(tf.matmul(x, w1) + b1, 0.0)
        logits = tf.matmul(hidden, w2) + b2
        onehot = tf.cast(tf.equal(tf.reshape(y, [-1, 1]), np.arange(2)), tf.float32)
        loss = tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1) - tf.reduce_sum(onehot * logits, axis=1))
    else:
        hidden = tf.nn.relu(tf.matmul(x, w1) + b1)
        logits = tf.matmul(hidden, w2) + b2
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = make_opt().minimize(loss)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
    feed = {x: x_np, y: y_np}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = sess.run(loss, feed)
        for _ in range(steps):
            sess.run(train, feed)
        assert sess.run(loss, feed) < first / 3
        return float(sess.run(accuracy, feed))


@pytest.mark.parametrize("math_only", [False, True])
def test_mlp_with_adam(math_only: bool) -> None:
    assert _mlp_accuracy(lambda: tf.train.AdamOptimizer(0.05), 300, math_only) > 0.95


@pytest.mark.parametrize("math_only", [False, True])
def test_mlp_with_sgd(math_only: bool) -> None:
    assert _mlp_accuracy(lambda: tf.train.GradientDescentOptimizer(0.5), 1000, math_only) > 0.95


# -- optimizer state in checkpoints ---------------------------------------------------------------------------


def test_adam_slots_are_saved_and_training_resumes_exactly(tmp_path: os.PathLike) -> None:
    w = tf.Variable([1.0, -2.0], name="w")
    loss = tf.reduce_sum(tf.square(w - [0.5, 0.5]))
    gs = tf.train.get_or_create_global_step()
    train = tf.train.AdamOptimizer(0.1).minimize(loss, global_step=gs)
    saver = tf.train.Saver()
    prefix = os.path.join(str(tmp_path), "model.ckpt")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(train)
        path = saver.save(sess, prefix, global_step=gs)
        for _ in range(2):
            sess.run(train)
        straight = sess.run(w)
    reader = tf.train.load_checkpoint(path)
    names = set(reader.get_variable_to_shape_map())
    assert {"w", "w/Adam", "w/Adam_1", "beta1_power", "beta2_power", "global_step"} <= names
    np.testing.assert_allclose(reader.get_tensor("beta1_power"), 0.9 ** 4, rtol=1e-6)
    with tf.Session() as sess:
        saver.restore(sess, path)
        assert tf.train.global_step(sess, gs) == 3
        for _ in range(2):
            sess.run(train)
        np.testing.assert_array_equal(sess.run(w), straight)
