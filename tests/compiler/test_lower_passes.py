"""Each pass of `lower`, run on a fresh plan after the passes before it."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler import lower as low
from jitflow.compiler.plan import build_plan
from jitflow.compiler.steps import ClusterStep, MatMulStep, SoftmaxStep


def _lowering(fetches: list[Any], feeds: list[Any], upto: Any) -> low.Lowering:
    """A plan of `fetches` lowered by the passes before `upto`, then by `upto`."""
    plan = build_plan(fetches, feeds)
    state = low.Lowering.start(plan)
    for p in low.PASSES:
        p(state)
        if p is upto:
            return state
    raise AssertionError(f"{upto} is not a pass")


def _mlp() -> tuple[Any, Any, Any]:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.Variable(np.ones((3, 2), np.float32), name="w")
    y = tf.nn.softmax(tf.nn.relu(tf.matmul(x, w) + 1.0), name="y")
    return x, w, y


def test_passes_are_named_and_documented() -> None:
    names = [p.__name__ for p in low.PASSES]
    assert names == ["cluster_ops", "library_kernels", "build_clusters", "fold_constants", "prune_shape_ops",
                     "order_steps", "mark_array_outputs", "move_to_gpu", "update_in_place"]
    assert all(p.__doc__ for p in low.PASSES)


def test_cluster_ops_groups_and_reports_fallbacks() -> None:
    x = tf.placeholder(tf.float32, [None], name="x")
    y = tf.cumsum(tf.exp(x) * 2.0, name="y")  # Cumsum has no lowering
    state = _lowering([y], [x], low.cluster_ops)
    assert state.clustering is not None
    assert [[m.type for m in c] for c in state.clustering.clusters] == [["Exp", "Mul"]]
    assert [f["type"] for f in state.plan.report["fallbacks"]] == ["Cumsum"]


def test_cluster_ops_fallback_is_an_error_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITFLOW_FALLBACK", "error")
    x = tf.placeholder(tf.float32, [None], name="x")
    with pytest.raises(tf.errors.UnimplementedError, match="Cumsum"):
        _lowering([tf.cumsum(x)], [x], low.cluster_ops)


def test_library_kernels_take_matmul_and_softmax() -> None:
    x, w, y = _mlp()
    state = _lowering([y], [x], low.library_kernels)
    kinds = {op.type: type(st) for op, st in state.own.items()}
    assert kinds == {"MatMul": MatMulStep, "Softmax": SoftmaxStep}
    assert [t.op.type for t in state.matmul_of] == ["MatMul"]


def test_build_clusters_makes_cluster_steps_with_epilogue_reports() -> None:
    x, w, y = _mlp()
    state = _lowering([y], [x], low.build_clusters)
    assert len(state.cluster_steps) == 1 and isinstance(state.cluster_steps[0], ClusterStep)
    step = state.cluster_steps[0]
    assert [m.type for m in step.c.ops] == ["AddV2", "Relu"]
    assert step.report["ops"][0] == "MatMul"  # the product it applies to is named first
    assert state.cluster_at[step.c.ops[-1]] is step and state.clustered == set(step.c.ops)


def test_fold_constants_moves_consts_into_the_template() -> None:
    x = tf.placeholder(tf.float32, [None], name="x")
    c = tf.constant(np.arange(3, dtype=np.float32), name="c")
    state = _lowering([x + c], [x], low.fold_constants)
    assert [op.name for op in state.folded] == ["c"]
    assert state.plan.template is not None
    np.testing.assert_array_equal(state.plan.template[state.plan.slots[c]], np.arange(3))


def test_prune_shape_ops_drops_shapes_nobody_reads() -> None:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    b = tf.placeholder(tf.float32, [3], name="b")
    g = tf.gradients(tf.reduce_sum(x * b), b)[0]  # UnbroadcastTo to Shape(b), a static shape
    state = _lowering([g], [x, b], low.prune_shape_ops)
    assert {op.type for op in state.unused} <= {"Shape", "Size", "Rank"}
    assert all(op not in state.clustered for op in state.unused)


def test_order_steps_puts_clusters_at_their_last_member() -> None:
    x, w, y = _mlp()
    state = _lowering([y], [x], low.order_steps)
    kinds = [type(st).__name__ for st in state.plan.steps]
    assert kinds.index("MatMulStep") < kinds.index("ClusterStep") < kinds.index("SoftmaxStep")


def test_mark_array_outputs_keeps_scalars_only_inside() -> None:
    x = tf.placeholder(tf.float32, [], name="x")
    s = tf.exp(x) + 1.0
    state = _lowering([s], [x], low.mark_array_outputs)
    assert [st.need_array for st in state.cluster_steps] == [[False]]  # only fetched: may stay a scalar


def test_move_to_gpu_leaves_cpu_plans_alone() -> None:
    x, w, y = _mlp()
    state = _lowering([y], [x], low.order_steps)
    before = list(state.plan.steps)
    low.move_to_gpu(state)
    assert state.plan.steps == before


def test_a_reshape_to_a_constant_shape_reads_its_target_once() -> None:
    """Reshape with a constant shape (-1 included) is a `ReshapeStep`: the interpreter's values, views and
    errors (a size that does not fit raises TF's InvalidArgumentError, naming the sizes)."""
    from jitflow.compiler.step import ReshapeStep
    from tests.compiler.helpers import last_plan, run_both

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 6])
        y = tf.reshape(x, [-1, 2, 3]) * 2.0
        z = tf.reshape(x, [4, 5])
        feed = {x: np.arange(12, dtype=np.float32).reshape(2, 6)}
        got, want, plan = run_both(y, feed)
        np.testing.assert_array_equal(got, want)
        assert any(isinstance(st, ReshapeStep) for st in plan.steps)
        with tf.Session() as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match="12 values.*20"):
                sess.run(z, feed)
            assert any(isinstance(st, ReshapeStep) for st in last_plan(sess).steps)


@pytest.mark.parametrize("out_type", [tf.int32, tf.int64])
def test_shape_of_a_fed_tensor_is_a_slot_write(out_type: Any) -> None:
    """Shape of a tensor whose shape is known only at run time is a `ShapeStep`: the interpreter's values and
    dtype, as dropout's random draw reads it; a scalar fed where an array was expected still gets its shape."""
    from jitflow.compiler.step import ShapeStep
    from tests.compiler.helpers import run_both

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 6])
        s = tf.shape(x, out_type=out_type)
        r = tf.random_uniform(s, seed=1)
        got, want, plan = run_both([s, r], {x: np.ones((3, 6), np.float32)})
        assert got[0].dtype == want[0].dtype == out_type.as_numpy_dtype
        np.testing.assert_array_equal(got[0], [3, 6])
        np.testing.assert_array_equal(got[1], want[1])
        assert any(isinstance(st, ShapeStep) for st in plan.steps)
        y = tf.placeholder(tf.float32)
        got, want, _ = run_both(tf.shape(y, out_type=out_type), {y: 2.0})
        assert got.shape == want.shape == (0,) and got.dtype == want.dtype


def test_variable_reads_and_copies_run_as_one_call() -> None:
    """Consecutive variable reads and Identity copies bind as one call (`step.SlotMoves`), in order: the
    values are the variables', and a variable not yet initialized raises TF's error naming it."""
    from jitflow.compiler.step import IdentityStep, SlotMoves, VarReadStep, bound_calls

    av, bv, xv = np.arange(4096, dtype=np.float32).reshape(64, 64) / 4096, np.ones((64, 64), np.float32), \
        np.ones((1, 64), np.float32)
    with tf.Graph().as_default():
        a, b = tf.Variable(av, name="a"), tf.Variable(bv, name="b")
        x = tf.placeholder(tf.float32, [None, 64])
        y = tf.matmul(tf.matmul(x, a), b)  # (MatMul steps: the reads are steps of their own)
        with tf.Session() as sess:
            with pytest.raises(tf.errors.FailedPreconditionError, match="a"):
                sess.run(y, {x: xv})
            sess.run(tf.global_variables_initializer())
            got = sess.run(y, {x: xv})
            steps = next(p.steps for p in sess._plans.values() if any(type(st) is MatMulStep for st in p.steps))
    np.testing.assert_allclose(got, xv @ av @ bv, rtol=1e-5)
    moved = [st for st in steps if type(st) in (VarReadStep, IdentityStep)]
    calls = bound_calls(steps)[1]
    assert len(moved) == 4 and len(calls) == len(steps) - 2
    assert any(isinstance(getattr(c, "__self__", None), SlotMoves) for c in calls)
