"""Array ops against NumPy: values, dtypes, static shapes, and errors at build and run time."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def run(t: Any, feed: dict | None = None) -> Any:
    with tf.Session() as sess:
        return sess.run(t, feed)


def check(t: tf.Tensor, want: Any, feed: dict | None = None) -> None:
    """Value and dtype equal `want`; the static shape is compatible with the computed one."""
    got = run(t, feed)
    want = np.asarray(want)
    assert t.shape.is_compatible_with(want.shape), (t.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


# -- expand_dims / squeeze / transpose -------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 3, -1, -4])
def test_expand_dims(axis: int) -> None:
    t = tf.expand_dims(tf.constant(X), axis)
    check(t, np.expand_dims(X, axis))
    assert t.shape.as_list() == list(np.expand_dims(X, axis).shape)


def test_expand_dims_errors() -> None:
    with pytest.raises(ValueError, match="dim 4 not in the interval"):
        tf.expand_dims(tf.constant(X), 4)
    p = tf.placeholder(tf.int32, [])
    with pytest.raises(tf.errors.InvalidArgumentError, match="expand dim index 7"):
        run(tf.expand_dims(tf.constant(X), p), {p: 7})


def test_squeeze() -> None:
    y = X.reshape(1, 2, 1, 12)
    check(tf.squeeze(y), y.squeeze())
    check(tf.squeeze(y, [2]), y.squeeze(2))
    check(tf.squeeze(y, axis=-4), y.squeeze(0))
    with pytest.raises(ValueError, match="Can not squeeze dim\\[1\\], expected a dimension of 1, got 2"):
        tf.squeeze(y, [1])
    p = tf.placeholder(tf.float32, [None, 3])
    assert tf.squeeze(p, [0]).shape.as_list() == [3]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Can not squeeze dim\\[0\\]"):
        run(tf.squeeze(p, [0]), {p: np.zeros((2, 3), np.float32)})


def test_squeeze_unknown_dims_unknown_result() -> None:
    p = tf.placeholder(tf.float32, [None, 1])
    assert tf.squeeze(p).shape.ndims is None
    check(tf.squeeze(p), np.zeros(3, np.float32), {p: np.zeros((3, 1), np.float32)})


def test_transpose() -> None:
    check(tf.transpose(X), X.T)
    check(tf.transpose(X, [1, 0, 2]), X.transpose(1, 0, 2))
    with pytest.raises(ValueError, match="Dimension must be 3 but is 2"):
        tf.transpose(X, [1, 0])
    with pytest.raises(ValueError, match="not a valid permutation"):
        tf.transpose(X, [0, 0, 1])
    perm = tf.placeholder(tf.int32, [3])
    check(tf.transpose(X, perm), X.transpose(2, 0, 1), {perm: [2, 0, 1]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="permutation"):
        run(tf.transpose(X, perm), {perm: [2, 2, 1]})


def test_transpose_of_unknown_rank() -> None:
    p = tf.placeholder(tf.int32)
    v = np.arange(6, dtype=np.int32).reshape(1, 2, 3)
    check(tf.transpose(p), v.T, {p: v})
    check(tf.invert_permutation([2, 0, 1]), np.array([1, 2, 0], np.int32))


# -- concat / stack / unstack / split -----------------------------------------------------------------------------


def test_concat() -> None:
    a, b = X, X[:, :2] + 100
    check(tf.concat([a, b], 1), np.concatenate([a, b], 1))
    check(tf.concat([a, a], -1), np.concatenate([a, a], -1))
    check(tf.concat([tf.constant([1, 2]), [3]], 0), np.array([1, 2, 3], np.int32))
    assert tf.concat([a], 0).op.type == "Identity"


def test_concat_errors_and_partial_shapes() -> None:
    with pytest.raises(ValueError, match="Dimension 0 in both shapes must be equal"):
        tf.concat([X, X[:1]], 1)
    with pytest.raises(ValueError, match="Shape must be rank"):
        tf.concat([X, X[0]], 0)
    with pytest.raises(TypeError, match="does not match type"):
        tf.concat([tf.constant([1.0]), tf.constant([1])], 0)
    p = tf.placeholder(tf.float32, [None, 4])
    t = tf.concat([p, tf.zeros([2, 4])], 0)
    assert t.shape.as_list() == [None, 4]
    q = tf.placeholder(tf.float32, [None, None])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Dimensions of inputs should match"):
        run(tf.concat([q, tf.zeros([2, 4])], 0), {q: np.zeros((1, 3), np.float32)})


def test_stack_unstack() -> None:
    check(tf.stack([X, X + 1], axis=1), np.stack([X, X + 1], 1))
    check(tf.stack([1, 2, 3]), np.array([1, 2, 3], np.int32))
    p = tf.placeholder(tf.float32, [])
    check(tf.stack([p, 2.0]), np.array([5, 2], np.float32), {p: 5.0})
    parts = tf.unstack(tf.constant(X), axis=-1)
    assert len(parts) == 4 and parts[0].shape.as_list() == [2, 3]
    for i, t in enumerate(parts):
        check(t, X[..., i])
    with pytest.raises(ValueError, match="Shapes must be equal rank"):
        tf.stack([X, X[0]])
    with pytest.raises(ValueError, match="Cannot infer num"):
        tf.unstack(tf.placeholder(tf.float32, [None, 2]))


def test_split() -> None:
    outs = tf.split(X, 2, axis=2)
    for t, w in zip(outs, np.split(X, 2, axis=2)):
        check(t, w)
    outs = tf.split(X, [1, -1, 1], axis=2)
    assert [o.shape.as_list() for o in outs] == [[2, 3, 1], [2, 3, 2], [2, 3, 1]]
    for t, w in zip(outs, np.split(X, [1, 3], axis=2)):
        check(t, w)
    with pytest.raises(ValueError, match="evenly divisible by 3 but is 4"):
        tf.split(X, 3, axis=2)
    with pytest.raises(ValueError, match="Determined shape must either match"):
        tf.split(X, [1, 1], axis=2)
    p = tf.placeholder(tf.float32, [2, None])
    with pytest.raises(tf.errors.InvalidArgumentError, match="evenly divide"):
        run(tf.split(p, 2, axis=1)[0], {p: np.zeros((2, 3), np.float32)})


# -- slice / strided slice / indexing ----------------------------------------------------------------------


def test_slice() -> None:
    check(tf.slice(X, [0, 1, 1], [-1, 2, 2]), X[:, 1:3, 1:3])
    with pytest.raises(ValueError, match="Expected begin\\[1\\] in \\[0, 3\\]"):
        tf.slice(X, [0, 2, 0], [1, 2, 1])
    b = tf.placeholder(tf.int32, [3])
    t = tf.slice(X, b, [1, 2, 1])
    assert t.shape.as_list() == [1, 2, 1]
    check(t, X[1:2, 0:2, 3:4], {b: [1, 0, 3]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected begin\\[2\\] in \\[0, 4\\]"):
        run(t, {b: [0, 0, 4]})


KEYS = [
    1, -1, (slice(None), 1), (Ellipsis, 1), (None, 0, slice(None, None, -1)),
    (slice(1, None), slice(None, None, 2), -1), (0, Ellipsis, None, slice(-3, -1)),
    (slice(None, None, -2), slice(5, 0, -1)), (Ellipsis,), (slice(-100, 100),), (1, 2, 3),
    (None, None, Ellipsis, None),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_getitem_matches_numpy(key: Any) -> None:
    t = tf.constant(X)[key]
    check(t, X[key])
    assert t.shape.as_list() == list(np.asarray(X[key]).shape)
    assert t.op.type == "StridedSlice"


def test_getitem_with_tensor_indices_and_bounds() -> None:
    i = tf.placeholder(tf.int32, [])
    t = tf.constant(X)[i, i:]
    assert t.shape.as_list() == [None, 4]
    check(t, X[1, 1:], {i: 1})
    check(tf.constant(X)[i], X[-2], {i: -2})
    with pytest.raises(tf.errors.InvalidArgumentError, match="slice index 2 of dimension 0 out of bounds"):
        run(tf.constant(X)[i], {i: 2})
    with pytest.raises(ValueError, match="out of bounds"):
        tf.constant(X)[5]
    with pytest.raises(TypeError, match="valid indices"):
        tf.constant(X)[[0, 1]]
    with pytest.raises(TypeError, match="valid indices"):
        tf.constant(X)[1.5]
    i64 = tf.placeholder(tf.int64, [])
    check(tf.constant(X)[0, i64], X[0, 2], {i64: 2})


def test_getitem_partial_shape_and_zero_step() -> None:
    p = tf.placeholder(tf.float32, [None, 3])
    assert p[:, 1].shape.as_list() == [None]
    assert p[1:, ::2].shape.as_list() == [None, 2]
    with pytest.raises(ValueError, match="step cannot be zero"):
        p[::0]


def test_strided_slice_direct_masks() -> None:
    t = tf.strided_slice(X, [1, 0, 0], [2, 0, 3], [1, 1, 2], begin_mask=0, end_mask=2, shrink_axis_mask=1)
    check(t, X[1, :, 0:3:2])
    s = tf.placeholder(tf.int32, [3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="strides\\[1\\] must be non-zero"):
        run(tf.strided_slice(X, [0, 0, 0], [1, 1, 1], s), {s: [1, 0, 1]})


def test_variable_getitem() -> None:
    v = tf.Variable(X)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(v[1, :, 2]), X[1, :, 2])


# -- gather / segment sums ---------------------------------------------------------------------------------


def test_gather() -> None:
    check(tf.gather(X, [1, 0, 1]), X[[1, 0, 1]])
    check(tf.gather(X, [[2, 0], [1, 1]], axis=1), np.take(X, [[2, 0], [1, 1]], axis=1))
    check(tf.gather(X, 3, axis=-1), X[..., 3])
    check(tf.gather(tf.constant([b"a", b"b"]), [1, 1]), np.array([b"b", b"b"], dtype=object))


def test_gather_out_of_range_is_an_error() -> None:
    idx = tf.placeholder(tf.int32, [2, 2])
    g = tf.gather(X, idx, axis=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1,0\] = 3 is not in \[0, 3\)") as e:
        run(g, {idx: [[0, 1], [3, 0]]})
    assert "GatherV2" in str(e.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[0,0\] = -1 is not in \[0, 3\)"):
        run(g, {idx: [[-1, 1], [2, 0]]})
    with pytest.raises(ValueError, match="out of range"):
        tf.gather(X, [0], axis=3)


def test_unsorted_segment_sum() -> None:
    data = np.arange(12, dtype=np.float64).reshape(4, 3)
    ids = [0, 2, 0, -1]
    want = np.zeros((3, 3))
    for r, i in enumerate(ids):
        if i >= 0:
            want[i] += data[r]
    check(tf.unsorted_segment_sum(data, ids, 3), want)
    with pytest.raises(tf.errors.InvalidArgumentError, match="is not in \\[0, 3\\)"):
        run(tf.unsorted_segment_sum(data, [0, 5, 0, 0], 3))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.complex64])
def test_unsorted_segment_sum_adds_each_segment_in_row_order(dtype: Any) -> None:
    """Many repeated ids, rank-2 ids, dropped negative ids: the sums equal row-by-row accumulation exactly."""
    rng = np.random.default_rng(5)
    ids = rng.integers(-1, 6, size=(9, 7))
    data = (rng.normal(size=(9, 7, 4)) * 10.0 ** rng.integers(-4, 5, size=(9, 7, 4))).astype(dtype)
    want = np.zeros((8, 4), dtype)
    for i, row in zip(ids.reshape(-1), data.reshape(-1, 4)):
        if i >= 0:
            want[i] = want[i] + row
    got = run(tf.unsorted_segment_sum(data, ids, 8))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


# -- tile / pad / broadcast_to ---------------------------------------------------------------------------------


def test_tile() -> None:
    check(tf.tile(X, [1, 2, 3]), np.tile(X, [1, 2, 3]))
    check(tf.tile([[1, 2]], [2, 0]), np.zeros((2, 0), np.int32))
    with pytest.raises(ValueError, match="multiples must have one entry"):
        tf.tile(X, [1, 2])
    m = tf.placeholder(tf.int32, [3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative"):
        run(tf.tile(X, m), {m: [1, -1, 1]})


@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "SYMMETRIC", "reflect"])
def test_pad_modes(mode: str) -> None:
    pads = [[0, 1], [2, 1], [1, 3]]
    np_mode = {"CONSTANT": "constant", "REFLECT": "reflect", "SYMMETRIC": "symmetric"}[mode.upper()]
    check(tf.pad(X, pads, mode), np.pad(X, pads, mode=np_mode))


def test_pad_constant_values_and_errors() -> None:
    check(tf.pad(X, [[1, 1], [0, 0], [0, 2]], constant_values=-5), np.pad(X, [[1, 1], [0, 0], [0, 2]],
                                                                           constant_values=-5))
    with pytest.raises(ValueError, match="paddings must be no greater than the dimension size"):
        tf.pad(X, [[0, 0], [3, 0], [0, 0]], "REFLECT")
    with pytest.raises(ValueError, match="paddings must be a matrix"):
        tf.pad(X, [[0, 0], [3, 0]])
    with pytest.raises(ValueError, match="Unknown padding mode"):
        tf.pad(X, [[0, 0]] * 3, "WRAP")
    p = tf.placeholder(tf.int32, [3, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative"):
        run(tf.pad(X, p), {p: [[0, 0], [-1, 0], [0, 0]]})


def test_broadcast_to() -> None:
    check(tf.broadcast_to([1, 2, 3], [2, 3]), np.broadcast_to(np.int32([1, 2, 3]), [2, 3]))
    check(tf.broadcast_to(X[:, :1], [5, 2, 3, 4]), np.broadcast_to(X[:, :1], [5, 2, 3, 4]))
    with pytest.raises(ValueError, match="Incompatible shapes"):
        tf.broadcast_to([1, 2, 3], [2, 4])
    s = tf.placeholder(tf.int32, [2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Incompatible shapes"):
        run(tf.broadcast_to([1, 2, 3], s), {s: [2, 2]})


# -- one_hot / range / linspace -----------------------------------------------------------------------------


def test_one_hot() -> None:
    check(tf.one_hot([0, 2, 5, -1], 3), np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]], np.float32))
    check(tf.one_hot([0, 2], 3, axis=0, dtype=tf.int32), np.array([[1, 0], [0, 0], [0, 1]], np.int32))
    check(tf.one_hot([[1]], 2, on_value=5.0, off_value=-1.0, dtype=tf.float64),
          np.array([[[-1, 5]]], np.float64))
    check(tf.one_hot([1], 2, on_value=tf.constant(7, tf.int64), off_value=tf.constant(0, tf.int64)),
          np.array([[0, 7]], np.int64))
    with pytest.raises(TypeError):
        tf.one_hot([1.5], 3)


def test_range() -> None:
    check(tf.range(5), np.arange(5, dtype=np.int32))
    check(tf.range(1, 2, 0.25), np.arange(1, 2, 0.25, dtype=np.float32))
    check(tf.range(10, 1, -3), np.arange(10, 1, -3, dtype=np.int32))
    check(tf.range(3, dtype=tf.float64), np.arange(3, dtype=np.float64))
    check(tf.range(tf.constant(4, tf.int64)), np.arange(4, dtype=np.int64))
    with pytest.raises(ValueError, match="Requires delta != 0"):
        tf.range(0, 5, 0)
    d = tf.placeholder(tf.int32, [])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Requires delta != 0"):
        run(tf.range(0, 5, d), {d: 0})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Requires start <= limit"):
        run(tf.range(5, 0, d), {d: 1})


def test_linspace() -> None:
    check(tf.linspace(0.0, 1.0, 5), np.linspace(0, 1, 5, dtype=np.float32))
    check(tf.lin_space(tf.constant(2.0, tf.float64), 3.0, 3), np.linspace(2, 3, 3))
    with pytest.raises(TypeError):
        tf.linspace(0, 1, 3)
    n = tf.placeholder(tf.int32, [])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Requires num > 0"):
        run(tf.linspace(0.0, 1.0, n), {n: 0})


# -- composites ------------------------------------------------------------------------------------------


def test_boolean_mask() -> None:
    mask = np.array([[True, False, True], [False, False, True]])
    t = tf.boolean_mask(X, mask)
    assert t.shape.as_list() == [3, 4]
    check(t, X[mask])
    m = tf.placeholder(tf.bool, [2])
    check(tf.boolean_mask(X, m), X[[False, True]], {m: [False, True]})
    check(tf.boolean_mask(X, [True, False, True], axis=1), X[:, [True, False, True]])
    with pytest.raises(ValueError, match="incompatible"):
        tf.boolean_mask(X, [True, False, True])


@pytest.mark.parametrize("axes", [1, 0, [[0, 2], [1, 0]], [[2], [0]]])
def test_tensordot(axes: Any) -> None:
    rng = np.random.RandomState(0)
    a = rng.randn(3, 4, 5)
    b_shapes = {1: (5, 2), 0: (2,), 2: None}
    if isinstance(axes, int):
        b = rng.randn(*b_shapes[axes])
    else:
        b = rng.randn(*([5, 3, 2] if axes[0] == [0, 2] else [5, 2]))
    got = run(tf.tensordot(a, b, axes))
    np.testing.assert_allclose(got, np.tensordot(a, b, axes), rtol=1e-12)
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        tf.tensordot(a, rng.randn(4, 2), 1)


def test_tensordot_dynamic_batch() -> None:
    p = tf.placeholder(tf.float64, [None, 4])
    w = np.ones((4, 3))
    t = tf.tensordot(p, w, 1)
    x = np.arange(8.0).reshape(2, 4)
    np.testing.assert_allclose(run(t, {p: x}), x @ w)


# -- static shape inference (property tests) ---------------------------------------------------------------

dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=1, max_size=4)


def _maybe_unknown(shape: list[int], mask: list[bool]) -> list[int | None]:
    return [None if m else d for d, m in zip(shape, mask)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=shapes, mults=st.lists(st.integers(0, 3), min_size=4, max_size=4), data=st.data())
def test_tile_static_shape_matches_runtime(shape: list[int], mults: list[int], data: st.DataObject) -> None:
    mask = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    with tf.Graph().as_default():
        p = tf.placeholder(tf.float32, _maybe_unknown(shape, mask))
        t = tf.tile(p, mults[:len(shape)])
        val = np.zeros(shape, np.float32)
        got = run(t, {p: val})
        assert got.shape == np.tile(val, mults[:len(shape)]).shape
        assert t.shape.is_compatible_with(got.shape)
        for d, m, k, static in zip(shape, mask, mults, t.shape.as_list()):
            assert static == (None if m else d * k)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=shapes, data=st.data())
def test_getitem_static_shape_matches_numpy(shape: list[int], data: st.DataObject) -> None:
    n = len(shape)
    key: list[Any] = []
    for d in shape[:data.draw(st.integers(0, n))]:
        kind = data.draw(st.sampled_from(["int", "slice", "none"]))
        if kind == "int":
            key.append(data.draw(st.integers(-d, d - 1)))
        elif kind == "none":
            key.append(None)
            key.append(data.draw(st.integers(-d, d - 1)))
        else:
            lo = data.draw(st.one_of(st.none(), st.integers(-d - 2, d + 2)))
            hi = data.draw(st.one_of(st.none(), st.integers(-d - 2, d + 2)))
            step = data.draw(st.sampled_from([None, 1, 2, -1, -3]))
            key.append(slice(lo, hi, step))
    if data.draw(st.booleans()):
        key.insert(data.draw(st.integers(0, len(key))), Ellipsis)
    val = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    try:
        want = val[tuple(key)]
    except IndexError:  # an Ellipsis can shift an index onto a shorter dimension: both must refuse it
        with tf.Graph().as_default(), pytest.raises(ValueError, match="out of bounds"):
            tf.constant(val)[tuple(key)]
        return
    with tf.Graph().as_default():
        t = tf.constant(val)[tuple(key)]
        assert t.shape.as_list() == list(np.shape(want))
        np.testing.assert_array_equal(run(t), want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=shapes, extra=st.lists(dims, max_size=2), data=st.data())
def test_broadcast_to_static_shape(a: list[int], extra: list[int], data: st.DataObject) -> None:
    ones_mask = data.draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a)))
    src = [1 if m else d for d, m in zip(a, ones_mask)]
    target = extra + a
    with tf.Graph().as_default():
        t = tf.broadcast_to(np.zeros(src, np.int32), target)
        assert t.shape.as_list() == target
        assert run(t).shape == tuple(target)


# -- reverse / gather_nd / scatter_nd / sequence_mask -----------------------------------------------------------


def test_reverse() -> None:
    check(tf.reverse(X, [0, -1]), X[::-1, :, ::-1])
    check(tf.reverse(X, [1]), X[:, ::-1])
    with pytest.raises(ValueError, match="duplicates"):
        tf.reverse(X, [0, -3])
    with pytest.raises(ValueError, match="out of range"):
        tf.reverse(X, [3])


def test_gather_nd() -> None:
    check(tf.gather_nd(X, [[1, 2], [0, 0]]), X[[1, 0], [2, 0]])
    check(tf.gather_nd(X, [[[1, 2, 3]]]), X[1, 2, 3].reshape(1, 1))
    check(tf.gather_nd(X, [[1]]), X[[1]])
    idx = tf.placeholder(tf.int32, [None, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = \[0, 3\] does not index into param "
                                                             r"shape \[2,3,4\]"):
        run(tf.gather_nd(X, idx), {idx: [[1, 1], [0, 3]]})
    with pytest.raises(ValueError, match="must be <= params.rank"):
        tf.gather_nd(X, [[0, 0, 0, 0]])


def test_scatter_nd() -> None:
    check(tf.scatter_nd([[1], [3], [1]], [1.0, 2.0, 3.0], [5]), np.float32([0, 4, 0, 2, 0]))
    want = np.zeros((2, 3), np.int32)
    want[1] = [7, 8, 9]
    check(tf.scatter_nd([[1]], [[7, 8, 9]], [2, 3]), want)
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not index"):
        run(tf.scatter_nd([[5]], [1.0], [5]))


def test_sequence_mask() -> None:
    want = np.arange(4)[None, :] < np.array([1, 3, 0])[:, None]
    check(tf.sequence_mask([1, 3, 0], 4), want)
    check(tf.sequence_mask([1, 3, 0]), want[:, :3])
    check(tf.sequence_mask([2], 3, dtype=tf.float32), np.float32([[1, 1, 0]]))


def test_lists_holding_tensors_are_packed_as_tf_does() -> None:
    """`tf.reshape(x, [n, 2, 3])`, `tf.ones([n, 2])`, `tf.random_uniform([n, 4])` with `n = tf.shape(x)[0]`:
    the list becomes a Pack (ints in the tensors' dtype), and the known dims stay in the static shape."""
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 6])
    n = tf.shape(x)[0]
    outs = [tf.reshape(x, [n, 2, 3]), tf.ones([n, 2], tf.int32), tf.random_uniform([n, 4]),
            tf.zeros((3, n)), tf.convert_to_tensor([[n, 1], [2, n]])]
    assert [o.shape.as_list() for o in outs[:4]] == [[None, 2, 3], [None, 2], [None, 4], [3, None]]
    assert outs[4].op.type == "Pack" and outs[4].dtype == tf.int32 and outs[4].shape.as_list() == [2, 2]
    with tf.Session() as sess:
        got = sess.run(outs, {x: np.arange(30, dtype=np.float32).reshape(5, 6)})
    assert [g.shape for g in got] == [(5, 2, 3), (5, 2), (5, 4), (3, 5), (2, 2)]
    np.testing.assert_array_equal(got[0].reshape(5, 6), np.arange(30).reshape(5, 6))
    np.testing.assert_array_equal(got[4], [[5, 1], [2, 5]])
    with pytest.raises(TypeError, match="a list containing a tensor of dtype.*float32"):
        tf.convert_to_tensor([n, tf.constant(1.0)])  # one dtype for every item: TF's error
