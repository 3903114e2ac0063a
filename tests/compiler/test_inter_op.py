"""Independent steps run at once (compiler/inter_op.py): the dependency graph, and the serial plan's results."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.compiler import inter_op
from jitflow.compiler.step import describe_step
from jitflow.explain import report_of
from tests.compiler.helpers import assert_same, last_plan


def _paths(g: inter_op.StepGraph) -> list[set[int]]:
    """For each step, the steps that must run before it (transitively)."""
    before: list[set[int]] = [set() for _ in range(g.n)]
    for i in range(g.n):  # plan order is a topological order
        for j in g.succs[i]:
            assert j > i, "a dependency points backwards in plan order"
            before[j] |= before[i] | {i}
    return before


def _index(plan: Any, name: str) -> int:
    hits = [k for k, st in enumerate(plan.steps) if any(op.name == name for op in st.ops)]
    assert hits, f"no step runs {name}: {[describe_step(s) for s in plan.steps]}"
    return hits[0]


def _ordered(plan: Any, first: str, then: str) -> bool:
    g = inter_op.StepGraph(plan.steps)
    return _index(plan, first) in _paths(g)[_index(plan, then)]


def _gan(seed: int = 0) -> tuple[list[Any], dict[Any, np.ndarray]]:
    """Two small discriminators on separate inputs, one generator, two Adam optimizers (dcgan's shape)."""
    tf.reset_default_graph()
    tf.set_random_seed(seed)
    noise = tf.placeholder(tf.float32, [None, 8])
    real = tf.placeholder(tf.float32, [None, 6, 6, 1])

    def disc(x: Any, reuse: bool = False) -> Any:
        with tf.variable_scope("D", reuse=reuse):
            x = tf.layers.average_pooling2d(tf.nn.tanh(tf.layers.conv2d(x, 4, 3)), 2, 2)
            return tf.layers.dense(tf.layers.flatten(x), 2)

    with tf.variable_scope("G"):
        fake = tf.reshape(tf.nn.sigmoid(tf.layers.dense(noise, 36)), [-1, 6, 6, 1])
    d_real, d_fake = disc(real), disc(fake, reuse=True)
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits
    n = tf.shape(noise)[0]
    d_loss = tf.reduce_mean(xent(logits=tf.concat([d_real, d_fake], 0),
                                 labels=tf.concat([tf.ones([n], tf.int32), tf.zeros([n], tf.int32)], 0)))
    g_loss = tf.reduce_mean(xent(logits=d_fake, labels=tf.ones([n], tf.int32)))
    tv = tf.GraphKeys.TRAINABLE_VARIABLES
    train_g = tf.train.AdamOptimizer(0.01).minimize(g_loss, var_list=tf.get_collection(tv, "G"))
    train_d = tf.train.AdamOptimizer(0.01).minimize(d_loss, var_list=tf.get_collection(tv, "D"))
    rng = np.random.default_rng(seed)
    feed = {noise: rng.uniform(-1, 1, (5, 8)).astype(np.float32),
            real: rng.random((5, 6, 6, 1)).astype(np.float32)}
    return [train_g, train_d, g_loss, d_loss], feed


def _train(fetches: list[Any], feed: dict, mode: str, monkeypatch: pytest.MonkeyPatch, steps: int = 4,
           jit: bool = True) -> tuple[list[Any], list[np.ndarray], Any]:
    """(last losses, final variables, plan) after `steps` runs with JITFLOW_INTER_OP=`mode`."""
    monkeypatch.setenv("JITFLOW_INTER_OP", mode)
    with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(steps):
            out = sess.run(fetches, feed)
        plan = last_plan(sess) if jit else None
        return out[2:], sess.run(tf.global_variables()), plan


def test_gan_step_runs_as_a_graph_with_the_serial_results(monkeypatch: pytest.MonkeyPatch) -> None:
    fetches, feed = _gan()
    losses, variables, plan = _train(fetches, feed, "1", monkeypatch)
    assert isinstance(plan.overlap, inter_op.Overlap) and plan.overlap.use
    serial_losses, serial_vars, serial_plan = _train(fetches, feed, "0", monkeypatch)
    assert serial_plan.overlap is False
    interp_losses, interp_vars, _ = _train(fetches, feed, "0", monkeypatch, jit=False)
    for got, want, ref in zip([*losses, *variables], [*serial_losses, *serial_vars],
                              [*interp_losses, *interp_vars]):
        assert_same(got, want, rtol=1e-6)
        assert_same(got, ref, rtol=2e-4, atol=1e-6)


def test_independent_branches_are_not_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    fetches, feed = _gan()
    _, _, plan = _train(fetches, feed, "1", monkeypatch, steps=1)
    g = plan.overlap.graph
    before = _paths(g)
    # the discriminator on real images needs nothing of the generator
    d_real = _index(plan, "D/conv2d/Conv2D")
    gen = _index(plan, "G/dense/MatMul")
    assert gen not in before[d_real] and d_real not in before[gen]
    assert inter_op.heavy_width(g) >= 2


def test_variable_updates_keep_their_order_with_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    fetches, feed = _gan()
    _, _, plan = _train(fetches, feed, "1", monkeypatch, steps=1)
    # every use of D's kernel comes before D's Adam update of it, and the G update after G's gradient
    assert _ordered(plan, "D/conv2d/Conv2D", "Adam_1/update_D/conv2d/kernel/ApplyAdam")
    assert _ordered(plan, "D_1/conv2d/Conv2D", "Adam_1/update_D/conv2d/kernel/ApplyAdam")
    assert _ordered(plan, "G/dense/MatMul", "Adam/update_G/dense/kernel/ApplyAdam")


def test_assign_then_read_under_control_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read ordered after an assign (control dependency) sees the new value, also when run as a graph;
    a read with no such order sees the value from before the run's updates, as in the serial plan."""
    monkeypatch.setenv("JITFLOW_INTER_OP", "1")
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [16, 16])
    v = tf.Variable(np.eye(16, dtype=np.float32))
    w = tf.Variable(np.full((16, 16), 2.0, np.float32))
    early = tf.matmul(x, v) + tf.matmul(x, w)
    upd = tf.assign_add(v, tf.ones([16, 16]))
    with tf.control_dependencies([upd]):
        late = tf.matmul(x, v.read_value()) + tf.matmul(x, w)
    feed = {x: np.arange(256, dtype=np.float32).reshape(16, 16) / 256}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run([early, late], feed)
        plan = last_plan(sess)
        assert isinstance(plan.overlap, inter_op.Overlap)
    monkeypatch.setenv("JITFLOW_INTER_OP", "0")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        want = sess.run([early, late], feed)
    for g, wv in zip(got, want):
        assert_same(g, wv)
    x0 = feed[x]
    np.testing.assert_allclose(got[1], x0 @ (np.eye(16) + 1) + x0 @ np.full((16, 16), 2.0), rtol=1e-5)


def test_an_error_in_a_step_is_raised_and_the_session_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITFLOW_INTER_OP", "1")
    tf.reset_default_graph()
    a = tf.placeholder(tf.float32, [None, None])
    b = tf.placeholder(tf.float32, [None, None])
    c = tf.placeholder(tf.float32, [8, 8])
    left = tf.nn.tanh(tf.matmul(a, b))
    right = tf.nn.sigmoid(tf.matmul(c, c))
    out = tf.reduce_sum(left) + tf.reduce_sum(right)
    good = {a: np.ones((8, 8), np.float32), b: np.ones((8, 8), np.float32), c: np.ones((8, 8), np.float32)}
    with tf.Session() as sess:
        want = sess.run(out, good)
        with pytest.raises(tf.errors.InvalidArgumentError, match="MatMul"):
            sess.run(out, {**good, b: np.ones((5, 8), np.float32)})
        assert sess.run(out, good) == want


def test_session_config_one_inter_op_thread_runs_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITFLOW_INTER_OP", "1")
    fetches, feed = _gan()
    config = tf.ConfigProto(inter_op_parallelism_threads=1)
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(fetches, feed)
        assert last_plan(sess).overlap is False


def test_auto_mode_times_both_ways_and_keeps_the_results(monkeypatch: pytest.MonkeyPatch) -> None:
    fetches, feed = _gan()
    monkeypatch.setenv("JITFLOW_INTER_OP", "auto")
    ov = None
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(2 * (inter_op.Overlap.TRIES + 1) + 1):
            sess.run(fetches, feed)
        ov = last_plan(sess).overlap
        assert isinstance(ov, inter_op.Overlap)
        assert ov.runs == 2 * (inter_op.Overlap.TRIES + 1) + 1
        assert not ov.samples[0] and not ov.samples[1]  # both ways were timed and compared
        assert not ov.timed()
        line = str(report_of(last_plan(sess)))
        assert ("steps run as a graph" in line) == ov.use and "ms in order" in line
    assert "compiled steps can run at once" in str(tf.explain(fetches, feed))


def test_sessions_in_two_threads_run_graphs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fetches, feed = _gan()
    want_losses, want_vars, _ = _train(fetches, feed, "0", monkeypatch)
    monkeypatch.setenv("JITFLOW_INTER_OP", "1")
    results: list[Any] = [None, None]

    def work(k: int) -> None:
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(4):
                out = sess.run(fetches, feed)
            results[k] = (out[2:], sess.run(tf.global_variables()))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for res in results:
        assert res is not None
        for got, want in zip([*res[0], *res[1]], [*want_losses, *want_vars]):
            assert_same(got, want, rtol=1e-6)


OPS = ["matmul", "tanh", "add", "assign_add", "read", "reduce"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 50)), min_size=3, max_size=12),
       st.integers(0, 2**16))
def test_random_graphs_with_updates_match_the_serial_plan(monkeypatch: pytest.MonkeyPatch, program: list[Any],
                                                          seed: int) -> None:
    """Random graphs of GEMMs, elementwise ops, reductions, variable reads and in-run updates: every fetched
    value and variable equals the serial plan's after three runs."""
    tf.reset_default_graph()
    rng = np.random.default_rng(seed)
    x = tf.placeholder(tf.float32, [12, 12])
    variables = [tf.Variable(rng.normal(0, 0.3, (12, 12)).astype(np.float32)) for _ in range(3)]
    pool: list[Any] = [x, *[v.read_value() for v in variables]]
    # GEMMs that may run at once, so that every plan has steps to overlap (inter_op.MIN_STEPS and two at one depth)
    pool += [tf.matmul(x, pool[1]), tf.matmul(x, pool[2]), tf.nn.tanh(tf.matmul(pool[3], x))]
    updates: list[Any] = []
    for kind, i, j in program:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        if kind == "matmul":
            pool.append(tf.matmul(a, b) * 0.1)
        elif kind == "tanh":
            pool.append(tf.nn.tanh(a))
        elif kind == "add":
            pool.append(a + b)
        elif kind == "reduce":
            pool.append(a - tf.reduce_mean(b, axis=0))
        elif kind == "read":
            with tf.control_dependencies(updates[-1:]):
                pool.append(variables[i % 3].read_value() + 0.0)
        else:
            updates.append(tf.assign_add(variables[i % 3], tf.nn.tanh(a) * 0.01))
    fetches = [*pool[4:], *updates]
    feed = {x: rng.normal(0, 1, (12, 12)).astype(np.float32)}
    outs = []
    for mode in ("1", "0"):
        monkeypatch.setenv("JITFLOW_INTER_OP", mode)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                got = sess.run(fetches, feed)
            assert isinstance(last_plan(sess).overlap, inter_op.Overlap) == (mode == "1")
            outs.append([*got, *sess.run(variables)])
    for g, w in zip(*outs):
        assert_same(g, w)


def test_a_step_that_runs_a_nested_plan_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A while loop's body runs as a plan of its own inside a step of the outer graph (a nested run that
    may itself walk a graph while the helper thread is busy with the outer one)."""
    monkeypatch.setenv("JITFLOW_INTER_OP", "1")
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [16, 16])
    w = tf.Variable(np.eye(16, dtype=np.float32) * 0.5)

    def body(i: Any, a: Any, b: Any) -> Any:
        return i + 1, tf.nn.tanh(tf.matmul(a, w)), tf.nn.sigmoid(tf.matmul(b, w))

    _, a, b = tf.while_loop(lambda i, a, b: i < 5, body, [tf.constant(0), x, x * 2.0])
    side = tf.matmul(x, x) + tf.matmul(x * 3.0, x)
    feed = {x: np.linspace(-1, 1, 256, dtype=np.float32).reshape(16, 16)}
    box: list[Any] = []

    def work() -> None:
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            box.append(sess.run([a, b, side], feed))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(120)
    assert box, "the run did not finish"
    x0 = feed[x].astype(np.float64)
    want_a, want_b = x0, 2 * x0
    for _ in range(5):
        want_a, want_b = np.tanh(want_a @ (np.eye(16) * 0.5)), 1 / (1 + np.exp(-(want_b @ (np.eye(16) * 0.5))))
    np.testing.assert_allclose(box[0][0], want_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box[0][1], want_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box[0][2], x0 @ x0 + (3 * x0) @ x0, rtol=1e-5, atol=1e-5)


class _Fake:
    """A step with only what `StepGraph` reads."""

    kind, backend, stateful, ops = "cluster", "cpu", False, ()

    def __init__(self, reads: tuple[int, ...], writes: tuple[int, ...]) -> None:
        self.reads, self.writes = reads, writes


def test_slot_hazards_and_the_critical_order() -> None:
    # 0 writes 10; 1 reads 10 -> 11; 2 reads 10 -> 12 (long); 3 overwrites 10 (after both readers); 4 joins
    steps = [_Fake((), (10,)), _Fake((10,), (11,)), _Fake((10,), (12,)), _Fake((), (10,)), _Fake((11, 12), (13,))]
    g = inter_op.StepGraph(steps)
    before = _paths(g)
    assert before[1] == {0} and before[2] == {0}
    assert before[3] == {0, 1, 2}  # a write waits for the earlier readers of the slot
    assert before[4] == {0, 1, 2}
    order = inter_op.critical_order(g, [1e-3, 1e-4, 5e-3, 1e-4, 1e-4])
    assert order.index(2) < order.index(1)  # the long branch first
    inf = float("inf")
    sched = inter_op.Schedule.timed(g, ([1e-3, 1e-5, 5e-3, 1e-5, 1e-4], [inf, inf, 2e-3, inf, 2e-4]))
    assert sched.small == [False, True, False, True, False]
    assert sched.one == [False, False, True, False, False]  # step 2 ran faster on one core


def test_an_interrupt_in_a_step_stops_the_run_after_the_steps_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C inside a step (here a py_func's) ends the run with KeyboardInterrupt once the other worker's step
    has finished; the next run of the same plan gives the right values."""
    monkeypatch.setenv("JITFLOW_INTER_OP", "1")
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [32, 32])
    calls = [0]

    def maybe_interrupt(v: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return v * 2

    left = tf.py_func(maybe_interrupt, [tf.matmul(x, x)], tf.float32)
    right = tf.nn.tanh(tf.matmul(x * 2.0, x))
    more = tf.nn.sigmoid(tf.matmul(x, x * 3.0)) - tf.matmul(x, tf.transpose(x))
    out = tf.reduce_sum(left) + tf.reduce_sum(right) + tf.reduce_mean(more, axis=0)
    x0 = np.linspace(-1, 1, 1024, dtype=np.float32).reshape(32, 32)
    with tf.Session() as sess:
        want = sess.run(out, {x: x0})
        assert isinstance(last_plan(sess).overlap, inter_op.Overlap)
        with pytest.raises(KeyboardInterrupt):
            sess.run(out, {x: x0})
        np.testing.assert_array_equal(sess.run(out, {x: x0}), want)
