"""Loops in GraphDefs and MetaGraphDefs: TF 1.x frames written by TensorFlow run here
(tests/data/tf_loops, made by tests/data/make_tf_loops.py), jitflow's loops are written as such frames
and read back, and malformed frames are refused."""
from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.protos.graph import GraphDef
from jitflow.protos.meta_graph import MetaGraphDef

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tf_loops"
E = np.load(DATA / "expected.npz")


def _graph_def(name: str) -> GraphDef:
    gd = GraphDef()
    gd.ParseFromString((DATA / name).read_bytes())
    return gd


def _run_imported(gd: GraphDef, fetches: list[str], feed: dict[str, np.ndarray], jit: bool) -> list:
    with tf.Graph().as_default():
        tf.import_graph_def(gd, name="")
        with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
            return s.run(fetches, feed)


def _loops(g: tf.Graph) -> list:
    return [op for op in g.get_operations() if op.type == "While"]


@pytest.mark.parametrize("jit", [False, True])
def test_tf_while_loop_graph_runs(jit: bool) -> None:
    i, a = _run_imported(_graph_def("while.pb"), ["r_i:0", "r_a:0"], {"x:0": E["wx"]}, jit)
    assert i == E["while_i"]
    np.testing.assert_allclose(a, E["while_a"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_tf_frozen_dynamic_rnn_lstm_runs(jit: bool) -> None:
    out, h = _run_imported(_graph_def("frozen_lstm.pb"), ["out:0", "h:0"], {"x:0": E["x"], "lens:0": E["lens"]},
                           jit)
    np.testing.assert_allclose(out, E["lstm_out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, E["lstm_h"], rtol=1e-5, atol=1e-6)


def test_tf_frames_become_while_ops_with_tf_exit_names() -> None:
    with tf.Graph().as_default() as g:
        tf.import_graph_def(_graph_def("frozen_lstm.pb"), name="imp")
        (loop,) = _loops(g)
        assert loop.attrs["body"].n == 5  # the iteration counter, time, output TensorArray flow, (c, h)
        h = g.get_tensor_by_name("imp/rnn/while/Exit_4:0")  # h (the frozen graph keeps only the Exits it uses)
        assert h.shape.as_list() == [None, 4]
        assert not any(op.type in ("Enter", "Merge", "NextIteration") for op in g.get_operations())


@pytest.mark.parametrize("jit", [False, True])
def test_tf_training_meta_graph_continues_training(jit: bool) -> None:
    feed = {"x:0": E["x"], "y:0": E["y"]}
    with tf.Graph().as_default() as g:
        saver = tf.train.import_meta_graph(str(DATA / "rnn.ckpt.meta"))
        assert len(_loops(g)) == 3  # the forward loop and the gradient loops of two tf.gradients calls
        with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
            saver.restore(s, str(DATA / "rnn.ckpt"))
            pred, dx = s.run(["pred:0", "dloss_dx:0"], feed)
            np.testing.assert_allclose(pred, E["rnn_pred"], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(dx, E["rnn_dx"], rtol=1e-5, atol=1e-7)
            s.run(tf.get_collection("train_op")[0], feed)
            np.testing.assert_allclose(s.run("loss:0", feed), E["rnn_loss3"], rtol=1e-5)
            np.testing.assert_allclose(s.run(tf.trainable_variables()[0]), E["rnn_kernel3"], rtol=1e-5, atol=1e-6)


# ---- jitflow -> GraphDef -> jitflow ------------------------------------------------------------------

def _build_loops() -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
    k = tf.placeholder(tf.int32, [], name="k")
    _, a = tf.while_loop(lambda i, a: i < k, lambda i, a: (i + 1, a * 0.5 + tf.reduce_sum(x)),
                         [tf.constant(0), tf.constant(1.0)], maximum_iterations=4, name="capped")
    collatz, _ = tf.while_loop(lambda s, n: n > 1,
                               lambda s, n: (s + 1, tf.cond(tf.equal(n % 2, 0), lambda: n // 2, lambda: 3 * n + 1)),
                               [0, k + 5], name="collatz")

    def outer(i, acc):
        inner = tf.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b + tf.cast(j, tf.float32)),
                              [0, tf.constant(0.0)], name="inner")[1]
        return i + 1, acc + inner

    nested = tf.while_loop(lambda i, acc: i < k, outer, [0, tf.constant(0.0)], name="outer")[1]
    in_cond = tf.cond(k > 2, lambda: tf.while_loop(lambda v: v < 100, lambda v: v * 2, [k], name="doubling"),
                      lambda: tf.constant(-1))
    seen = []

    def test(i: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
        seen.append(i < k)
        return seen[-1]

    # the body reads a value the condition computed
    _, reads_cond = tf.while_loop(test, lambda i, v: (i + 1, v + tf.cast(seen[0], tf.float32)), [0, 0.5],
                                  name="reads_cond")
    sq = tf.map_fn(lambda r: tf.reduce_sum(r * r), x[0], name="squares")
    cum = tf.scan(lambda c, r: c + r, x[0], name="cum")
    cell = tf.nn.rnn_cell.LSTMCell(4, initializer=tf.random_normal_initializer(seed=2))
    outs, state = tf.nn.dynamic_rnn(cell, x, sequence_length=tf.stack([tf.constant(5), k]), dtype=tf.float32)
    fetch = {"a": a, "collatz": collatz, "nested": nested, "sq": sq, "cum": cum, "out": outs, "h": state.h,
             "in_cond": in_cond, "reads_cond": reads_cond}
    return {name: tf.identity(t, name=f"f_{name}") for name, t in fetch.items()}, x


def _feed() -> dict[str, np.ndarray]:
    return {"x:0": E["x"], "k:0": np.int32(3)}


@pytest.mark.parametrize("jit", [False, True])
def test_jitflow_loops_round_trip_through_graph_def(jit: bool) -> None:
    with tf.Graph().as_default() as g:
        fetch, _ = _build_loops()
        names = sorted(fetch)
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            want = s.run([fetch[n] for n in names], _feed())
            gd = tf.graph_util.convert_variables_to_constants(s, g.as_graph_def(), [f"f_{n}" for n in names])
    ops = {n.op for n in gd.node}
    assert ops >= {"Enter", "Merge", "Switch", "LoopCond", "NextIteration", "Exit", "TensorArrayV3",
                   "TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayScatterV3", "TensorArrayGatherV3"}
    assert "While" not in ops
    frames = {n.attr["frame_name"].s.decode() for n in gd.node if n.op == "Enter"}
    assert {"capped/while_context", "outer/while_context", "outer/inner/while_context"} <= frames
    got = _run_imported(gd, [f"f_{n}:0" for n in names], _feed(), jit)
    for n, w, v in zip(names, want, got):
        np.testing.assert_allclose(v, w, rtol=1e-6, err_msg=n)


def test_exits_carry_tf_names() -> None:
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [], name="x")
        i, v = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [0, x])
        tf.identity(v, name="v")
        gd = g.as_graph_def()
    exits = sorted(n.name for n in gd.node if n.op == "Exit")
    assert exits == ["while/Exit", "while/Exit_1"]
    assert next(n for n in gd.node if n.name == "v").input[0] == "while/Exit_1"
    assert _run_imported(gd, ["v:0", "while/Exit_1:0"], {"x:0": np.float32(1.5)}, True) == [12.0, 12.0]


def _save_and_reload(tmp_path: pathlib.Path, build: Callable[[], tf.Tensor], feed: Callable[[], dict]) -> None:
    with tf.Graph().as_default():
        out = build()
        saver = tf.train.Saver()
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            want = s.run(out, feed())
            path = saver.save(s, str(tmp_path / "model"))
    assert (tmp_path / "model.meta").exists()
    with tf.Graph().as_default() as g:
        saver = tf.train.import_meta_graph(path + ".meta")
        assert _loops(g)
        with tf.Session() as s:
            saver.restore(s, path)
            np.testing.assert_allclose(s.run(out.name, feed()), want, rtol=1e-6)
        # an imported loop is written again as a frame, and reads back the same
        tf.train.export_meta_graph(str(tmp_path / "again.meta"))
    with tf.Graph().as_default():
        saver = tf.train.import_meta_graph(str(tmp_path / "again.meta"))
        with tf.Session() as s:
            saver.restore(s, path)
            np.testing.assert_allclose(s.run(out.name, feed()), want, rtol=1e-6)


def test_saver_writes_meta_graph_of_dynamic_rnn_and_it_reloads(tmp_path: pathlib.Path) -> None:
    def build() -> tf.Tensor:
        x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
        cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.GRUCell(4), tf.nn.rnn_cell.BasicLSTMCell(3)])
        outs, _ = tf.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        return tf.identity(outs, name="out")

    _save_and_reload(tmp_path, build, lambda: {"x:0": E["x"]})


def test_gradients_through_an_imported_loop_match_the_native_loop() -> None:
    def build() -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.placeholder(tf.float32, [3], name="x")
        _, y = tf.while_loop(lambda i, v: i < 4, lambda i, v: (i + 1, tf.tanh(v * 1.5) + v), [0, x])
        return x, tf.identity(y, name="y")

    xv = np.array([0.1, -0.4, 0.3], np.float32)
    with tf.Graph().as_default() as g:
        x, y = build()
        gd = g.as_graph_def()
        want = tf.Session().run(tf.gradients(tf.reduce_sum(y * y), x)[0], {x: xv})
    with tf.Graph().as_default():
        x, y = tf.import_graph_def(gd, return_elements=["x:0", "y:0"], name="")
        got = tf.Session().run(tf.gradients(tf.reduce_sum(y * y), x)[0], {x: xv})
    np.testing.assert_allclose(got, want, rtol=1e-5)


# ---- malformed frames ----------------------------------------------------------------------------------

def _loop_nodes() -> GraphDef:
    return _graph_def("while.pb")


def _edit(fn: Callable[[GraphDef], None]) -> GraphDef:
    gd = _loop_nodes()
    fn(gd)
    return gd


def _node(gd: GraphDef, name: str):  # noqa: ANN202 - a NodeDef
    return next(n for n in gd.node if n.name == name)


def _drop(gd: GraphDef, name: str) -> None:
    keep = [n for n in gd.node if n.name != name]
    del gd.node[:]
    gd.node.extend(keep)


@pytest.mark.parametrize("edit, message", [
    (lambda gd: _drop(gd, "loop/LoopCond") or _node(gd, "loop/Switch").input.__setitem__(1, "loop/LogicalAnd"),
     "0 LoopCond"),
    (lambda gd: _node(gd, "loop/Merge_1").input.__setitem__(1, "loop/add_1"), "cycle that does not pass"),
    (lambda gd: _node(gd, "loop/Merge_1").input.__setitem__(1, "loop/Enter_1"), "must switch a loop variable"),
    (lambda gd: _node(gd, "loop/Exit_2").input.__setitem__(0, "loop/Identity_2"), "Switch's false output"),
    (lambda gd: _node(gd, "loop/NextIteration_2").input.__setitem__(0, "loop/Less"), "the body returns bool"),
    (lambda gd: _node(gd, "loop/Enter_2").attr["frame_name"].__setattr__("s", b""), "frame_name"),
])
def test_malformed_frames_are_invalid_argument(edit: Callable[[GraphDef], None], message: str) -> None:
    gd = _edit(edit)
    with tf.Graph().as_default():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            tf.import_graph_def(gd, name="")


def test_meta_graph_of_tf_keeps_while_context_out_of_collections() -> None:
    meta = MetaGraphDef()
    meta.ParseFromString((DATA / "rnn.ckpt.meta").read_bytes())
    assert "while_context" in meta.collection_def
    with tf.Graph().as_default() as g:
        tf.train.import_meta_graph(meta)
        assert g.get_collection("while_context") == []


def test_reading_a_body_value_outside_its_loop_fails_at_run_time() -> None:
    gd = _edit(lambda gd: _node(gd, "r_a").input.__setitem__(0, "loop/add_2"))  # no Exit on the way out
    with tf.Graph().as_default():
        tf.import_graph_def(gd, name="")
        with pytest.raises(tf.errors.InvalidArgumentError, match="not fed by its enclosing op"):
            tf.Session().run("r_a:0", {"x:0": E["wx"]})


def _train_graph(cell_fn: Callable[[], object]) -> dict[str, object]:
    tf.set_random_seed(5)
    x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 4], name="y")
    outs, _ = tf.nn.dynamic_rnn(cell_fn(), x, dtype=tf.float32)
    pred = tf.identity(outs[:, -1, :4], name="pred")
    loss = tf.reduce_mean(tf.square(pred - y), name="loss")
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
    tf.add_to_collection("train_op", train)
    (dx,) = tf.gradients(loss, x)
    tf.identity(dx, name="dx")
    return {"x": x, "y": y, "loss": loss, "train": train}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_graph_round_trips_and_keeps_training(tmp_path: pathlib.Path, cell: str) -> None:
    """Saver.save writes the loop's gradient as a TF gradient frame; after import_meta_graph + restore,
    training goes on exactly as in the original graph."""
    make = {"lstm": lambda: tf.nn.rnn_cell.LSTMCell(4), "gru": lambda: tf.nn.rnn_cell.GRUCell(4)}[cell]
    feed = {"x:0": E["x"], "y:0": E["y"]}
    path = str(tmp_path / "model")
    with tf.Graph().as_default():
        t = _train_graph(make)
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            s.run(t["train"], feed)
            tf.train.Saver().save(s, path)
            dx = s.run("dx:0", feed)
            losses = [s.run([t["train"], t["loss"]], feed)[1] for _ in range(2)]
    meta = MetaGraphDef()
    meta.ParseFromString(pathlib.Path(path + ".meta").read_bytes())
    ops = {n.op for n in meta.graph_def.node}
    assert {"StackV2", "StackPushV2", "StackPopV2", "TensorArrayGradV3"} <= ops
    assert not ops & {"While", "WhileGrad", "TensorArrayGradRead", "TensorArrayGradFrom"}
    for jit in (True, False):
        with tf.Graph().as_default():
            saver = tf.train.import_meta_graph(path + ".meta")
            train = tf.get_collection("train_op")[0]
            with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
                saver.restore(s, path)
                np.testing.assert_allclose(s.run("dx:0", feed), dx, rtol=1e-5, atol=1e-7)
                got = [s.run([train, "loss:0"], feed)[1] for _ in range(2)]
        np.testing.assert_allclose(got, losses, rtol=1e-5)


def test_imported_lstm_body_is_compiled_like_a_native_loop() -> None:
    with tf.Graph().as_default() as g:
        tf.import_graph_def(_graph_def("frozen_lstm.pb"), name="")
        rep = tf.explain(g.get_tensor_by_name("out:0"), {"x:0": E["x"], "lens:0": E["lens"]})
    kinds = [lp["kind"] for lp in rep.loops]
    assert kinds == ["cond", "body"]
    body = rep.loops[1]["report"]
    gates = [c["ops"] for c in body.clusters if any("Sigmoid" in o for o in c["ops"])]
    assert gates and len(gates[0]) > 2  # the LSTM gates fused into one kernel


def test_body_assigning_a_variable_round_trips(tmp_path: pathlib.Path) -> None:
    """A variable a body assigns enters the frame by reference (RefEnter), as in TF."""
    with tf.Graph().as_default():
        v = tf.Variable(0.0, name="v")

        def body(i: tf.Tensor) -> tf.Tensor:
            with tf.control_dependencies([tf.assign_add(v, 1.0)]):
                return i + 1

        tf.identity(tf.while_loop(lambda i: i < 4, body, [tf.constant(0)]), name="r")
        saver = tf.train.Saver()
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            path = saver.save(s, str(tmp_path / "model"))
    meta = MetaGraphDef()
    meta.ParseFromString(pathlib.Path(path + ".meta").read_bytes())
    assert [n.input[0] for n in meta.graph_def.node if n.op == "RefEnter"] == ["v"]
    with tf.Graph().as_default():
        saver = tf.train.import_meta_graph(path + ".meta")
        with tf.Session() as s:
            saver.restore(s, path)
            assert s.run("r:0") == 4
            assert s.run("v:0") == 4.0


def test_collections_name_loop_outputs_by_their_exits(tmp_path: pathlib.Path) -> None:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [], name="x")
        _, v = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [0, x])
        tf.add_to_collection("final", v)
        meta = tf.train.export_meta_graph(str(tmp_path / "m.meta"))
    assert list(meta.collection_def["final"].node_list.value) == ["while/Exit_1:0"]
    with tf.Graph().as_default():
        tf.train.import_meta_graph(str(tmp_path / "m.meta"))
        (v,) = tf.get_collection("final")
        assert tf.Session().run(v, {"x:0": 1.0}) == 8.0


@pytest.mark.parametrize("jit", [False, True])
def test_tf_cond_in_loop_and_nested_loop_run(jit: bool) -> None:
    gd = _graph_def("nested.pb")
    assert len({n.attr["frame_name"].s for n in gd.node if n.op == "Enter"}) == 2
    (acc,) = _run_imported(gd, ["acc:0"], {"n:0": np.int32(6)}, jit)
    np.testing.assert_allclose(acc, E["nested_acc"])


@pytest.mark.parametrize("name, feed, fetch", [
    ("nested.pb", {"n:0": np.int32(6)}, ["acc:0"]),
    ("frozen_lstm.pb", {"x:0": E["x"], "lens:0": E["lens"]}, ["out:0", "h:0"]),
    ("while.pb", {"x:0": E["wx"]}, ["r_i:0", "r_a:0"]),
])
def test_tf_loops_imported_here_are_written_back_as_frames(name: str, feed: dict, fetch: list[str]) -> None:
    with tf.Graph().as_default() as g:
        tf.import_graph_def(_graph_def(name), name="")
        want = tf.Session().run(fetch, feed)
        gd = g.as_graph_def()
    assert "While" not in {n.op for n in gd.node}
    for w, v in zip(want, _run_imported(gd, fetch, feed, True)):
        np.testing.assert_allclose(v, w, rtol=1e-6)


_STEPS = {"add": lambda v, c: v + c, "mul": lambda v, c: v * c, "tanh": lambda v, c: tf.tanh(v) + c,
          "max": lambda v, c: tf.maximum(v, c)}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 5), steps=st.lists(st.sampled_from(sorted(_STEPS)), min_size=1, max_size=3),
       consts=st.lists(st.floats(-2, 2, width=32), min_size=3, max_size=3), cap=st.one_of(st.none(), st.integers(0, 6)),
       use_ta=st.booleans())
def test_property_loops_round_trip(n: int, steps: list[str], consts: list[float], cap: int | None,
                                   use_ta: bool) -> None:
    """Random loops (a counter, a vector carried through random steps, a captured tensor, maybe a
    TensorArray and maximum_iterations) compute the same after GraphDef export and import."""
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [3], name="x")
        w = tf.reduce_sum(x) * 0.1

        def body(i: tf.Tensor, v: tf.Tensor, ta: tf.TensorArray) -> tuple:
            for s, c in zip(steps, consts):
                v = _STEPS[s](v, c + w)
            return i + 1, v, ta.write(i, v) if use_ta else ta

        ta0 = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[3])
        _, v, ta = tf.while_loop(lambda i, v, ta: i < n, body, [tf.constant(0), x, ta0], maximum_iterations=cap)
        fetch = [tf.identity(v, name="v")] + ([tf.identity(ta.stack(), name="stacked")] if use_ta else [])
        xv = np.array([0.5, -1.0, 2.0], np.float32)
        want = tf.Session(config=tf.ConfigProto(jit=False)).run(fetch, {x: xv})
        gd = g.as_graph_def()
    got = _run_imported(gd, [t.name for t in fetch], {"x:0": xv}, False)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_new_gradients_through_a_tf_written_loop_match_tf(jit: bool) -> None:
    """tf.gradients built here through TF's imported loop and TensorArrays (not TF's own gradient
    nodes) give TF's gradient, and the update TF's train_op makes."""
    feed = {"x:0": E["x"], "y:0": E["y"]}
    with tf.Graph().as_default() as g:
        saver = tf.train.import_meta_graph(str(DATA / "rnn.ckpt.meta"))
        loss = g.get_tensor_by_name("loss:0")
        kernel = tf.trainable_variables()[0]
        dx, dk = tf.gradients(loss, [g.get_tensor_by_name("x:0"), kernel])
        with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
            saver.restore(s, str(DATA / "rnn.ckpt"))
            np.testing.assert_allclose(s.run(dx, feed), E["rnn_dx"], rtol=1e-5, atol=1e-7)
            k0, dkv = s.run([kernel, dk], feed)
            s.run(tf.get_collection("train_op")[0], feed)
            np.testing.assert_allclose((k0 - s.run(kernel)) / 0.1, dkv, rtol=1e-4, atol=1e-6)


def test_meta_graph_carries_tf_while_contexts(tmp_path: pathlib.Path) -> None:
    """The `while_context` collection TF builds new loop gradients from (checked against TF's layout)."""
    from jitflow.protos.control_flow import WhileContextDef

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        w = tf.constant(2.0, name="w")
        tf.while_loop(lambda i, a: i < 3, lambda i, a: [i + 1, a * w], [0, x])
        meta = tf.train.export_meta_graph()
    (raw,) = meta.collection_def["while_context"].bytes_list.value
    ctx = WhileContextDef.FromString(raw)
    assert ctx.context_name == "while/while_context" and ctx.back_prop
    assert (ctx.pivot_name, ctx.pivot_for_pred_name, ctx.pivot_for_body_name) == \
        ("while/LoopCond:0", "while/Merge:0", "while/Identity:0")
    assert list(ctx.loop_exit_names) == ["while/Exit:0", "while/Exit_1:0"]
    assert list(ctx.loop_enter_names) == ["while/Enter:0", "while/Enter_1:0"]
    assert dict(ctx.values_def.external_values) == {"w:0": "while/Enter_2:0"}
    assert {"while/Switch:1", "while/Merge:1", "while/NextIteration_1:0", "w:0"} <= set(ctx.values_def.values)


@pytest.mark.parametrize("jit", [False, True])
def test_tf_map_fn_scan_foldl_and_dynamic_tensor_array_run(jit: bool) -> None:
    names = ["squares", "cum", "fold", "grown"]
    got = _run_imported(_graph_def("functional.pb"), [n + ":0" for n in names], {"x:0": E["x"][0]}, jit)
    for n, v in zip(names, got):
        np.testing.assert_allclose(v, E["fn_" + n], rtol=1e-6, err_msg=n)


def test_loops_import_under_a_scope_and_twice_into_one_graph() -> None:
    feed = {"scoped/x:0": E["x"], "scoped/y:0": E["y"]}
    with tf.Graph().as_default():
        tf.constant(1.0, name="x")
        saver = tf.train.import_meta_graph(str(DATA / "rnn.ckpt.meta"), import_scope="scoped", clear_devices=True)
        with tf.Session() as s:
            saver.restore(s, str(DATA / "rnn.ckpt"))
            s.run(tf.get_collection("train_op")[0], feed)
            np.testing.assert_allclose(s.run("scoped/loss:0", feed), E["rnn_loss3"], rtol=1e-5)
    with tf.Graph().as_default() as g:
        gd = _graph_def("frozen_lstm.pb")
        tf.import_graph_def(gd, name="")
        tf.import_graph_def(gd, name="")  # TF's importer renames the second copy (rnn_1/..., out_1)
        assert len(_loops(g)) == 2
        feed2 = {"x:0": E["x"], "lens:0": E["lens"], "x_1:0": E["x"][::-1], "lens_1:0": E["lens"][::-1]}
        a, b = tf.Session().run(["out:0", "out_1:0"], feed2)
    np.testing.assert_allclose(a, E["lstm_out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, E["lstm_out"][::-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_tf_frozen_bidirectional_rnn_runs(jit: bool) -> None:
    (out,) = _run_imported(_graph_def("frozen_bidi.pb"), ["out:0"], {"x:0": E["x"], "lens:0": E["lens"]}, jit)
    np.testing.assert_allclose(out, E["bidi_out"], rtol=1e-5, atol=1e-6)


def test_stacks_of_older_tensorflow_import() -> None:
    """TF < 1.5 wrote Stack/StackPush/StackPop (no size input); they run as the same stacks."""
    from google.protobuf import text_format

    gd = text_format.Parse('''
        node { name: "s" op: "Stack" attr { key: "elem_type" value { type: DT_FLOAT } } }
        node { name: "v" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 3.5 } } } }
        node { name: "push" op: "StackPush" input: "s" input: "v" attr { key: "T" value { type: DT_FLOAT } } }
        node { name: "pop" op: "StackPop" input: "s" input: "^push" attr { key: "elem_type" value { type: DT_FLOAT } } }
        node { name: "pop2" op: "StackPop" input: "s" input: "^pop" attr { key: "elem_type" value { type: DT_FLOAT } } }
    ''', GraphDef())
    with tf.Graph().as_default():
        tf.import_graph_def(gd, name="")
        assert tf.Session().run("pop:0") == 3.5
        with pytest.raises(tf.errors.InvalidArgumentError, match="is empty"):
            tf.Session().run("pop2:0")


def test_input_map_and_return_elements_with_loops() -> None:
    with tf.Graph().as_default():
        x = tf.constant(E["x"])
        out, h = tf.import_graph_def(_graph_def("frozen_lstm.pb"), input_map={"x:0": x, "lens": tf.constant(E["lens"])},
                                     return_elements=["out:0", "rnn/while/Exit_4:0"], name="imp")
        got_out, got_h = tf.Session().run([out, h])
    np.testing.assert_allclose(got_out, E["lstm_out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, E["lstm_h"], rtol=1e-5, atol=1e-6)
