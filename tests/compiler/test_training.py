"""Activations, their gradients and optimizer updates, compiled against the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from tests.compiler.helpers import assert_same, counts, last_plan, run_both


def test_activations_and_gradients() -> None:
    xv = np.concatenate([[0.0, -0.0, np.nan, np.inf, -np.inf, 6.0, 7.5, -3.0],
                         np.random.default_rng(5).normal(0, 4, 16)]).astype(np.float32).reshape(4, 6)
    x = tf.placeholder(tf.float32, [4, 6])
    acts = [tf.nn.relu(x), tf.nn.relu6(x), tf.nn.elu(x), tf.nn.softplus(x), tf.nn.leaky_relu(x, 0.3)]
    grads = tf.gradients([tf.reduce_sum(a * x) for a in acts], [x])
    got, want, plan = run_both(acts + grads, {x: xv})
    assert plan.report["fallbacks"] == []
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, what=f"output {i}")


def test_bias_add_checks_the_bias_length() -> None:
    x = tf.placeholder(tf.float32, [None, None])
    b = tf.placeholder(tf.float32, [None])
    y = tf.nn.bias_add(x, b) * 2.0
    with tf.Session() as sess:
        assert_same(sess.run(y, {x: np.ones((3, 4), np.float32), b: np.arange(4, dtype=np.float32)}),
                    (1 + np.arange(4, dtype=np.float32)[None, :].repeat(3, 0)) * 2)
        with pytest.raises(tf.errors.InvalidArgumentError, match="BiasAdd"):
            sess.run(y, {x: np.ones((3, 4), np.float32), b: np.ones(1, np.float32)})


OPTIMIZERS = [
    lambda: tf.train.GradientDescentOptimizer(0.1),
    lambda: tf.train.MomentumOptimizer(0.05, 0.9),
    lambda: tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
    lambda: tf.train.AdamOptimizer(0.01),
    lambda: tf.train.AdagradOptimizer(0.1),
    lambda: tf.train.RMSPropOptimizer(0.01),
]


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_optimizer_steps_match_the_interpreter(make_opt) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(6)
    xv = rng.normal(size=(16, 5)).astype(np.float32)
    yv = rng.normal(size=(16, 3)).astype(np.float32)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 5])
    y = tf.placeholder(tf.float32, [None, 3])
    w = tf.Variable(w0)
    b = tf.Variable(np.zeros(3, np.float32))
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
    train = make_opt().minimize(loss)
    final = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(4):
                sess.run(train, {x: xv, y: yv})
            if jit:
                plan = last_plan(sess)
            final.append(sess.run([w, b] + [v for v in tf.global_variables() if v is not w and v is not b]))
    types = {f["type"] for f in plan.report["fallbacks"]}
    assert not any(t.startswith("Apply") for t in types), types
    assert counts(plan)[0] >= 3
    for g, want in zip(*final):
        assert_same(g, want, rtol=1e-5)


@pytest.mark.parametrize("dtype,ldtype", [(np.float32, np.int32), (np.float64, np.int64)])
def test_sparse_softmax_xent_row_kernel(dtype: type, ldtype: type) -> None:
    rng = np.random.default_rng(7)
    fv = rng.normal(0, 3, (40, 7)).astype(dtype)
    fv[3, 2] = np.nan
    lv = rng.integers(0, 7, 40).astype(ldtype)
    f = tf.placeholder(tf.as_dtype(dtype), [None, 7])
    lab = tf.placeholder(tf.as_dtype(ldtype), [None])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=f)
    grad = tf.gradients(tf.reduce_sum(loss), [f])[0]
    got, want, plan = run_both([loss, grad], {f: fv, lab: lv})
    assert not any(fb["type"].startswith("SparseSoftmax") for fb in plan.report["fallbacks"])
    for g, w in zip(got, want):
        assert_same(g, w, rtol=2e-6 if dtype is np.float32 else 1e-13, atol=1e-7)
    with tf.Session() as sess:
        bad = lv.copy()
        bad[5] = 7
        with pytest.raises(tf.errors.InvalidArgumentError, match="label value of 7"):
            sess.run(loss, {f: fv, lab: bad})
        assert_same(sess.run(loss, {f: fv, lab: lv}), want[0], rtol=2e-6 if dtype is np.float32 else 1e-13,
                    atol=1e-7)


def test_small_cluster_with_folded_shape_input_falls_back_correctly(monkeypatch: pytest.MonkeyPatch) -> None:
    from jitflow.compiler import steps

    monkeypatch.setattr(steps, "SMALL_SIZE", 1 << 20)  # every cluster takes the interpreted path
    xv = np.random.default_rng(8).normal(size=(3, 4, 2))
    a = tf.placeholder(tf.float64, [3, 4, 2])
    b = tf.placeholder(tf.float64, [1, 4, 1])
    loss = tf.reduce_sum(tf.where_v2(a > 0, a, b) * 2.0)
    grads = tf.gradients(loss, [a, b])  # b's gradient reduces through UnbroadcastTo (its Shape is folded)
    got, want, _ = run_both(grads, {a: xv, b: xv[:1, :, :1]})
    for g, w in zip(got, want):
        assert_same(g, w)


def test_runtime_target_unbroadcast_fast_and_fallback_paths() -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    y = tf.placeholder(tf.float32, [None, 3])
    loss = tf.reduce_sum(tf.square(x + y) * 2.0)
    gx, gy = tf.gradients(loss, [x, y])
    rng = np.random.default_rng(10)
    for xs, ys in (((4, 3), (4, 3)), ((1, 3), (4, 3))):  # identity, then a real reduction
        feed = {x: rng.normal(size=xs).astype(np.float32), y: rng.normal(size=ys).astype(np.float32)}
        got, want, plan = run_both([gx, gy], feed)
        assert plan.report["fallbacks"] == []  # the run-time unbroadcast is its own step
        for g, w in zip(got, want):
            assert_same(g, w)
        assert got[0].shape == xs and got[1].shape == ys


def test_mlp_training_step_plan_and_results() -> None:
    rng = np.random.default_rng(11)
    xv = rng.normal(size=(16, 6)).astype(np.float32)
    yv = rng.integers(0, 3, 16).astype(np.int32)
    x = tf.placeholder(tf.float32, [None, 6])
    y = tf.placeholder(tf.int32, [None])
    w1 = tf.Variable(rng.normal(0, 0.5, (6, 5)).astype(np.float32))
    b1 = tf.Variable(np.zeros(5, np.float32))
    w2 = tf.Variable(rng.normal(0, 0.5, (5, 3)).astype(np.float32))
    b2 = tf.Variable(np.zeros(3, np.float32))
    h = tf.nn.relu(tf.matmul(x, w1) + b1)
    logits = tf.matmul(h, w2) + b2
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    final = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train, {x: xv, y: yv})
            if jit:
                plan = last_plan(sess)
            final.append(sess.run([w1, b1, w2, b2, loss], {x: xv, y: yv}))
    ops = [c["ops"] for c in plan.report["clusters"]]
    assert ["MatMul", h.op.inputs[0].op.name, h.op.name] in ops  # bias + ReLU epilogue of the matmul
    assert plan.report["fallbacks"] == []
    assert sum(1 for o in ops if any("ApplyGradientDescent" in n for n in o)) == 4
    for g, w in zip(*final):
        assert_same(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_row_kernels(dtype: type) -> None:
    rng = np.random.default_rng(12)
    xv = rng.normal(0, 4, (3, 5, 9)).astype(dtype)
    xv[1, 2, 4] = np.nan
    x = tf.placeholder(tf.as_dtype(dtype), [None, 5, 9])
    outs = [tf.nn.softmax(x), tf.nn.log_softmax(x), tf.nn.softmax(x * 2.0) + 1.0]
    got, want, plan = run_both(outs, {x: xv})
    assert plan.report["fallbacks"] == []
    rtol = 4e-6 if dtype is np.float32 else 1e-13
    for g, w in zip(got, want):
        assert_same(g, w, rtol=rtol, atol=rtol)
