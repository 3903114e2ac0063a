"""Property test: random elementwise/reduction graphs give the interpreter's results when compiled."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf
from tests.compiler.helpers import assert_same, run_both

UNARY = [tf.negative, tf.abs, tf.square, tf.tanh, tf.sigmoid, lambda t: tf.exp(tf.minimum(t, 5.0)),
         lambda t: tf.sqrt(tf.abs(t)), lambda t: tf.log1p(tf.abs(t))]
BINARY = [tf.add, tf.subtract, tf.multiply, tf.maximum, tf.minimum, tf.squared_difference,
          lambda a, b: tf.where_v2(a > b, a, b * 0.5)]
REDUCE = [tf.reduce_sum, tf.reduce_mean, tf.reduce_max, tf.reduce_min]

step = st.tuples(st.sampled_from(["u", "b", "r"]), st.integers(0, 7), st.integers(0, 100), st.integers(0, 100),
                 st.integers(0, 1))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=2, max_size=7), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16),
       st.sampled_from([4, 19]))
def test_random_graph_matches_interpreter(steps, dtype, seed, width) -> None:  # type: ignore[no-untyped-def]
    tf.reset_default_graph()
    dt = tf.as_dtype(dtype)
    x = tf.placeholder(dt, [None, width])  # 19: row reductions run their 8-lane loop and a tail
    y = tf.placeholder(dt, [width])
    s = tf.placeholder(dt, [])
    pool = [x, y, s]
    for kind, k, i, j, axis in steps:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        if kind == "u":
            pool.append(UNARY[k % len(UNARY)](a))
        elif kind == "b":
            pool.append(BINARY[k % len(BINARY)](a, b))
        elif a.shape.ndims == 2:
            pool.append(REDUCE[k % len(REDUCE)](a, axis=axis, keepdims=True))
    rng = np.random.default_rng(seed)
    feed = {x: rng.normal(0, 2, (3, width)).astype(dtype), y: rng.normal(0, 2, width).astype(dtype),
            s: dtype(rng.normal())}
    outs = pool[3:]
    got, want, plan = run_both(outs, feed)
    assert plan.report["fallbacks"] == []
    rtol = 2e-5 if dtype is np.float32 else 1e-12
    for g, w in zip(got, want):
        assert_same(g, w, rtol=rtol, atol=rtol)
