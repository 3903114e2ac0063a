"""A small plan as one compiled call (`compiler/native_plan.py`), against the same plan run step by step and
against the interpreter: same values, same random numbers, and step by step whenever the call cannot."""
from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.compiler.native_plan import NativePlan, Translations
from jitflow.explain import report_of
from tests.compiler.helpers import assert_same

RTOL = 2e-5  # BLAS routines and conv methods sum in other orders than the interpreter's NumPy


def _cnn(keep_default: float = 1.0) -> dict[str, Any]:
    """W7i's shape of network, small: a direct conv (one input channel), a Winograd conv (8 -> 16 channels),
    both with bias, ReLU and a 2x2 max pool, a dense layer wide enough for the row-block product, dropout."""
    tf.set_random_seed(7)
    x = tf.placeholder(tf.float32, [None, 256], name="x")
    keep = tf.placeholder_with_default(np.float32(keep_default), [], name="keep")
    w1 = tf.Variable(tf.random_normal([3, 3, 1, 8], stddev=0.5))
    w2 = tf.Variable(tf.random_normal([3, 3, 8, 16], stddev=0.3))
    wd = tf.Variable(tf.random_normal([256, 8192], stddev=0.05))
    wo = tf.Variable(tf.random_normal([8192, 10], stddev=0.05))
    b1, b2 = tf.Variable(tf.random_normal([8])), tf.Variable(tf.random_normal([16]))
    bd, bo = tf.Variable(tf.random_normal([8192])), tf.Variable(tf.random_normal([10]))

    def block(h: Any, w: Any, b: Any) -> Any:
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, w, [1, 1, 1, 1], "SAME"), b))
        return tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")

    h = block(block(tf.reshape(x, [-1, 16, 16, 1]), w1, b1), w2, b2)
    h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 256]), wd) + bd)
    logits = tf.matmul(tf.nn.dropout(h, keep), wo) + bo
    loss = tf.reduce_mean(tf.square(logits))
    train = tf.train.AdamOptimizer(0.01).minimize(loss)
    return {"x": x, "keep": keep, "logits": logits, "train": train, "w2": w2,
            "init": tf.global_variables_initializer()}


def _translating_after(runs: int) -> Any:
    """Plans made in the block are translated at their `runs`-th run with the same feed shapes (0: never)."""
    return mock.patch.dict("os.environ", JITFLOW_NATIVE_PLAN=str(runs))


def _call(plan: Any) -> NativePlan | None:
    """The plan's latest compiled call (None: it has none)."""
    return plan.native.latest() if isinstance(plan.native, Translations) else None


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 256), dtype=np.float32)


def _runs(m: dict[str, Any], feeds: list[dict], jit: bool, capture_after: int, between: Any = None) -> tuple:
    """The logits of each feed in one session, and the session's plan of the logits."""
    with _translating_after(capture_after), tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(m["init"])
        out = []
        for k, feed in enumerate(feeds):
            if between is not None:
                between(sess, k)
            out.append(sess.run(m["logits"], {m[n] if isinstance(n, str) else n: v for n, v in feed.items()}))
        plans = [p for p in sess._plans.values() if m["logits"] in p.slots and len(p.fetch_slots) == 1]
        return out, plans[-1] if plans else None


def _compare(m: dict[str, Any], feeds: list[dict], between: Any = None) -> Any:
    """Runs `feeds` one compiled call (from the second run), step by step and interpreted: same values."""
    native, plan = _runs(m, feeds, True, 2, between)
    steps, _ = _runs(m, feeds, True, 0, between)
    interp, _ = _runs(m, feeds, False, 0, between)
    for k, (a, b, c) in enumerate(zip(native, steps, interp)):
        scale = float(np.nanmax(np.abs(c), initial=1.0, where=np.isfinite(c)))  # (sums of 8192 products)
        assert_same(a, b, RTOL, f"run {k}: one call against step by step", atol=RTOL * scale)
        assert_same(a, c, RTOL, f"run {k}: one call against the interpreter", atol=RTOL * scale)
    return plan


def test_a_small_cnn_runs_as_one_call_with_the_steps_values_and_random_numbers() -> None:
    m = _cnn()
    feeds = [{"x": _images(1, k % 3), "keep": np.float32(0.5 if k % 2 else 1.0)} for k in range(6)]
    plan = _compare(m, feeds)
    call = _call(plan)
    assert isinstance(call, NativePlan)
    assert plan.report["native"]["steps"] == len(plan.steps)
    assert f"runs as one compiled call ({len(plan.steps)} steps, made in " in str(report_of(plan))
    fused = call.fused
    for what in ("Conv2D (direct)", "Conv2D (winograd)", "MaxPool", "MatMul (row blocks)", "RandomUniform"):
        assert what in fused, (what, fused)


def test_a_run_the_call_cannot_do_goes_step_by_step_with_the_same_random_numbers() -> None:
    m = _cnn(keep_default=0.5)
    bad = _images(1, 5)
    bad[0, 17] = np.inf  # the Winograd conv's input then holds inf and NaN: the steps take im2col + GEMM
    feeds = [{"x": _images(1, 1)}] * 3 + [{"x": bad}, {"x": _images(1, 2)}, {"x": _images(2, 3)}, {"x": _images(1, 4)}]
    plan = _compare(m, feeds)
    assert isinstance(_call(plan), NativePlan)


def test_new_variable_values_are_seen_assigned_or_trained_in_place() -> None:
    m = _cnn()
    w2_new = tf.placeholder(tf.float32, [3, 3, 8, 16])
    assign = tf.assign(m["w2"], w2_new)
    rng = np.random.default_rng(11)
    new = rng.normal(size=(3, 3, 8, 16)).astype(np.float32)

    def between(sess: tf.Session, k: int) -> None:
        if k == 3:
            sess.run(assign, {w2_new: new})
        if k >= 4:  # Adam updates the variables (in place where nothing else holds them)
            sess.run(m["train"], {m["x"]: _images(4, k)})

    _compare(m, [{"x": _images(1, 0)}] * 7, between)


def test_fetched_feeds_variables_and_constants_come_back_as_step_by_step() -> None:
    m = _cnn()
    c = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    fetches = [m["logits"], m["x"], m["w2"], c, tf.reshape(m["w2"], [-1])]
    x = _images(1, 3)
    got = []
    for after in (2, 0):
        with _translating_after(after), tf.Session() as sess:
            sess.run(m["init"])
            got.append([sess.run(fetches, {m["x"]: x}) for _ in range(3)][-1])
            plan = list(sess._plans.values())[-1]
            assert isinstance(_call(plan), NativePlan) == (after == 2)
            w2 = sess.run(m["w2"])
    for a, b in zip(*got):
        assert_same(a, b, RTOL, atol=RTOL * float(np.abs(b).max()))
    np.testing.assert_array_equal(got[0][1], x)
    np.testing.assert_array_equal(got[0][2], w2)
    np.testing.assert_array_equal(got[0][4], w2.reshape(-1))


def test_a_frozen_graph_with_constant_filters_runs_as_one_call() -> None:
    m = _cnn()
    with tf.Session() as sess:
        sess.run(m["init"])
        frozen = tf.graph_util.convert_variables_to_constants(sess, tf.get_default_graph().as_graph_def(),
                                                              [m["logits"].op.name])
    res = []
    with tf.Graph().as_default() as g:
        tf.import_graph_def(frozen, name="")
        x, logits = g.get_tensor_by_name("x:0"), g.get_tensor_by_name(m["logits"].name)
        for jit, after in ((True, 2), (False, 0)):
            with _translating_after(after), tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
                res.append([sess.run(logits, {x: _images(1, k)}) for k in range(4)])
                if jit:
                    plan = list(sess._plans.values())[-1]
                    call = _call(plan)
                    assert isinstance(call, NativePlan), plan.report.get("native")
                    assert "Conv2D (winograd)" in call.fused
    for a, b in zip(*res):
        assert_same(a, b, RTOL, atol=RTOL * float(np.abs(b).max()))


def test_argmax_argmin_and_softmax_heads_match_the_interpreter_with_ties_and_nans() -> None:
    x = tf.placeholder(tf.float32, [3, 5], name="x")
    heads = [tf.argmax(x, 1), tf.argmin(x, 0), tf.argmax(x, 0, output_type=tf.int32), tf.nn.softmax(x),
             tf.nn.log_softmax(x)]
    xs = [np.array([[1, 3, 3, 0, 2], [np.nan, 1, np.nan, 5, 5], [-1, -1, -2, -2, 0]], np.float32),
          np.array([[0, 0, 0, 0, 0], [2, 1, 0, np.nan, 7], [np.inf, -np.inf, 1, 1, np.inf]], np.float32)]
    res = []
    for jit, after in ((True, 1), (False, 0)):
        with _translating_after(after), tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            res.append([sess.run(heads, {x: v}) for v in xs for _ in range(2)])
            if jit:
                plan = list(sess._plans.values())[-1]
                assert isinstance(_call(plan), NativePlan), plan.report.get("native")
    for got, want in zip(*res):
        for g, w in zip(got, want):
            if g.dtype.kind == "f":
                assert_same(g, w, 1e-6, atol=1e-6)
            else:
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)


def test_runs_from_several_threads_at_once_each_get_their_own_values() -> None:
    import threading

    m = _cnn()
    xs = [_images(1, k) for k in range(4)]
    with tf.Session(config=tf.ConfigProto(jit=False)) as sess:
        sess.run(m["init"])
        want = [sess.run(m["logits"], {m["x"]: x}) for x in xs]
    with _translating_after(2), tf.Session() as sess:
        sess.run(m["init"])
        for _ in range(3):
            sess.run(m["logits"], {m["x"]: xs[0]})
        assert isinstance(_call(list(sess._plans.values())[-1]), NativePlan)
        bad: list[Any] = []

        def worker(k: int) -> None:
            for _ in range(25):
                got = sess.run(m["logits"], {m["x"]: xs[k]})
                if not np.allclose(got, want[k], rtol=RTOL, atol=RTOL * float(np.abs(want[k]).max())):
                    bad.append((k, got, want[k]))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not bad, bad[:1]


def test_each_batch_size_gets_its_own_call_and_one_that_cannot_stays_step_by_step() -> None:
    x = tf.placeholder(tf.float32, [None, 20], name="x")
    w = tf.Variable(np.random.default_rng(0).normal(size=(20, 30)).astype(np.float32))
    out = tf.nn.softmax(tf.nn.relu(tf.matmul(x, w)))
    m = _cnn()
    batches = [1, 1, 1, 3, 3, 3, 1, 5, 3, 1]
    res = []
    for jit, after in ((True, 2), (False, 0)):
        with _translating_after(after), tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(tf.global_variables_initializer())
            res.append([sess.run(out, {x: _images(n, n)[:, :20]}) for n in batches])
            cnn = [sess.run(m["logits"], {m["x"]: _images(n, n)}) for n in (2, 2, 2, 1, 1, 1)]
            if jit:
                plan = [p for p in sess._plans.values() if out in p.slots][-1]
                assert sorted(s[0][0] for s in plan.native.calls) == [1, 3]  # (5 ran once: not yet translated)
                cnn_plan = [p for p in sess._plans.values() if m["logits"] in p.slots][-1]
                # a batch of 2 is no single image for the direct conv: step by step; then batch 1 translates
                assert [s[0][0] for s in cnn_plan.native.failed] == [2]
                assert [s[0][0] for s in cnn_plan.native.calls] == [1]
            res[-1].extend(cnn)
    for a, b in zip(*res):
        assert_same(a, b, RTOL, atol=RTOL * float(np.abs(b).max()))


def test_a_compiled_call_that_raises_leaves_its_shapes_step_by_step_with_the_same_numbers() -> None:
    m = _cnn(keep_default=0.5)
    feeds = [{"x": _images(1, k)} for k in range(6)]
    broke = []

    def between(sess: tf.Session, k: int) -> None:
        plan = [p for p in sess._plans.values() if m["logits"] in p.slots]
        call = _call(plan[-1]) if plan else None
        if k == 3 and call is not None:  # the function now rejects its arguments, as a mistyped one would

            def reject(*args: Any) -> int:
                raise TypeError("No matching definition")

            call.fn = reject
            broke.append(plan[-1])

    _compare(m, feeds, between)
    plan = broke[0]
    assert not plan.native.calls and plan.native.failed == {((1, 256),)}
    assert plan.report["native"]["why_not"] == "the compiled call failed: TypeError: No matching definition"


def test_plans_that_train_assign_or_loop_are_not_translated() -> None:
    m = _cnn()
    v = tf.Variable(np.ones(300, np.float32))
    bump = tf.assign_add(v, tf.constant(np.full(300, 2.0, np.float32)))
    n = tf.while_loop(lambda i: i < 10, lambda i: i + 1, [tf.constant(0)])
    with _translating_after(1), tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        why = {}
        for name, fetch, feed in (("train", m["train"], {m["x"]: _images(2, 0)}), ("assign", bump, None),
                                  ("loop", n, None)):
            for _ in range(2):
                sess.run(fetch, feed)
            plan = list(sess._plans.values())[-1]
            assert plan.native is False, name
            why[name] = plan.report["native"]["why_not"]
            assert f"runs step by step, not as one compiled call: {why[name]}" in str(report_of(plan))
        assert "Conv2D (Conv2D) is not an NHWC Conv2D or pool of an inference run" in why["train"]
        assert "assigns a variable" in why["assign"] or "AssignAdd" in why["assign"]
        assert why["loop"]
        assert sess.run(v)[0] == 5.0  # (each assign ran once per run, step by step)


def test_an_interpreted_session_never_translates() -> None:
    m = _cnn()
    _, plan = _runs(m, [{"x": _images(1, 0)}] * 3, False, 1)
    assert plan.native is False and "native" not in plan.report


ACTS = {"relu": tf.nn.relu, "tanh": tf.nn.tanh, "sigmoid": tf.nn.sigmoid, "none": lambda v: v}


@settings(max_examples=5, deadline=None)
@given(widths=st.lists(st.integers(1, 40), min_size=1, max_size=3), acts=st.lists(st.sampled_from(sorted(ACTS)),
       min_size=3, max_size=3), conv=st.sampled_from(["none", "direct", "winograd"]), keep=st.sampled_from([1.0, 0.7]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99),
       head=st.sampled_from(["none", "softmax", "log_softmax", "argmax"]))
def test_random_small_networks_match_the_interpreter(widths: list[int], acts: list[str], conv: str, keep: float,
                                                     dtype: Any, seed: int, head: str) -> None:
    """Random dense stacks, after an optional conv, as one compiled call against the interpreter."""
    g = tf.Graph()
    with g.as_default():
        tf.set_random_seed(seed)
        dt = tf.as_dtype(dtype)
        cin = 8 if conv == "winograd" else 3  # (Winograd takes 8 or more channels each way; direct, few)
        x = tf.placeholder(dt, [1, 6, 6, cin], name="x")
        h = x
        if conv != "none":
            f = tf.Variable(tf.random_normal([3, 3, cin, 8], dtype=dt))
            h = tf.nn.max_pool(tf.nn.relu(tf.nn.conv2d(h, f, [1, 1, 1, 1], "SAME")), [1, 2, 2, 1], [1, 2, 2, 1],
                               "VALID")
        h = tf.reshape(h, [1, -1])
        for k, wd in enumerate(widths):
            w = tf.Variable(tf.random_normal([int(h.shape[1]), wd], dtype=dt, stddev=0.3))
            h = ACTS[acts[k]](tf.matmul(h, w) + tf.Variable(tf.random_normal([wd], dtype=dt)))
            if k == 0 and keep < 1:
                h = tf.nn.dropout(h, keep)
        pre = h
        if head != "none":
            h = tf.argmax(h, 1) if head == "argmax" else getattr(tf.nn, head)(h)
        init = tf.global_variables_initializer()
    feed = np.random.default_rng(seed).normal(size=(1, 6, 6, cin)).astype(dtype)
    res = []
    for jit, after in ((True, 1), (False, 0)):
        with _translating_after(after), tf.Session(graph=g, config=tf.ConfigProto(jit=jit)) as sess:
            sess.run(init)
            res.append([sess.run([pre, h], {x: feed}) for _ in range(3)])
            if jit:
                plan = [p for p in sess._plans.values() if len(p.feed_slots) == 1][-1]
                if keep < 1 and dtype == np.float64:  # (float64 uniforms are drawn by NumPy code)
                    assert "RandomUniform" in plan.report["native"]["why_not"]
                else:
                    assert isinstance(_call(plan), NativePlan), plan.report.get("native")
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for (pa, a), (pb, b) in zip(*res):
        scale = float(np.abs(pb).max(initial=1.0))  # (a conv's sums in another order cancel to small values)
        assert_same(pa, pb, tol, atol=(1e-5 if dtype == np.float32 else 1e-12) * scale)
        if head == "argmax":  # the same index, or one whose value ties the interpreter's within rounding
            for i, (j, k) in enumerate(zip(a, b)):
                assert j == k or abs(pb[i, j] - pb[i, k]) <= tol * scale, (i, j, k, pb[i])
            continue
        hscale = float(np.abs(b[np.isfinite(b)]).max(initial=1.0))
        assert_same(a, b, tol, atol=(1e-5 if dtype == np.float32 else 1e-12) * hscale)


@pytest.fixture(autouse=True)
def _fresh_graph() -> Any:
    with tf.Graph().as_default():
        yield
