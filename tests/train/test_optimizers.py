"""Optimizers: first steps against TF1's update formulas written out in NumPy, slots, and the API rules."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import jitflow as tf

W0 = np.array([1.0, -2.0, 0.5])
C = np.array([1.0, 0.5, 2.0])
D = np.array([0.3, -0.1, 0.2])


def f32(x: float) -> np.float64:
    """A Python hyperparameter as the optimizer sees it: a float32 constant cast to the variable's dtype."""
    return np.float64(np.float32(x))


def grad_of(w: np.ndarray) -> np.ndarray:
    return C * w + D  # the gradient of the loss below


def quadratic(w: tf.Variable) -> tf.Tensor:
    return tf.reduce_sum(0.5 * C * tf.square(w) + D * w)


def run_steps(opt: tf.train.Optimizer, n: int = 3) -> tuple[list[np.ndarray], tf.Variable, tf.Session]:
    w = tf.Variable(W0, name="w")
    train = opt.minimize(quadratic(w))
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    seen = []
    for _ in range(n):
        sess.run(train)
        seen.append(sess.run(w))
    return seen, w, sess


def test_gradient_descent() -> None:
    lr = f32(0.1)
    got, _, _ = run_steps(tf.train.GradientDescentOptimizer(0.1))
    w = W0.copy()
    for step in got:
        w = w - lr * grad_of(w)
        np.testing.assert_allclose(step, w, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(nesterov: bool) -> None:
    lr, mu = f32(0.1), f32(0.9)
    opt = tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=nesterov)
    got, wv, sess = run_steps(opt)
    w, acc = W0.copy(), np.zeros(3)
    for step in got:
        g = grad_of(w)
        acc = mu * acc + g
        w = w - (lr * g + lr * mu * acc if nesterov else lr * acc)
        np.testing.assert_allclose(step, w, rtol=1e-12)
    slot = opt.get_slot(wv, "momentum")
    assert slot is not None and slot.op.name == "w/Momentum"
    np.testing.assert_allclose(sess.run(slot), acc, rtol=1e-12)
    assert opt.get_slot_names() == ["momentum"]


def test_adam_matches_tf1_formula_and_slots() -> None:
    lr, b1, b2, eps = f32(0.01), f32(0.9), f32(0.999), f32(1e-8)
    opt = tf.train.AdamOptimizer(0.01)
    got, wv, sess = run_steps(opt)
    w, m, v = W0.copy(), np.zeros(3), np.zeros(3)
    for t, step in enumerate(got, start=1):
        g = grad_of(w)
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr_t * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(step, w, rtol=1e-6)
    m_slot, v_slot = opt.get_slot(wv, "m"), opt.get_slot(wv, "v")
    assert m_slot is not None and v_slot is not None
    assert (m_slot.op.name, v_slot.op.name) == ("w/Adam", "w/Adam_1")
    np.testing.assert_allclose(sess.run(m_slot), m, rtol=1e-6)
    np.testing.assert_allclose(sess.run(v_slot), v, rtol=1e-6)
    names = [v.op.name for v in opt.variables()]
    assert names == ["beta1_power", "beta2_power", "w/Adam", "w/Adam_1"]
    b1p, b2p = sess.run(["beta1_power:0", "beta2_power:0"])
    np.testing.assert_allclose([b1p, b2p], [0.9 ** 4, 0.999 ** 4], rtol=1e-6)  # beta^(t+1) after t steps


def test_adagrad() -> None:
    lr = f32(0.5)
    opt = tf.train.AdagradOptimizer(0.5, initial_accumulator_value=0.1)
    got, wv, sess = run_steps(opt)
    w, acc = W0.copy(), np.full(3, 0.1)  # the initial value takes the variable's dtype directly
    for step in got:
        g = grad_of(w)
        acc = acc + g * g
        w = w - lr * g / np.sqrt(acc)
        np.testing.assert_allclose(step, w, rtol=1e-12)
    slot = opt.get_slot(wv, "accumulator")
    assert slot is not None and slot.op.name == "w/Adagrad"
    np.testing.assert_allclose(sess.run(slot), acc, rtol=1e-12)
    with pytest.raises(ValueError, match="initial_accumulator_value must be positive"):
        tf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop(centered: bool, momentum: float) -> None:
    lr, rho, mu, eps = f32(0.01), f32(0.9), f32(momentum), f32(1e-10)
    opt = tf.train.RMSPropOptimizer(0.01, momentum=momentum, centered=centered)
    got, wv, sess = run_steps(opt)
    w, ms, mg, mom = W0.copy(), np.ones(3), np.zeros(3), np.zeros(3)  # TF1 starts ms at 1
    for step in got:
        g = grad_of(w)
        ms = ms + (g * g - ms) * (1 - rho)
        denom = ms + eps
        if centered:
            mg = mg + (g - mg) * (1 - rho)
            denom = ms - mg * mg + eps
        mom = mu * mom + lr * g / np.sqrt(denom)
        w = w - mom
        np.testing.assert_allclose(step, w, rtol=1e-10)
    expected = {"rms": "w/RMSProp", "momentum": "w/RMSProp_2" if centered else "w/RMSProp_1"}
    if centered:
        expected["mg"] = "w/RMSProp_1"
    for slot_name, op_name in expected.items():
        slot = opt.get_slot(wv, slot_name)
        assert slot is not None and slot.op.name == op_name
    np.testing.assert_allclose(sess.run(opt.get_slot(wv, "rms")), ms, rtol=1e-10)


def test_float32_variables_stay_float32() -> None:
    w = tf.Variable(W0.astype(np.float32))
    train = tf.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(tf.square(w)))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        assert sess.run(w).dtype == np.float32
        np.testing.assert_allclose(sess.run(w), W0 - 0.1 * np.sign(W0), rtol=1e-5)  # Adam's first step: lr*sign


def test_slots_are_global_non_trainable_variables() -> None:
    w = tf.Variable(W0, name="w")
    opt = tf.train.AdamOptimizer()
    opt.minimize(quadratic(w))
    glob = {v.op.name for v in tf.global_variables()}
    assert {"w", "w/Adam", "w/Adam_1", "beta1_power", "beta2_power"} <= glob
    assert [v.op.name for v in tf.trainable_variables()] == ["w"]


def test_only_trainable_variables_move_and_none_gradients_are_skipped() -> None:
    w = tf.Variable(W0, name="w")
    frozen = tf.Variable(2.0, dtype=tf.float64, trainable=False, name="frozen")
    unused = tf.Variable(5.0, dtype=tf.float64, name="unused")
    opt = tf.train.MomentumOptimizer(0.1, 0.9)
    train = opt.minimize(quadratic(w) * frozen)
    assert opt.get_slot(unused, "momentum") is None and opt.get_slot(frozen, "momentum") is None
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        assert sess.run(frozen) == 2.0 and sess.run(unused) == 5.0
        np.testing.assert_allclose(sess.run(w), W0 - f32(0.1) * 2.0 * grad_of(W0))


def test_no_gradients_for_any_variable() -> None:
    tf.Variable(1.0, name="v")
    loss = tf.constant(3.0) * 2.0
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        tf.train.GradientDescentOptimizer(0.1).apply_gradients([(None, tf.global_variables()[0])])


def test_api_errors() -> None:
    w = tf.Variable(1.0, name="v")
    opt = tf.train.GradientDescentOptimizer(0.1)
    with pytest.raises(ValueError, match="gate_gradients"):
        opt.compute_gradients(w * 2.0, gate_gradients=7)
    with pytest.raises(ValueError, match="Invalid type int32"):
        opt.compute_gradients(tf.constant(1) + 2)
    with pytest.raises(ValueError, match="No variables provided"):
        opt.apply_gradients([])
    with pytest.raises(NotImplementedError):
        opt.apply_gradients([(tf.constant(1.0), tf.constant(2.0))])
    tf.reset_default_graph()
    with pytest.raises(ValueError, match="No variables to optimize"):
        opt.minimize(tf.constant(1.0))


def test_tensor_learning_rate_and_names() -> None:
    w = tf.Variable(W0, name="w")
    lr = tf.placeholder(tf.float32, [])
    train = tf.train.GradientDescentOptimizer(lr).minimize(quadratic(w), name="train")
    assert train.name == "train" and train.type == "NoOp"
    assert train in tf.get_collection(tf.GraphKeys.TRAIN_OP)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train, {lr: 0.5})
        sess.run(train, {lr: 0.0})
        np.testing.assert_allclose(sess.run(w), W0 - 0.5 * grad_of(W0))
        with pytest.raises(tf.errors.InvalidArgumentError):
            sess.run(train)  # the learning rate must be fed


def test_global_step_increments_once_per_step_after_the_update() -> None:
    w = tf.Variable(W0, name="w")
    gs = tf.train.get_or_create_global_step()
    train = tf.train.AdamOptimizer(0.1).minimize(quadratic(w), global_step=gs)
    assert train.name == "Adam" and train.type == "AssignAdd"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(4):
            sess.run(train)
        assert tf.train.global_step(sess, gs) == 4


def test_apply_gradients_with_edited_gradients() -> None:
    w = tf.Variable(W0, name="w")
    opt = tf.train.GradientDescentOptimizer(1.0)
    gv = opt.compute_gradients(quadratic(w))
    assert len(gv) == 1 and gv[0][1] is w
    train = opt.apply_gradients([(tf.clip_by_value(g, -0.5, 0.5), v) for g, v in gv])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        np.testing.assert_allclose(sess.run(w), W0 - np.clip(grad_of(W0), -0.5, 0.5))


def test_every_update_sees_the_values_from_before_the_step() -> None:
    # d/da (a*b) = b and d/db = a: an update must not use a value another update already changed.
    # With grad_loss given, the forward product (which would read both first) is not needed.
    a = tf.Variable(2.0, dtype=tf.float64, name="a")
    b = tf.Variable(3.0, dtype=tf.float64, name="b")
    train = tf.train.GradientDescentOptimizer(0.5).minimize(a * b, grad_loss=tf.constant(1.0, tf.float64))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        assert sess.run([a, b]) == [2.0 - 0.5 * 3.0, 3.0 - 0.5 * 2.0]


OPTIMIZERS: dict[str, Callable[[], tf.train.Optimizer]] = {
    "sgd": lambda: tf.train.GradientDescentOptimizer(0.1), "momentum": lambda: tf.train.MomentumOptimizer(0.1, 0.9),
    "adam": lambda: tf.train.AdamOptimizer(0.1), "adagrad": lambda: tf.train.AdagradOptimizer(0.5),
    "rmsprop": lambda: tf.train.RMSPropOptimizer(0.1, centered=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_uninitialized_variable_is_a_failed_precondition(name: str) -> None:
    w = tf.Variable(W0, name="w")
    opt = OPTIMIZERS[name]()
    train = opt.minimize(quadratic(w))
    with tf.Session() as sess:
        with pytest.raises(tf.errors.FailedPreconditionError, match="uninitialized value"):
            sess.run(train)
        sess.run(w.initializer)
        own = [v.op.name for v in opt.variables()]
        if own:  # the optimizer's own variables were never initialized
            with pytest.raises(tf.errors.FailedPreconditionError, match="|".join(own)):
                sess.run(train)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_update_ops_check_gradient_shapes(name: str) -> None:
    w = tf.Variable(np.zeros((2, 2)), name="w")
    g = tf.placeholder(tf.float64)
    opt = OPTIMIZERS[name]()
    train = opt.apply_gradients([(g, w)])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match="var and grad do not have the same shape"):
            sess.run(train, {g: np.zeros(3)})
        sess.run(train, {g: np.ones((2, 2))})
        assert (sess.run(w) < 0).all()
    with pytest.raises(ValueError, match="same shape"):
        opt.apply_gradients([(tf.zeros([3], tf.float64), w)])
    with pytest.raises(TypeError):
        opt.apply_gradients([(tf.zeros([2, 2], tf.float32), w)])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_minimizes_a_quadratic(name: str) -> None:
    w = tf.Variable(W0, name="w")
    loss = quadratic(w)
    train = OPTIMIZERS[name]().minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(300):
            sess.run(train)
        np.testing.assert_allclose(sess.run(w), -D / C, atol=0.05)


def test_hyperparameters_convert_like_tf() -> None:
    # An int rate becomes int32 and a NumPy float64 stays float64: both are cast to the variable's dtype.
    w = tf.Variable(W0, name="w")
    sgd = tf.train.GradientDescentOptimizer(1).minimize(quadratic(w))
    adam = tf.train.AdamOptimizer(np.float64(0.1), beta1=np.float64(0.5))
    adam_train = adam.minimize(quadratic(w))
    assert tf.get_default_graph().get_tensor_by_name("beta1_power:0").dtype == tf.float64
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(sgd)
        np.testing.assert_allclose(sess.run(w), W0 - grad_of(W0), rtol=1e-12)
        sess.run(adam_train)
        assert sess.run("beta1_power:0") == 0.25


def _rules() -> list:
    from jitflow.train.training_ops import UPDATES

    return [(t, rule) for t, u in sorted(UPDATES.items()) for rule in [u.rule, *(v[2] for v in u.variants)]]


@pytest.mark.parametrize("op_type,rule", _rules(), ids=lambda x: getattr(x, "__name__", x))
def test_update_rules_are_elementwise(op_type: str, rule: Callable) -> None:
    # The same rule on whole arrays and on one element at a time (what a fused kernel does) agrees.
    from jitflow.train.training_ops import UPDATES

    upd = UPDATES[op_type]
    r = np.random.RandomState(5)
    refs = [r.uniform(0.1, 0.4, 4) for _ in upd.refs]
    args = [r.uniform(-1, 1, 4) if a == "grad" else np.float64(r.uniform(0.2, 0.8)) for a in upd.args]
    whole = rule(*refs, *args)
    assert len(whole) == len(upd.refs)
    for i in range(4):
        one = rule(*(float(x[i]) for x in refs), *(float(a[i]) if np.ndim(a) else float(a) for a in args))
        np.testing.assert_allclose([float(w[i]) for w in whole], one, rtol=1e-14)


def test_variants_follow_attrs() -> None:
    from jitflow.train.training_ops import apply_update, update_rule

    w = tf.Variable(W0, name="w")
    acc = tf.Variable(np.ones(3), name="acc")
    lr, g = tf.constant(0.5, tf.float64), tf.constant(np.ones(3))
    fixed = apply_update("ApplyAdagrad", [w._ref(), acc._ref()], [lr, g], "fixed", update_slots=False)
    assert update_rule(fixed).__name__ == "_adagrad_fixed_accum"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(fixed)
        np.testing.assert_allclose(sess.run([w, acc]), [W0 - 0.5, np.ones(3)])
