"""Gradients of the array and nn ops against central finite differences in float64.

Each check feeds inputs through placeholders, weights the output with fixed random numbers (so every
output element matters) and compares tf.gradients with (f(x+h) - f(x-h)) / 2h, one element at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import jitflow as tf
from tests.gradcheck import numeric_grad

rng = np.random.RandomState(0)


def check_grads(build: Callable[..., Any], *vals: np.ndarray, rtol: float = 1e-6, atol: float = 1e-8,
                shapes: Sequence[Any] | None = None) -> None:
    """tf.gradients of sum(w * build(*placeholders)) equals finite differences for every input."""
    arrs = [np.asarray(v, dtype=np.float64) for v in vals]
    with tf.Graph().as_default():
        phs = [tf.placeholder(tf.float64, a.shape if shapes is None else shapes[k]) for k, a in enumerate(arrs)]
        y = build(*phs)
        with tf.Session() as sess:
            shape = sess.run(y, dict(zip(phs, arrs))).shape
            w = np.random.RandomState(7).uniform(0.5, 1.5, shape)
            loss = tf.reduce_sum(y * w)
            grads = tf.gradients(loss, phs)
            assert all(g is not None for g in grads), grads
            got = sess.run(grads, dict(zip(phs, arrs)))
            for i, a in enumerate(arrs):
                assert got[i].shape == a.shape
                np.testing.assert_allclose(got[i], numeric_grad(sess, loss, phs, arrs, i), rtol=rtol, atol=atol,
                                           err_msg=f"input {i}")


X = rng.randn(3, 4, 2)

ARRAY_CASES: dict[str, tuple[Callable[..., Any], list[np.ndarray]]] = {
    "reshape": (lambda t: tf.reshape(t, [4, 6]), [X]),
    "expand_dims": (lambda t: tf.expand_dims(t, 1), [X]),
    "squeeze": (lambda t: tf.squeeze(t, [1]), [X[:, :1]]),
    "transpose": (lambda t: tf.transpose(t, [2, 0, 1]), [X]),
    "transpose_default": (lambda t: tf.transpose(t), [X]),
    "concat": (lambda a, b: tf.concat([a, b * 2.0, a], 1), [X, X[:, :1]]),
    "stack": (lambda a, b: tf.stack([a, b], -1), [X, X * 3]),
    "unstack": (lambda t: tf.unstack(t, axis=1)[2] * tf.unstack(t, axis=1)[0], [X]),
    "split": (lambda t: tf.split(t, 2, axis=1)[1], [X]),
    "split_v": (lambda t: tf.split(t, [1, -1], axis=1)[1] * 2.0, [X]),
    "slice": (lambda t: tf.slice(t, [1, 1, 0], [2, -1, 1]), [X]),
    "getitem": (lambda t: t[1:, ::-2, None, 1], [X]),
    "getitem_ellipsis": (lambda t: t[..., 0] + t[:, :, -1], [X]),
    "gather": (lambda t: tf.gather(t, [2, 0, 2]), [X]),
    "gather_axis1": (lambda t: tf.gather(t, [[2, 0], [1, 1]], axis=1), [X]),
    "gather_axis2": (lambda t: tf.gather(t, [1, 1, 0], axis=2), [X]),
    "tile": (lambda t: tf.tile(t, [2, 1, 3]), [X]),
    "pad": (lambda t: tf.pad(t, [[1, 0], [0, 2], [1, 1]]), [X]),
    "pad_v2": (lambda t: tf.pad(t, [[1, 0], [0, 2], [1, 1]], constant_values=2.0), [X]),
    "pad_reflect": (lambda t: tf.pad(t, [[2, 1], [0, 3], [1, 1]], "REFLECT"), [X]),
    "pad_symmetric": (lambda t: tf.pad(t, [[2, 3], [0, 4], [1, 2]], "SYMMETRIC"), [X]),
    "broadcast_to": (lambda t: tf.broadcast_to(t, [3, 3, 4, 2]), [X[:1]]),
    "identity": (lambda t: tf.identity(t) * t, [X]),
    "placeholder_with_default": (lambda t: tf.placeholder_with_default(t, [3, 4, 2]), [X]),
    "where": (lambda t: tf.where(t > 0, t, t * 3.0), [X]),
    "where_rows": (lambda t: tf.where(tf.constant([True, False, True]), t, -t), [X]),
    "where_v2_broadcast": (lambda a, b: tf.where_v2(a > 0, a, b), [X, X[:1, :, :1]]),
    "boolean_mask": (lambda t: tf.boolean_mask(t, [True, False, True]), [X]),
    "tensordot": (lambda a, b: tf.tensordot(a, b, [[1, 2], [1, 0]]), [X, rng.randn(2, 4)]),
    "unsorted_segment_sum": (lambda t: tf.unsorted_segment_sum(t, [0, 2, 0], 4), [X]),
    "fill": (lambda t: tf.fill([2, 3], t), [np.array(1.5)]),
    "reverse": (lambda t: tf.reverse(t, [0, 2]), [X]),
    "gather_nd": (lambda t: tf.gather_nd(t, [[1, 2], [0, 0], [1, 2]]), [X]),
    "scatter_nd": (lambda u: tf.scatter_nd([[1], [3], [1]], u, [5, 2]), [rng.randn(3, 2)]),
}


@pytest.mark.parametrize("name", sorted(ARRAY_CASES))
def test_array_op_gradient(name: str) -> None:
    build, vals = ARRAY_CASES[name]
    check_grads(build, *vals)


def test_gradient_with_unknown_shapes() -> None:
    check_grads(lambda t: tf.concat([t, t[:, :1]], 1), X[:, :, 0], shapes=[[None, None]])
    check_grads(lambda t: tf.slice(t, [0, 1], [-1, 2]), X[:, :, 0], shapes=[[None, 4]])
    check_grads(lambda t: tf.gather(t, [1, 0], axis=1), X, shapes=[[None, None, 2]])
    check_grads(lambda t: tf.tile(t, [2, 1]), X[:, :, 0], shapes=[[None, None]])
    check_grads(lambda t: t[1:, 2], X[:, :, 0], shapes=[[None, None]])


def test_cast_between_floats_passes_the_gradient_back() -> None:
    x = tf.placeholder(tf.float64, [3])
    gy = np.array([1.5, -2.0, 0.25], np.float32)
    g, = tf.gradients(tf.cast(x, tf.float32), [x], grad_ys=[gy])
    assert g.dtype == tf.float64
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(g, {x: np.zeros(3)}), gy.astype(np.float64))


def test_cast_to_int_has_no_gradient() -> None:
    x = tf.placeholder(tf.float64, [3])
    assert tf.gradients(tf.reduce_sum(tf.cast(tf.cast(x, tf.int32), tf.float64)), [x]) == [None]


def test_one_hot_range_shape_not_differentiable() -> None:
    x = tf.placeholder(tf.float64, [3])
    y = tf.one_hot(tf.cast(x, tf.int32), 3) + tf.cast(tf.shape(x)[0], tf.float32)
    assert tf.gradients(tf.reduce_sum(y), [x]) == [None]


A2 = rng.randn(3, 4)
IMG = rng.randn(2, 5, 5, 3)
FILT = rng.randn(3, 3, 3, 2)

NN_CASES: dict[str, tuple[Callable[..., Any], list[np.ndarray]]] = {
    "relu": (tf.nn.relu, [A2]),
    "relu6": (lambda t: tf.nn.relu6(t * 4.0), [A2]),
    "elu": (tf.nn.elu, [A2]),
    "softplus": (tf.nn.softplus, [A2]),
    "leaky_relu": (lambda t: tf.nn.leaky_relu(t, 0.1), [A2]),
    "softmax": (tf.nn.softmax, [A2]),
    "softmax_axis0": (lambda t: tf.nn.softmax(t, axis=0), [A2]),
    "log_softmax": (tf.nn.log_softmax, [A2]),
    "bias_add": (tf.nn.bias_add, [A2, rng.randn(4)]),
    "bias_add_4d": (tf.nn.bias_add, [IMG, rng.randn(3)]),
    "conv2d_same_s2": (lambda x, f: tf.nn.conv2d(x, f, [1, 2, 2, 1], "SAME"), [IMG, FILT]),
    "conv2d_valid": (lambda x, f: tf.nn.conv2d(x, f, [1, 1, 1, 1], "VALID"), [IMG, FILT]),
    "conv2d_dilated": (lambda x, f: tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME", dilations=[1, 2, 2, 1]),
                       [IMG, FILT]),
    "conv2d_transpose": (lambda v, f: tf.nn.conv2d_transpose(v, f, [2, 5, 5, 3], [1, 2, 2, 1], "SAME"),
                         [rng.randn(2, 3, 3, 2), FILT]),
    "conv2d_1x1": (lambda x, f: tf.nn.conv2d(x, f, [1, 1, 1, 1], "VALID"), [IMG, rng.randn(1, 1, 3, 2)]),
    "max_pool_same": (lambda t: tf.nn.max_pool(t, [1, 2, 2, 1], [1, 2, 2, 1], "SAME"), [IMG]),
    "max_pool_overlap": (lambda t: tf.nn.max_pool(t, [1, 3, 3, 1], [1, 1, 1, 1], "VALID"), [IMG]),
    "avg_pool_same": (lambda t: tf.nn.avg_pool(t, [1, 3, 3, 1], [1, 2, 2, 1], "SAME"), [IMG]),
    "avg_pool_valid": (lambda t: tf.nn.avg_pool(t, [1, 2, 2, 1], [1, 1, 1, 1], "VALID"), [IMG]),
    "l2_loss": (lambda t: tf.nn.l2_loss(t) * 1.0, [A2]),
    "moments_mean": (lambda t: tf.nn.moments(t, [0])[0], [A2]),
    "moments_var": (lambda t: tf.nn.moments(t, [0, 1])[1], [A2]),
    "softmax_xent_v2": (lambda lab, lg: tf.nn.softmax_cross_entropy_with_logits_v2(labels=lab, logits=lg),
                        [rng.dirichlet(np.ones(4), 3), A2]),
    "softmax_xent_3d": (lambda lg: tf.nn.softmax_cross_entropy_with_logits_v2(
        labels=np.eye(4)[[[0, 1], [2, 3]]], logits=lg), [rng.randn(2, 2, 4)]),
    "sparse_xent": (lambda lg: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[1, 3, 0], logits=lg), [A2]),
    "sigmoid_xent": (lambda lg, z: tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=lg * 5.0),
                     [A2, rng.uniform(0, 1, (3, 4))]),
    "l2_normalize": (lambda t: tf.nn.l2_normalize(t, 1), [A2]),
    "top_k": (lambda t: tf.nn.top_k(t, 2)[0], [A2]),
    "top_k_3d": (lambda t: tf.nn.top_k(t, 1)[0], [rng.randn(2, 3, 4)]),
}


@pytest.mark.parametrize("name", sorted(NN_CASES))
def test_nn_op_gradient(name: str) -> None:
    build, vals = NN_CASES[name]
    check_grads(build, *vals, rtol=1e-5, atol=1e-7)


def test_max_pool_ties_route_to_one_input() -> None:
    x = tf.constant(np.ones((1, 2, 2, 1)))
    g, = tf.gradients(tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"), [x])
    with tf.Session() as sess:
        assert sess.run(g).reshape(-1).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_v1_softmax_xent_stops_label_gradient() -> None:
    lab = tf.placeholder(tf.float64, [2, 3])
    lg = tf.placeholder(tf.float64, [2, 3])
    loss = tf.nn.softmax_cross_entropy_with_logits(labels=lab, logits=lg)
    g_lab, g_lg = tf.gradients(tf.reduce_sum(loss), [lab, lg])
    assert g_lab is None and g_lg is not None
    g2 = tf.gradients(tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits_v2(labels=lab, logits=lg)), [lab])
    assert g2[0] is not None


def test_relu_gradient_uses_fused_grad_op() -> None:
    x = tf.placeholder(tf.float32, [4])
    g, = tf.gradients(tf.nn.relu(x), [x])
    assert g.op.type == "ReluGrad"
    with tf.Session() as sess:
        got = sess.run(g, {x: np.array([-1, 0, 2, 3], np.float32)})
    assert got.dtype == np.float32 and got.tolist() == [0, 0, 1, 1]


def _backprop_output(kind: str) -> Callable[..., Any]:
    def build(lg: tf.Tensor, *rest: tf.Tensor) -> tf.Tensor:
        if kind == "sparse":
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[1, 3, 0], logits=lg)
        else:
            loss = tf.nn.softmax_cross_entropy_with_logits_v2(labels=rest[0], logits=lg)
        return loss.op.outputs[1] * 2.0 + tf.expand_dims(loss, -1)

    return build


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_cross_entropy_backprop_output_is_differentiable(kind: str) -> None:
    vals = [A2] if kind == "sparse" else [A2, rng.dirichlet(np.ones(4), 3)]
    check_grads(_backprop_output(kind), *vals, rtol=1e-5, atol=1e-7)
