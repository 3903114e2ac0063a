"""The row kernels (softmax, log-softmax, sparse cross-entropy) against the interpreter.

Rows wider than a vector (with a scalar tail), and the special values whose handling the kernels'
fast-math passes must keep: NaN anywhere in a row, +inf, -inf, a row of -inf only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import jitflow as tf
from tests.compiler.helpers import assert_same, run_both


def _logits(dtype: type, rows: int, k: int) -> np.ndarray:
    fv = np.random.default_rng(3).normal(0, 4, (rows, k)).astype(dtype)
    fv[1, k - 1] = np.nan  # last element: the vector loop's tail
    fv[2, 0] = np.nan  # first element: the max's starting value
    fv[3, k // 2] = np.inf
    fv[4, 5] = -np.inf
    fv[5, :] = -np.inf
    fv[6, :] = 1e30 if dtype is np.float32 else 1e300
    return fv


def _tol(dtype: type) -> dict:
    return {"rtol": 3e-6 if dtype is np.float32 else 1e-13, "atol": 1e-7}


@pytest.mark.parametrize("dtype,ldtype,k", [(np.float32, np.int32, 37), (np.float64, np.int64, 101),
                                            (np.float32, np.int64, 1)])
def test_sparse_xent_special_values(dtype: type, ldtype: type, k: int) -> None:
    fv = _logits(dtype, 12, max(k, 7))[:, :k]
    lv = np.random.default_rng(4).integers(0, k, 12).astype(ldtype)
    f = tf.placeholder(tf.as_dtype(dtype), [None, k])
    lab = tf.placeholder(tf.as_dtype(ldtype), [None])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=f)
    grad = tf.gradients(tf.reduce_sum(loss), [f])[0]
    got, want, plan = run_both([loss, grad], {f: fv, lab: lv})
    assert not plan.report["fallbacks"]
    for g, w, what in zip(got, want, ("loss", "backprop")):
        assert_same(g, w, what=what, **_tol(dtype))
    if k > 1:
        assert np.isnan(got[0][1]) and np.isnan(got[1][1]).all()  # a NaN spreads over its row
        assert np.isnan(got[0][2]) and np.isnan(got[1][2]).all()


@pytest.mark.parametrize("bad", [-1, 37, 1 << 20])
def test_sparse_xent_label_out_of_range_compiled(bad: int) -> None:
    f = tf.placeholder(tf.float32, [None, 37])
    lab = tf.placeholder(tf.int32, [None])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=f)
    lv = np.zeros(9, np.int32)
    lv[7] = bad
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"label value of {bad} which is outside the valid range of \[0, 37\)"):
            sess.run(loss, {f: np.ones((9, 37), np.float32), lab: lv})
        ok = sess.run(loss, {f: np.ones((9, 37), np.float32), lab: np.zeros(9, np.int32)})  # still usable
    np.testing.assert_allclose(ok, np.log(37.0), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows_special_values(dtype: type, log: bool) -> None:
    fv = _logits(dtype, 9, 53).reshape(3, 3, 53)
    x = tf.placeholder(tf.as_dtype(dtype), [None, 3, 53])
    y = tf.nn.log_softmax(x) if log else tf.nn.softmax(x)
    got, want, plan = run_both(y, {x: fv})
    assert not plan.report["fallbacks"]
    assert_same(got, want, **_tol(dtype))
    assert np.isnan(got[0, 1]).all() and np.isnan(got[0, 2]).all()


def test_sparse_xent_rows_on_all_threads() -> None:
    """Big enough for the rows to run on every thread (`threads_for`): same values, same label error."""
    rows, k = 1100, 1000
    fv = _logits(np.float32, rows, k)
    lv = np.random.default_rng(5).integers(0, k, rows).astype(np.int32)
    f = tf.placeholder(tf.float32, [None, k])
    lab = tf.placeholder(tf.int32, [None])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=f)
    got, want, _ = run_both(loss, {f: fv, lab: lv})
    assert_same(got, want, **_tol(np.float32))
    lv[rows - 3] = k
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match=f"label value of {k}"):
        sess.run(loss, {f: fv, lab: lv})


def _xent_step(plan: Any) -> Any:
    from jitflow.compiler.steps import SparseXentStep

    return next(s for s in plan.steps if isinstance(s, SparseXentStep))


@pytest.mark.parametrize("form", ["x+b", "b+x", "tf.add", "BiasAdd"])
@pytest.mark.parametrize("dtype,ldtype", [(np.float32, np.int32), (np.float64, np.int64)])
def test_the_logits_bias_add_runs_in_the_row_kernel(form: str, dtype: type, ldtype: type) -> None:
    """A dense layer's ``h @ w + b`` feeding the cross-entropy: the row kernel adds the bias (no pass of its
    own, no cluster for the Add), with the interpreter's values, gradients of the matrix and the bias too."""
    rng = np.random.default_rng(6)
    n, k = 40, 300
    hv, wv = rng.normal(0, 1, (n, 16)).astype(dtype), rng.normal(0, 1, (16, k)).astype(dtype)
    bv = rng.normal(0, 2, k).astype(dtype)
    lv = rng.integers(0, k, n).astype(ldtype)
    h = tf.placeholder(tf.as_dtype(dtype), [None, 16])
    lab = tf.placeholder(tf.as_dtype(ldtype), [None])
    w, b = tf.constant(wv), tf.Variable(bv)
    z = tf.matmul(h, w)
    logits = {"x+b": lambda: z + b, "b+x": lambda: b + z, "tf.add": lambda: tf.add(z, b),
              "BiasAdd": lambda: tf.nn.bias_add(z, b)}[form]()
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=logits))
    grads = tf.gradients(loss, [h, b])
    got, want, plan = run_both([loss, *grads], {h: hv, lab: lv}, init=True)
    for g, wt, what in zip(got, want, ("loss", "d h", "d b")):
        assert_same(g, wt, what=what, **_tol(dtype))
    step = _xent_step(plan)
    assert step.sb >= 0 and logits.op in step.ops
    entries = [e["ops"] for e in plan.report["clusters"]]
    assert [logits.op.name, step.op.name] in entries
    assert not any(logits.op.name in ops for ops in entries if ops != [logits.op.name, step.op.name])


def test_a_bias_add_read_elsewhere_stays_its_own_pass() -> None:
    """Logits that are fetched, or read by another op, are computed by the Add: the kernel takes them."""
    rng = np.random.default_rng(7)
    xv, bv = rng.normal(0, 1, (30, 50)).astype(np.float32), rng.normal(0, 1, 50).astype(np.float32)
    lv = rng.integers(0, 50, 30).astype(np.int32)
    x = tf.placeholder(tf.float32, [None, 50])
    lab = tf.placeholder(tf.int32, [None])
    logits = x + tf.constant(bv)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=logits)
    for fetches in ([loss, logits], [loss, tf.argmax(logits, 1)]):
        got, want, plan = run_both(fetches, {x: xv, lab: lv})
        for g, wt in zip(got, want):
            assert_same(g, wt, **_tol(np.float32))
        assert _xent_step(plan).sb < 0


def test_the_fused_bias_add_falls_back_as_a_chain() -> None:
    """Where the row kernel does not run (a tiny input) or refuses (a label out of range), the Add and the
    cross-entropy run interpreted, in order: the interpreter's values, TF's error."""
    x = tf.placeholder(tf.float32, [None, 3])
    lab = tf.placeholder(tf.int32, [None])
    bv = np.array([0.5, -1.0, 2.0], np.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=tf.nn.bias_add(x, tf.constant(bv)))
    xv = np.array([[1.0, 2.0, 3.0]], np.float32)
    got, want, plan = run_both(loss, {x: xv, lab: np.array([2], np.int32)})
    assert _xent_step(plan).sb >= 0
    assert_same(got, want)
    big = np.ones((50, 3), np.float32)
    lv = np.zeros(50, np.int32)
    lv[9] = 3
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="label value of 3"):
        sess.run(loss, {x: big, lab: lv})


def _grad_step(plan: Any) -> Any:
    from jitflow.compiler.xent_grad import XentGradStep

    return next((s for s in plan.steps if isinstance(s, XentGradStep)), None)


def _classifier(dtype: type, ldtype: type, form: str, n: int = 40, k: int = 300) -> tuple[Any, dict, Any]:
    """A dense classifier's loss and the gradients of its input, weights' product and bias."""
    rng = np.random.default_rng(8)
    hv, wv = rng.normal(0, 1, (n, 16)).astype(dtype), rng.normal(0, 1, (16, k)).astype(dtype)
    h = tf.placeholder(tf.as_dtype(dtype), [None, 16])
    lab = tf.placeholder(tf.as_dtype(ldtype), [None])
    b = tf.Variable(rng.normal(0, 2, k).astype(dtype))
    z = tf.matmul(h, tf.constant(wv))
    logits = {"x+b": lambda: z + b, "BiasAdd": lambda: tf.nn.bias_add(z, b), "none": lambda: z}[form]()
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=logits))
    grads = tf.gradients(loss, [h, z] + ([b] if form != "none" else []))
    return [loss, *grads], {h: hv, lab: rng.integers(0, k, n).astype(ldtype)}, logits


@pytest.mark.parametrize("form", ["x+b", "BiasAdd", "none"])
@pytest.mark.parametrize("dtype,ldtype", [(np.float32, np.int32), (np.float64, np.int64)])
def test_the_cross_entropy_gradient_is_computed_from_the_logits(monkeypatch: pytest.MonkeyPatch, form: str,
                                                                dtype: type, ldtype: type) -> None:
    """The backward Mul (and the bias gradient) as one XentGradStep: the interpreter's values, and the product
    bit for bit the one of the unfused kernels (the cross-entropy's stored gradient times the row scale)."""
    from jitflow.compiler import lower

    fetches, feed, _ = _classifier(dtype, ldtype, form)
    got, want, plan = run_both(fetches, feed, init=True)
    for g, wt, what in zip(got, want, ("loss", "d h", "d logits", "d b")):
        assert_same(g, wt, what=what, **_tol(dtype))
    step = _grad_step(plan)
    assert step is not None and _xent_step(plan).split
    assert [op.type for op in step.ops] == ["Mul"] + {"x+b": ["UnbroadcastTo"], "BiasAdd": ["Sum"],
                                                      "none": []}[form]
    monkeypatch.setattr(lower, "find_xent_grads", lambda *a: {})
    unfused, _, plan2 = run_both(fetches, feed, init=True)
    assert _grad_step(plan2) is None
    np.testing.assert_array_equal(got[2], unfused[2])  # d logits: the same roundings in the same order
    assert_same(got[-1], unfused[-1], **_tol(dtype))  # the column sums add in chunks: a few ulps


def test_the_split_cross_entropy_falls_back_as_written() -> None:
    """A tiny batch (the cross-entropy runs interpreted), a row scale that broadcasts another way, a label out
    of range: each gives the interpreter's values or TF's error."""
    fetches, feed, _ = _classifier(np.float32, np.int32, "x+b", n=40, k=30)
    h, lab = list(feed)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for n in (2, 40, 3):  # 2 x 30 logits: at most SMALL_SIZE, the cross-entropy runs interpreted
            small = {h: feed[h][:n], lab: feed[lab][:n]}
            got = sess.run(fetches, small)
            with tf.Session(config=tf.ConfigProto(jit=False)) as ref:
                ref.run(tf.global_variables_initializer())
                want = ref.run(fetches, small)
            for g, wt in zip(got, want):
                assert_same(g, wt, **_tol(np.float32))
        bad = dict(feed)
        bad[lab] = feed[lab].copy()
        bad[lab][7] = 30
        with pytest.raises(tf.errors.InvalidArgumentError, match="label value of 30"):
            sess.run(fetches, bad)
    x = tf.placeholder(tf.float32, [None, 50])
    lab2 = tf.placeholder(tf.int32, [None])
    gy = tf.placeholder(tf.float32, [None])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab2, logits=x)
    prod = tf.gradients(loss, x, grad_ys=gy)[0]  # Mul(ExpandDims(gy), backprop)
    rng = np.random.default_rng(9)
    xv, lv = rng.normal(size=(30, 50)).astype(np.float32), rng.integers(0, 50, 30).astype(np.int32)
    for gv in (rng.normal(size=30), rng.normal(size=1)):  # [1]: the Mul broadcasts its [1, 1] over the rows
        got, want, plan = run_both([loss, prod], {x: xv, lab2: lv, gy: gv.astype(np.float32)})
        assert _grad_step(plan) is not None
        for g, wt in zip(got, want):
            assert_same(g, wt, **_tol(np.float32))
