"""Variable reads happen when their consumer runs (TF 1.x ref semantics), compiled and interpreted alike."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from tests.compiler.helpers import assert_same, run_both


def _fresh_run(fetches: object, jit: bool, runs: int = 1) -> list:
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.global_variables_initializer())
        return [sess.run(fetches) for _ in range(runs)]


def test_fetched_variable_and_ordered_read_see_the_update() -> None:
    v = tf.get_variable("v", shape=(), initializer=tf.zeros_initializer())
    assignment = v.assign_add(1)
    with tf.control_dependencies([assignment]):
        w = v.read_value()
        w3 = v + 0
    for jit in (True, False):
        assert _fresh_run([w, v], jit, 2) == [[1.0, 1.0], [2.0, 2.0]]
        assert _fresh_run([w3, v], jit) == [[1.0, 1.0]]


def test_read_in_a_cluster_after_a_fused_write_is_not_hoisted() -> None:
    v = tf.Variable(np.ones(4, np.float32), name="v")
    a = tf.assign(v, v * 3.0)
    r = a * 1.0 + v  # v is read when the add runs: after the assign
    c = tf.assign_add(v, np.ones(4, np.float32))
    r2 = tf.exp(c) * 0.0 + v
    for fetch, want in ((r, 6.0), (r2, 2.0)):
        got, ref, plan = run_both(fetch, init=True)
        assert_same(got, ref)
        np.testing.assert_array_equal(got, np.full(4, want, np.float32))


def test_read_before_write_still_fuses() -> None:
    v = tf.Variable(np.ones(8, np.float32), name="ema")
    upd = tf.assign(v, v * 0.9 + 0.5)
    got, ref, plan = run_both(upd, init=True)
    assert_same(got, ref)
    assert len(plan.report["clusters"]) == 1


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "set", "read"]), st.integers(-3, 3)), min_size=1, max_size=6),
       st.booleans())
def test_chained_reads_and_writes_follow_program_order(prog: list[tuple[str, int]], fetch_var: bool) -> None:
    """Each op is ordered after the previous one by control dependencies; reads see exactly the prior writes."""
    with tf.Graph().as_default():
        v = tf.Variable(np.zeros(3, np.float32), name="v")
        prev: list = []
        reads = []
        model, want = np.zeros(3, np.float32), []
        for kind, k in prog:
            with tf.control_dependencies(prev):
                if kind == "add":
                    op = tf.assign_add(v, np.full(3, k, np.float32))
                    model = model + k
                elif kind == "set":
                    op = tf.assign(v, v * 2.0 + k)
                    model = model * 2 + k
                else:
                    op = v * 2.0 + 1.0
                    reads.append(op)
                    want.append(model * 2 + 1)
            prev = [op]
        fetches = reads + [prev[0]] + ([v] if fetch_var else [])
        for jit in (True, False):
            (got,) = _fresh_run(fetches, jit)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
            if fetch_var:
                np.testing.assert_array_equal(got[-1], model)
