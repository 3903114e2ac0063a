"""tf.nn ops against direct NumPy computations: activations, softmax, bias_add, conv2d, pooling, losses."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import jitflow as tf

rng = np.random.RandomState(0)


def run(t: Any, feed: dict | None = None) -> Any:
    with tf.Session() as sess:
        return sess.run(t, feed)


# -- references written loop by loop (independent of the im2col kernels) ----------------------------------------


def same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    o = -(-n // s)
    total = max((o - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def ref_conv(x: np.ndarray, w: np.ndarray, stride: int, padding: str, dil: int = 1) -> np.ndarray:
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    ekh, ekw = (kh - 1) * dil + 1, (kw - 1) * dil + 1
    if padding == "SAME":
        (pt, pb), (pl, pr) = same_pads(h, ekh, stride), same_pads(wd, ekw, stride)
    else:
        pt = pb = pl = pr = 0
    xp = np.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)])
    oh, ow = (xp.shape[1] - ekh) // stride + 1, (xp.shape[2] - ekw) // stride + 1
    out = np.zeros((n, oh, ow, o), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + ekh:dil, j * stride:j * stride + ekw:dil, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=3)
    return out


def ref_pool(x: np.ndarray, k: int, s: int, padding: str, how: str) -> np.ndarray:
    n, h, w, c = x.shape
    if padding == "SAME":
        (pt, _), (pl, _) = same_pads(h, k, s), same_pads(w, k, s)
        oh, ow = -(-h // s), -(-w // s)
    else:
        pt = pl = 0
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, oh, ow, c), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s - pt, j * s - pl
            win = x[:, max(r0, 0):min(r0 + k, h), max(c0, 0):min(c0 + k, w), :]
            out[:, i, j, :] = win.max(axis=(1, 2)) if how == "max" else win.mean(axis=(1, 2))
    return out


# -- activations -------------------------------------------------------------------------------------------


ACTS = {
    "relu": (tf.nn.relu, lambda x: np.maximum(x, 0)),
    "relu6": (tf.nn.relu6, lambda x: np.clip(x, 0, 6)),
    "elu": (tf.nn.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "softplus": (tf.nn.softplus, lambda x: np.log1p(np.exp(x))),
    "leaky_relu": (tf.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    "sigmoid": (tf.nn.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (tf.nn.tanh, np.tanh),
}


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations(name: str, dtype: type) -> None:
    fn, ref = ACTS[name]
    x = (rng.randn(3, 5) * 4).astype(dtype)
    x[0, :2] = [0.0, 7.0]
    got = run(fn(x))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=1e-6 if dtype == np.float32 else 1e-12,
                               atol=1e-7)


def test_activation_extremes_and_dtypes() -> None:
    x = np.array([-1000.0, 1000.0, 0.0], np.float32)
    np.testing.assert_allclose(run(tf.nn.softplus(x)), [0.0, 1000.0, np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(run(tf.nn.leaky_relu(x, alpha=0.5)), [-500.0, 1000.0, 0.0])
    assert run(tf.nn.relu(np.array([-3, 4], np.int32))).tolist() == [0, 4]
    with pytest.raises(TypeError, match="not in list of allowed values"):
        tf.nn.elu(tf.constant([1, 2]))


def test_softmax_and_log_softmax() -> None:
    x = rng.randn(4, 6) * 30
    e = np.exp(x - x.max(-1, keepdims=True))
    sm = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(run(tf.nn.softmax(x)), sm, rtol=1e-12)
    np.testing.assert_allclose(run(tf.nn.log_softmax(x)), np.log(sm), rtol=1e-10, atol=1e-12)
    e0 = np.exp(x - x.max(0, keepdims=True))
    np.testing.assert_allclose(run(tf.nn.softmax(x, axis=0)), e0 / e0.sum(0, keepdims=True), rtol=1e-12)
    assert np.isfinite(run(tf.nn.softmax(np.float32([1e4, -1e4])))).all()
    with pytest.raises(ValueError, match="at least rank 1"):
        tf.nn.softmax(tf.constant(1.0))


def test_bias_add() -> None:
    v, b = rng.randn(2, 3, 4).astype(np.float32), rng.randn(4).astype(np.float32)
    np.testing.assert_array_equal(run(tf.nn.bias_add(v, b)), v + b)
    bc = rng.randn(3).astype(np.float32)
    np.testing.assert_array_equal(run(tf.nn.bias_add(v, bc, data_format="NCHW")), v + bc[None, :, None])
    with pytest.raises(ValueError, match="Dimensions must be equal, but are 4 and 3"):
        tf.nn.bias_add(v, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="rank 1"):
        tf.nn.bias_add(v, np.zeros((1, 4), np.float32))
    p = tf.placeholder(tf.float32, [None, None])
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many biases"):
        run(tf.nn.bias_add(p, b), {p: np.zeros((2, 3), np.float32)})


# -- conv2d ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_conv2d_matches_direct_loops(padding: str, stride: int, k: int) -> None:
    x = rng.randn(2, 7, 6, 3)
    w = rng.randn(k, k + 1, 3, 4)
    got = run(tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding=padding))
    np.testing.assert_allclose(got, ref_conv(x, w, stride, padding), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_dilated_and_float32(padding: str) -> None:
    x = rng.randn(1, 9, 8, 2)
    w = rng.randn(3, 2, 2, 5)
    got = run(tf.nn.conv2d(x.astype(np.float32), w.astype(np.float32), [1, 1, 1, 1], padding,
                           dilations=[1, 2, 2, 1]))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref_conv(x, w, 1, padding, dil=2), rtol=1e-4, atol=1e-4)


def test_conv2d_shapes_and_errors() -> None:
    p = tf.placeholder(tf.float32, [None, 28, 28, 1])
    w = tf.zeros([5, 5, 1, 32])
    assert tf.nn.conv2d(p, w, [1, 1, 1, 1], "SAME").shape.as_list() == [None, 28, 28, 32]
    assert tf.nn.conv2d(p, w, [1, 2, 2, 1], "VALID").shape.as_list() == [None, 12, 12, 32]
    with pytest.raises(ValueError, match="Depth of input"):
        tf.nn.conv2d(p, tf.zeros([3, 3, 2, 4]), [1, 1, 1, 1], "SAME")
    with pytest.raises(ValueError, match="rank 4"):
        tf.nn.conv2d(tf.zeros([28, 28, 1]), w, [1, 1, 1, 1], "SAME")
    with pytest.raises(ValueError, match="padding"):
        tf.nn.conv2d(p, w, [1, 1, 1, 1], "FULL")
    with pytest.raises(ValueError, match="Negative dimension size"):
        tf.nn.conv2d(tf.zeros([1, 3, 3, 1]), w, [1, 1, 1, 1], "VALID")
    with pytest.raises(ValueError, match="batch and depth"):
        tf.nn.conv2d(p, w, [2, 1, 1, 1], "SAME")
    q = tf.placeholder(tf.float32, [None, None, None, None])
    with pytest.raises(tf.errors.InvalidArgumentError, match="filter depth"):
        run(tf.nn.conv2d(q, w, [1, 1, 1, 1], "SAME"), {q: np.zeros((1, 5, 5, 2), np.float32)})


# -- pooling -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["max", "avg"])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1), (1, 1)])
def test_pooling_matches_loops(how: str, padding: str, k: int, s: int) -> None:
    x = rng.randn(2, 7, 5, 3)
    fn = tf.nn.max_pool if how == "max" else tf.nn.avg_pool
    t = fn(x, ksize=[1, k, k, 1], strides=[1, s, s, 1], padding=padding)
    got = run(t)
    want = ref_pool(x, k, s, padding, how)
    assert t.shape.as_list() == list(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_pool_errors_and_int_max_pool() -> None:
    xi = np.arange(16, dtype=np.int32).reshape(1, 4, 4, 1)
    assert run(tf.nn.max_pool(xi, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")).reshape(-1).tolist() == [5, 7, 13, 15]
    with pytest.raises(ValueError, match="batch or depth"):
        tf.nn.max_pool(xi, [2, 2, 2, 1], [1, 1, 1, 1], "SAME")
    with pytest.raises(ValueError, match="Negative dimension size"):
        tf.nn.avg_pool(np.zeros((1, 2, 2, 1), np.float32), [1, 3, 3, 1], [1, 1, 1, 1], "VALID")


# -- dropout / l2_loss / moments ---------------------------------------------------------------------------------


def test_dropout() -> None:
    x = np.ones((200, 50), np.float32)
    t = tf.nn.dropout(x, keep_prob=0.25, seed=3)
    with tf.Session() as sess:
        a, b = sess.run(t), sess.run(t)
    assert set(np.unique(a).tolist()) <= {0.0, 4.0}
    assert 0.2 < (a > 0).mean() < 0.3
    assert not np.array_equal(a, b)
    tf.set_random_seed(1)
    t2 = tf.nn.dropout(x, rate=0.75, seed=3)
    assert 0.2 < (run(t2) > 0).mean() < 0.3
    assert tf.nn.dropout(tf.constant(x), keep_prob=1.0).op.type == "Const"
    with pytest.raises(ValueError, match="keep_prob"):
        tf.nn.dropout(x, keep_prob=1.5)
    with pytest.raises(ValueError, match="both"):
        tf.nn.dropout(x, keep_prob=0.5, rate=0.5)


def test_dropout_same_seed_same_mask() -> None:
    tf.set_random_seed(5)
    t = tf.nn.dropout(np.ones((30, 30), np.float32), keep_prob=0.5, seed=1)
    v1 = run(t)
    v2 = run(t)  # a new session starts the op's generator again
    np.testing.assert_array_equal(v1, v2)


def test_dropout_noise_shape_broadcasts() -> None:
    t = tf.nn.dropout(np.ones((4, 100), np.float32), keep_prob=0.5, noise_shape=[1, 100], seed=2)
    v = run(t)
    assert (v == v[0]).all()


def test_l2_loss_and_moments() -> None:
    x = rng.randn(4, 5)
    assert np.isclose(run(tf.nn.l2_loss(x)), (x ** 2).sum() / 2, rtol=1e-12)
    assert run(tf.nn.l2_loss(x.astype(np.float32))).dtype == np.float32
    m, v = run(tf.nn.moments(x, [0]))
    np.testing.assert_allclose(m, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(v, x.var(0), rtol=1e-12)
    m, v = tf.nn.moments(tf.constant(x), [0, 1], keep_dims=True)
    assert m.shape.as_list() == [1, 1]
    np.testing.assert_allclose(run(v), x.var().reshape(1, 1), rtol=1e-12)


# -- cross entropies -----------------------------------------------------------------------------------


def _log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


def test_softmax_cross_entropy() -> None:
    logits = rng.randn(5, 4) * 10
    labels = rng.dirichlet(np.ones(4), 5)
    want = -(labels * _log_softmax(logits)).sum(-1)
    for fn in (tf.nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits_v2):
        t = fn(labels=labels, logits=logits)
        assert t.shape.as_list() == [5]
        np.testing.assert_allclose(run(t), want, rtol=1e-10)
    op = t.op
    assert op.type == "SoftmaxCrossEntropyWithLogits" and len(op.outputs) == 2
    np.testing.assert_allclose(run(op.outputs[1]), np.exp(_log_softmax(logits)) - labels, rtol=1e-10, atol=1e-12)
    l3 = rng.randn(2, 3, 4)
    y3 = rng.dirichlet(np.ones(4), (2, 3))
    np.testing.assert_allclose(run(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y3, logits=l3)),
                               -(y3 * _log_softmax(l3)).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(run(tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels.T, logits=logits.T,
                                                                              axis=0)), want, rtol=1e-10)
    with pytest.raises(ValueError, match="named arguments"):
        tf.nn.softmax_cross_entropy_with_logits(labels, logits)
    with pytest.raises(ValueError, match="incompatible"):
        tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels[:, :3], logits=logits)


def test_sparse_softmax_cross_entropy() -> None:
    logits = rng.randn(5, 4).astype(np.float32)
    labels = np.array([0, 3, 1, 1, 2])
    t = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    want = -_log_softmax(logits.astype(np.float64))[np.arange(5), labels]
    got = run(t)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)
    l3 = rng.randn(2, 3, 4)
    y3 = rng.randint(0, 4, (2, 3))
    got3 = run(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y3, logits=l3))
    want3 = -np.take_along_axis(_log_softmax(l3), y3[..., None], -1)[..., 0]
    np.testing.assert_allclose(got3, want3, rtol=1e-10)
    with pytest.raises(ValueError, match="Rank mismatch"):
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[[1]], logits=logits)


def test_sparse_softmax_cross_entropy_label_out_of_range() -> None:
    lab = tf.placeholder(tf.int32, [3])
    t = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=np.zeros((3, 4), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Received a label value of 4 which is outside the valid range of \[0, 4\)"):
        run(t, {lab: [0, 4, 1]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="label value of -1"):
        run(t, {lab: [-1, 0, 1]})


def test_sigmoid_cross_entropy() -> None:
    x = np.array([-800.0, -2.0, 0.0, 3.0, 800.0])
    z = np.array([0.0, 1.0, 0.5, 0.2, 1.0])
    want = np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))
    got = run(tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isfinite(got).all()
    with pytest.raises(ValueError, match="same shape"):
        tf.nn.sigmoid_cross_entropy_with_logits(labels=z[:2], logits=x)


def test_conveniences() -> None:
    x, w, b = rng.randn(2, 3), rng.randn(3, 4), rng.randn(4)
    np.testing.assert_allclose(run(tf.nn.xw_plus_b(x, w, b)), x @ w + b, rtol=1e-12)
    np.testing.assert_array_equal(run(tf.nn.embedding_lookup(w, [2, 0])), w[[2, 0]])
    np.testing.assert_allclose(run(tf.nn.l2_normalize(x, 1)), x / np.linalg.norm(x, axis=1, keepdims=True),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8])
def test_top_k(dtype: type) -> None:
    x = np.array([[1, 3, 3, 2], [5, 1, 0, 5]], dtype)
    v, i = tf.nn.top_k(x, 3)
    assert v.shape.as_list() == [2, 3]
    got_v, got_i = run([v, i])
    assert got_v.dtype == dtype and got_i.dtype == np.int32
    assert got_i.tolist() == [[1, 2, 3], [0, 3, 1]]  # ties: lower index first
    np.testing.assert_array_equal(got_v, np.take_along_axis(x, got_i, -1))
    with pytest.raises(ValueError, match="at least k columns"):
        tf.nn.top_k(x, 5)


def test_in_top_k() -> None:
    x = np.array([[1.0, 3, 3, 2], [5, 1, 0, np.nan], [0, 1, 2, 3]], np.float32)
    assert run(tf.nn.in_top_k(x, [2, 0, 3], 1)).tolist() == [True, False, True]  # ties count; NaN rows never
    assert run(tf.nn.in_top_k(x, [3, 0, 1], 2)).tolist() == [False, False, False]
    assert run(tf.nn.in_top_k(x, [0, 0, 9], 4)).tolist() == [True, False, False]  # out-of-range target


def test_conv2d_work_buffer_shared_safely() -> None:
    """Convolutions reuse one work buffer per thread: results of several convs in one run stay intact."""
    import threading

    x1, w1 = rng.randn(2, 6, 6, 3), rng.randn(3, 3, 3, 4)
    x2, w2 = rng.randn(1, 9, 9, 2), rng.randn(2, 2, 2, 3)
    x1t, w1t = tf.constant(x1), tf.constant(w1)
    c1 = tf.nn.conv2d(x1t, w1t, [1, 1, 1, 1], "SAME")
    c2 = tf.nn.conv2d(x2, w2, [1, 2, 2, 1], "VALID")
    grads = tf.gradients(tf.reduce_sum(c1 * c1), [x1t, w1t])
    want1, want2 = ref_conv(x1, w1, 1, "SAME"), ref_conv(x2, w2, 2, "VALID")
    errors: list[BaseException] = []
    with tf.Session() as sess:
        want_g = sess.run(grads)

        def work() -> None:
            try:
                for _ in range(5):
                    a, b, gx, gw = sess.run([c1, c2] + grads)
                    np.testing.assert_allclose(a, want1, rtol=1e-10, atol=1e-10)
                    np.testing.assert_allclose(b, want2, rtol=1e-10, atol=1e-10)
                    np.testing.assert_array_equal(gx, want_g[0])
                    np.testing.assert_array_equal(gw, want_g[1])
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


def test_conv2d_transpose_is_the_adjoint_of_conv2d() -> None:
    """<conv2d(x, w), y> == <x, conv2d_transpose(y, w)> for every x, y."""
    x, w = rng.randn(2, 7, 6, 3), rng.randn(3, 2, 3, 4)
    for stride, padding in ((1, "SAME"), (2, "SAME"), (2, "VALID")):
        cx = run(tf.nn.conv2d(x, w, [1, stride, stride, 1], padding))
        y = rng.randn(*cx.shape)
        t = tf.nn.conv2d_transpose(y, w, list(x.shape), [1, stride, stride, 1], padding)
        assert t.shape.as_list() == list(x.shape)
        np.testing.assert_allclose(np.sum(cx * y), np.sum(x * run(t)), rtol=1e-10)
    with pytest.raises(ValueError, match="channels"):
        tf.nn.conv2d_transpose(rng.randn(1, 3, 3, 5), w, [1, 6, 6, 3], [1, 2, 2, 1])


def test_conv2d_backprop_shape_mismatch_is_an_error() -> None:
    y = tf.placeholder(tf.float64, [None, None, None, None])
    w = rng.randn(3, 3, 2, 4)
    t = tf.nn.conv2d_transpose(y, w, [1, 6, 6, 2], [1, 2, 2, 1], "SAME")
    with pytest.raises(tf.errors.InvalidArgumentError, match="out_backprop has shape \\[1,2,2,4\\]"):
        run(t, {y: np.zeros((1, 2, 2, 4))})
    assert run(t, {y: np.zeros((1, 3, 3, 4))}).shape == (1, 6, 6, 2)
