"""Fusion decisions, counted: clusters, fallbacks and their reasons, stateful ops, explain, flags."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow import errors
from jitflow.compiler.plan import Plan
from jitflow.explain import explain
from tests.compiler.helpers import assert_same, counts, last_plan, run_both


def _w2_graph() -> tuple[tf.Tensor, tf.Tensor]:
    x = tf.placeholder(tf.float32, [None])
    y = tf.tanh(1.5 * x + 0.3) * tf.sigmoid(x) - 0.5 * tf.square(x)
    return x, tf.exp(-tf.abs(y)) + tf.maximum(y, 0.0)


def test_w2_chain_is_one_cluster_without_fallbacks() -> None:
    x, out = _w2_graph()
    xv = np.linspace(-6, 6, 3001).astype(np.float32)
    got, want, plan = run_both(out, {x: xv})
    assert counts(plan) == (1, 0)
    assert len(plan.report["clusters"][0]["ops"]) == 13
    assert_same(got, want, rtol=4e-6)


def test_unlowerable_op_falls_back_with_reason_and_splits_clusters() -> None:
    x = tf.placeholder(tf.float32, [4, 5])
    a = tf.exp(x) * 2.0
    m = tf.argmax(a, axis=1)  # no lowering: interpreted
    b = tf.cast(m, tf.float32) + 1.0
    got, want, plan = run_both([a, b], {x: np.arange(20, dtype=np.float32).reshape(4, 5)})
    assert counts(plan) == (2, 1)
    fb = plan.report["fallbacks"][0]
    assert fb["type"] == "ArgMax" and fb["op"] == m.op.name and "ArgMax" in fb["reason"]
    for g, w in zip(got, want):
        assert_same(g, w)


def test_cluster_never_spans_a_fallback_dependency() -> None:
    # exp -> argmax (interpreted) -> cast -> add(exp...): fusing exp with add would need argmax inside
    x = tf.placeholder(tf.float32, [3, 4])
    e = tf.exp(x)
    m = tf.cast(tf.argmax(e, axis=1), tf.float32)
    out = tf.reduce_sum(e, axis=1) + m
    got, want, plan = run_both(out, {x: np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)})
    assert_same(got, want)
    assert any(s.kind == "cluster" and e.op in s.ops for s in plan.steps)
    assert counts(plan)[1] == 1


def test_assign_sub_sgd_fuses_and_matches_interpreter() -> None:
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=(6, 3)).astype(np.float32)
    x = tf.placeholder(tf.float32, [6, 3])
    w = tf.Variable(w0)
    grad = 2.0 * (w - x)
    step = tf.assign_sub(w, 0.1 * grad)
    results = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(w.initializer)
            for i in range(3):
                sess.run(step, {x: np.full((6, 3), i, np.float32)})
            if jit:
                plan = last_plan(sess)
            results.append(sess.run(w))
    assert counts(plan) == (1, 0)
    assert plan.report["clusters"][0]["ops"][-1] == step.op.name
    assert_same(results[0], results[1])


def test_stateful_ops_run_once_and_in_order() -> None:
    v = tf.Variable(1.0)
    inc = tf.assign_add(v, 1.0)
    with tf.control_dependencies([inc]):
        doubled = v.read_value() * 2.0
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(doubled) == 4.0
        assert sess.run(doubled) == 6.0
        assert sess.run(v) == 3.0


def test_print_and_random_ops_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.placeholder(tf.float32, [8])
    r = tf.random_uniform([8], seed=1)
    p = tf.Print(x * 2.0, [x], message="seen: ")
    out = p + r
    got, want, plan = run_both(out, {x: np.arange(8, dtype=np.float32)})
    assert_same(got, want)
    assert capsys.readouterr().err.count("seen: ") == 2  # once per run, compiled and interpreted
    types = {f["type"] for f in plan.report["fallbacks"]}
    assert {"Print", "RandomUniform"} <= types


def test_explain_reports_clusters_and_fallbacks() -> None:
    x = tf.placeholder(tf.float32, [None, 5])
    y = tf.argmax(tf.nn.relu(x * 3.0), axis=1)
    rep = explain(y, {x: np.ones((2, 5), np.float32)})
    d = rep.to_dict()
    assert set(d) == {"clusters", "fallbacks"}
    (c,) = d["clusters"]
    assert set(c) == {"ops", "backend", "key", "compile_seconds", "source"}
    assert c["backend"] == "cpu" and c["source"] in ("compiled", "memory", "disk")
    assert len(c["key"]) == 64 and isinstance(c["compile_seconds"], float)
    assert d["fallbacks"] == [{"op": y.op.name, "type": "ArgMax",
                               "reason": d["fallbacks"][0]["reason"]}]
    text = str(rep)
    assert "1 clusters" in text and "fallback" in text and y.op.name in text


def test_fallback_error_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    x = tf.placeholder(tf.float32, [3, 2])
    y = tf.argmax(x, axis=1)
    monkeypatch.setenv("JITFLOW_FALLBACK", "error")
    with tf.Session() as sess:
        with pytest.raises(errors.UnimplementedError, match="ArgMax"):
            sess.run(y, {x: np.ones((3, 2), np.float32)})
        # a fully lowerable graph is fine under the flag
        assert sess.run(x * 2.0, {x: np.ones((3, 2), np.float32)}).sum() == 12.0


def test_jit_off_interprets_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    x = tf.placeholder(tf.float32, [3])
    y = tf.exp(x) + 1.0
    monkeypatch.setenv("JITFLOW_JIT", "0")
    with tf.Session() as sess:
        sess.run(y, {x: np.zeros(3, np.float32)})
        plan: Plan = last_plan(sess)
    assert counts(plan) == (0, 0)
    assert len(plan.steps) >= 2


def test_debug_levels_print_clusters_and_step_times(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    x = tf.placeholder(tf.float32, [64])
    y = tf.exp(x) * 2.0
    monkeypatch.setenv("JITFLOW_DEBUG", "3")
    with tf.Session() as sess:
        sess.run(y, {x: np.zeros(64, np.float32)})
    err = capsys.readouterr().err
    assert "cluster ['Exp', 'mul']" in err and "step cluster[Exp,mul]" in err


def test_clustering_a_large_graph_is_not_quadratic() -> None:
    import time

    from jitflow.compiler import lower
    from jitflow.compiler.cluster import cluster
    from jitflow.compiler.prune import prune

    x = tf.placeholder(tf.float32, [None, 8])
    y = x
    outs = []
    for i in range(1500):
        y = tf.tanh(y * 1.01 + 0.1) if i % 3 else tf.exp(-tf.abs(y))
        if i % 50 == 0:
            outs.append(tf.reduce_sum(y, axis=1))
    ops = prune([y, *outs], [], {x})
    t0 = time.perf_counter()
    res = cluster(ops, {x}, lower.member_reason)
    assert time.perf_counter() - t0 < 3.0  # a rescan per merge took ~8 s here
    from jitflow.compiler.cluster import MAX_CLUSTER_OPS

    assert not res.fallbacks
    assert max(len(c) for c in res.clusters) <= MAX_CLUSTER_OPS
    assert len(res.clusters) <= 2 * (len(ops) // MAX_CLUSTER_OPS) + 31  # few, large clusters
    assert sum(len(c) for c in res.clusters) == sum(1 for op in ops if lower.member_reason(op) is None)


def _groups_and_values(fetches: list, feed: dict, v: Any) -> list:
    """The compiled plan's clusters, after checking every fetched value (and `v`, a variable or a list of them,
    after) against the interpreter."""
    results, groups = [], []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            out = sess.run(fetches, feed)
            if jit:
                groups = [e["ops"] for e in last_plan(sess).report["clusters"]]
            after = sess.run(v)
            results.append([x for x in out if x is not None] + (after if isinstance(after, list) else [after]))
    for a, b in zip(*results):
        assert_same(a, b)
    return groups


def test_an_identity_between_kernels_fuses_into_its_producers_cluster() -> None:
    """clip_by_global_norm's Identity between the clipping Mul and the optimizer's update: one kernel, the
    Identity's value fetched as well. Identities alone, of a variable, or with control inputs stay slot copies."""
    gv = np.random.default_rng(2).normal(size=(30, 8)).astype(np.float32)
    with tf.Graph().as_default():
        g = tf.placeholder(tf.float32, [30, 8])
        v = tf.Variable(np.zeros((30, 8), np.float32))
        clipped = tf.identity(g * 0.5, name="clipped")
        train = tf.train.GradientDescentOptimizer(0.1).apply_gradients([(clipped, v)])
        groups = _groups_and_values([train, clipped], {g: gv}, v)
    assert ["mul", "clipped", "GradientDescent/update_Variable/ApplyGradientDescent"] in groups
    with tf.Graph().as_default():
        g = tf.placeholder(tf.float32, [30, 8])
        v = tf.Variable(np.ones((30, 8), np.float32))
        with tf.control_dependencies([g]):
            gated = tf.identity(g * 3.0, name="gated") + 1.0
        stopped = tf.stop_gradient(tf.exp(g), name="stopped") * 2.0
        groups = _groups_and_values([gated, stopped, tf.identity(g, name="alone") * 1.0,
                                     tf.identity(v, name="snap") - 1.0], {g: gv}, v)
    flat = {name for ops in groups for name in ops}
    assert "stopped" in flat and not flat & {"alone", "gated", "snap"}


def test_clip_by_global_norm_fuses_each_update_with_its_clipping() -> None:
    """Every variable's clipping Mul, Identity and update make one kernel, and kernels over unrelated
    shapes stay apart (one cluster spanning [12, 5] and [7] could only run interpreted)."""
    rng = np.random.default_rng(4)
    with tf.Graph().as_default():
        a = tf.Variable(rng.normal(size=(12, 5)).astype(np.float32))
        b = tf.Variable(rng.normal(size=7).astype(np.float32))
        x = tf.placeholder(tf.float32, [12, 5])
        loss = tf.reduce_sum(a * x) * tf.reduce_sum(b * b)
        grads, _ = tf.clip_by_global_norm(tf.gradients(loss, [a, b]), 0.5)
        train = tf.train.GradientDescentOptimizer(0.3).apply_gradients(zip(grads, [a, b]))
        groups = _groups_and_values([train], {x: rng.normal(size=(12, 5)).astype(np.float32)}, [a, b])
    for var in ("Variable", "Variable_1"):
        mine = [ops for ops in groups if f"GradientDescent/update_{var}/ApplyGradientDescent" in ops]
        assert len(mine) == 1 and any(n.startswith("clip_by_global_norm/clip_by_global_norm") for n in mine[0])
        other = "Variable_1" if var == "Variable" else "Variable"
        assert f"GradientDescent/update_{other}/ApplyGradientDescent" not in mine[0]
