"""GraphDef / MetaGraphDef with TensorFlow: our files load in TF (bytes checked when TF wrote them),
TF's files load here (tests/data/tf_graphs, made by tests/data/make_tf_graphs.py)."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from google.protobuf import text_format

import jitflow as tf
from jitflow.framework import op_attrs, op_schemas, registry

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tf_graphs"


def _net() -> dict[str, tf.Tensor]:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 10, name="w")
    y = tf.nn.relu(tf.matmul(x, w) + 0.5, name="y")
    s = tf.reduce_sum(y, axis=1, name="s")
    a = tf.argmax(y, 1, name="a")
    c = tf.cumsum(y, axis=1, name="c")
    return {"x": x, "w": w, "y": y, "s": s, "a": a, "c": c}


@pytest.mark.parametrize("jit", [False, True])
def test_graph_def_roundtrip_runs_the_same(jit: bool) -> None:
    t = _net()
    xv = np.array([[1, -2, 3], [0.5, 0.5, -1]], np.float32)
    cfg = tf.ConfigProto(jit=jit)
    with tf.Session(config=cfg) as sess:
        sess.run(tf.global_variables_initializer())
        want = sess.run([t["y"], t["s"], t["a"], t["c"]], {t["x"]: xv})
        gd = tf.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), ["s", "a", "c"])
    assert {n.op for n in gd.node} >= {"Const", "MatMul", "Sum", "ArgMax", "Cumsum"}
    assert not any(n.op == "VariableV2" for n in gd.node)
    with tf.Graph().as_default():
        xx = tf.placeholder(tf.float32, [None, 3])
        outs = tf.import_graph_def(gd, input_map={"x:0": xx}, return_elements=["y:0", "s:0", "a:0", "c:0"],
                                   name="frozen")
        assert outs[0].name == "frozen/y:0"
        with tf.Session(config=cfg) as sess:
            got = sess.run(outs, {xx: xv})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_messages_are_protobuf() -> None:
    _net()
    gd = tf.get_default_graph().as_graph_def()
    for n in gd.node:
        n.device = "/cpu:0"
    again = text_format.Parse(text_format.MessageToString(gd), tf.GraphDef())
    assert again == gd and all(n.device == "/cpu:0" for n in again.node)
    assert gd.node[0].attr["dtype"].type == tf.float32.as_datatype_enum
    assert isinstance(gd.node[0], tf.NodeDef)


def test_tf_frozen_graph_gives_tf_outputs() -> None:
    e = np.load(DATA / "expected.npz")
    gd = tf.GraphDef()
    gd.ParseFromString((DATA / "frozen.pb").read_bytes())
    out, = tf.import_graph_def(gd, return_elements=["out:0"], name="")
    for jit in (False, True):
        with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
            np.testing.assert_allclose(sess.run(out, {"x:0": e["x"]}), e["out"], rtol=1e-5, atol=1e-6)


def test_tf_meta_graph_restores_and_trains_like_tf() -> None:
    e = np.load(DATA / "expected.npz")
    saver = tf.train.import_meta_graph(str(DATA / "model.ckpt.meta"))
    assert sorted(v.op.name for v in tf.global_variables()) == ["b", "v", "w"]
    feed = {"x:0": e["x"], "y_:0": e["y"]}
    with tf.Session() as sess:
        saver.restore(sess, str(DATA / "model.ckpt"))
        np.testing.assert_allclose(sess.run("out:0", feed), e["out"], rtol=1e-5, atol=1e-6)
        sess.run(tf.get_collection("train_op")[0], feed)
        np.testing.assert_allclose(sess.run("loss:0", feed), e["loss_after_step4"], rtol=1e-5)
        np.testing.assert_allclose(sess.run("w:0"), e["w_after_step4"], rtol=1e-5, atol=1e-6)


def test_tf_write_graph_text_parses() -> None:
    gd = text_format.Parse((DATA / "graph.pbtxt").read_text(), tf.GraphDef())
    assert any(n.op == "ApplyGradientDescent" for n in gd.node)


def test_import_meta_graph_into_graph_holding_the_same_ops(tmp_path: pathlib.Path) -> None:
    """Build v1/v2, save, import the .meta into the same graph: names made unique as TF makes them."""
    v1 = tf.Variable(tf.constant(1.0, shape=[2]), name="v1")
    tf.Variable(tf.constant(2.0, shape=[5]), name="v2")
    saver = tf.train.Saver()
    (tmp_path / "log").mkdir()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(v1.assign([3.0, 4.0]))
        saver.save(sess, str(tmp_path / "log" / "model.ckpt"))
    with tf.Session() as sess:
        saver = tf.train.import_meta_graph(str(tmp_path / "log" / "model.ckpt.meta"))
        saver.restore(sess, tf.train.latest_checkpoint(str(tmp_path / "log")))
        assert sess.run("v1:0").tolist() == [3.0, 4.0]
    names = {op.name for op in tf.get_default_graph().get_operations()}
    assert {"v1_1", "v1/Assign_1", "v1/read_1", "v2_1"} <= names  # TF's importer's names


def test_write_graph_text_and_binary(tmp_path: pathlib.Path) -> None:
    _net()
    p1 = tf.train.write_graph(tf.get_default_graph(), str(tmp_path), "g.pbtxt")
    p2 = tf.train.write_graph(tf.get_default_graph().as_graph_def(), str(tmp_path), "g.pb", as_text=False)
    a = text_format.Parse(pathlib.Path(p1).read_text(), tf.GraphDef())
    b = tf.GraphDef()
    b.ParseFromString(pathlib.Path(p2).read_bytes())
    assert a == b and len(a.node) >= len(tf.get_default_graph().get_operations())


def test_graph_util_surgery() -> None:
    x = tf.placeholder(tf.float32, [2], name="x")
    i = tf.identity(x, name="i")
    y = tf.check_numerics(i * 2.0, "bad", name="chk")
    tf.identity(y, name="out")
    tf.constant(1.0, name="unused")
    gd = tf.get_default_graph().as_graph_def()
    sub = tf.graph_util.extract_sub_graph(gd, ["out"])
    assert "unused" not in {n.name for n in sub.node}
    lean = tf.graph_util.remove_training_nodes(sub, protected_nodes=["out"])
    ops = {n.name: n for n in lean.node}
    assert "i" not in ops and "chk" not in ops and list(ops["out"].input) == ["mul"]
    with pytest.raises(AssertionError, match="nope is not in graph"):
        tf.graph_util.extract_sub_graph(gd, ["nope"])


def test_bad_graph_defs() -> None:
    gd = tf.GraphDef()
    gd.node.add(name="a", op="NoSuchOp")
    with pytest.raises(tf.errors.NotFoundError, match="NoSuchOp.*'a'"):
        tf.import_graph_def(gd)
    gd = tf.GraphDef()
    gd.node.add(name="a", op="Identity", input=["b"]).attr["T"].type = 1
    gd.node.add(name="b", op="Identity", input=["a"]).attr["T"].type = 1
    with pytest.raises(ValueError, match="cycle"):
        tf.import_graph_def(gd)
    gd = tf.GraphDef()
    gd.node.add(name="a", op="Identity", input=["missing"]).attr["T"].type = 1
    with pytest.raises(ValueError, match="missing"):
        tf.import_graph_def(gd)
    gd = tf.GraphDef()
    gd.node.add(name="p", op="Placeholder").attr["dtype"].i = 3  # an int where a type belongs
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        tf.import_graph_def(gd)
    with pytest.raises(ValueError, match="not found in graph_def"):
        tf.import_graph_def(tf.GraphDef(), input_map={"x:0": tf.constant(1.0)})


def test_garbled_meta_file_is_data_loss_naming_it(tmp_path: pathlib.Path) -> None:
    raw = (DATA / "model.ckpt.meta").read_bytes()
    bad = tmp_path / "bad.meta"
    for damaged in (raw[: len(raw) // 2], b"\xff" * 40):
        bad.write_bytes(damaged)
        with pytest.raises(tf.errors.DataLossError, match="bad.meta"):
            tf.train.import_meta_graph(str(bad))


# Op types of jitflow that travel in another form, with where it is tested.
_HOOKED = set(op_attrs.EXPORT_HOOKS)


def test_every_registered_op_exports_or_has_a_reason() -> None:
    """Every op type either has TF's OpDef (export/import by the generic rule or a hook) or a reason."""
    tf_types = set(op_schemas.tf_op_types())
    for t in registry.registered_types():
        if t in op_attrs.NOT_EXPORTED:
            assert op_attrs.NOT_EXPORTED[t]
            continue
        assert t in tf_types or t in _HOOKED, f"{t}: no TensorFlow OpDef, no export hook, no reason"


def test_tf_saved_model_loads_and_ours_round_trips(tmp_path: pathlib.Path) -> None:
    e = np.load(DATA / "expected.npz")
    serve = [tf.saved_model.tag_constants.SERVING]
    with tf.Session(graph=tf.Graph()) as sess:
        mg = tf.saved_model.loader.load(sess, serve, str(DATA / "saved_model"))
        sig = mg.signature_def[tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
        x, out = sig.inputs["x"].name, sig.outputs["out"].name
        np.testing.assert_allclose(sess.run(out, {x: e["x"]}), e["out"], rtol=1e-5, atol=1e-6)
        g = sess.graph
        tf.saved_model.simple_save(sess, str(tmp_path / "ours"), {"x": g.get_tensor_by_name(x)},
                                   {"out": g.get_tensor_by_name(out)})
    with tf.Session(graph=tf.Graph()) as sess:
        mg = tf.saved_model.loader.load(sess, serve, str(tmp_path / "ours"))
        sig = mg.signature_def["serving_default"]
        assert sig.method_name == "tensorflow/serving/predict"
        np.testing.assert_allclose(sess.run(sig.outputs["out"].name, {sig.inputs["x"].name: e["x"]}), e["out"],
                                   rtol=1e-5, atol=1e-6)
        with pytest.raises(RuntimeError, match="could not be found"):
            tf.saved_model.loader.load(sess, ["train"], str(tmp_path / "ours"))
    with pytest.raises(AssertionError, match="already exists"):
        tf.saved_model.builder.SavedModelBuilder(str(tmp_path / "ours"))


def test_file_writer_writes_the_graph_event(tmp_path: pathlib.Path) -> None:
    import struct

    from jitflow.protos.event import Event

    _net()
    w = tf.summary.FileWriter(str(tmp_path), tf.get_default_graph())
    w.close()
    raw = next(tmp_path.glob("events.out.tfevents.*")).read_bytes()
    events, pos = [], 0
    while pos < len(raw):
        (n,) = struct.unpack_from("<Q", raw, pos)
        events.append(Event.FromString(raw[pos + 12:pos + 12 + n]))
        pos += 12 + n + 4
    assert events[0].file_version == "brain.Event:2"
    gd = tf.GraphDef.FromString(events[1].graph_def)
    assert [n.name for n in gd.node][:3] == ["x", "w/initial_value", "w"]
    assert "_output_shapes" in gd.node[0].attr


def test_summary_message_through_file_writer(tmp_path: pathlib.Path) -> None:
    from jitflow.summary import summary_iterator

    w = tf.summary.FileWriter(str(tmp_path))
    w.add_summary(tf.Summary(value=[tf.Summary.Value(tag="acc", simple_value=0.25)]), 3)
    w.close()
    events = list(summary_iterator(str(next(tmp_path.glob("events.out.tfevents.*")))))
    assert events[-1]["step"] == 3 and events[-1]["summary"]["acc"] == 0.25


def test_monitored_training_session_writes_graph_files(tmp_path: pathlib.Path) -> None:
    step = tf.train.get_or_create_global_step()
    train = tf.assign_add(step, 1)
    with tf.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path)) as sess:
        sess.run(train)
    gd = text_format.Parse((tmp_path / "graph.pbtxt").read_text(), tf.GraphDef())
    assert "global_step" in {n.name for n in gd.node}


def test_coverage_table_lists_only_ops_jitflow_has() -> None:
    """tf_ops.pbtxt is the coverage table: TF op types jitflow runs, plus the saver I/O ops that
    jitflow's Saver replaces (written on export, skipped on import)."""
    from jitflow.train.saver_nodes import SAVER_IO_OPS

    have = set(registry.registered_types())
    extra = set(op_schemas.tf_op_types()) - have
    assert extra <= SAVER_IO_OPS | {"StringJoin"}, sorted(extra)
    assert len(have & set(op_schemas.tf_op_types())) >= 150


def _many_ops() -> tuple[list[tf.Tensor], dict]:
    """A graph touching many op families (shapes, reductions, nn, control flow, random, state)."""
    x = tf.placeholder(tf.float32, [2, 3, 4, 2], name="x")
    i = tf.placeholder(tf.int32, [3], name="i")
    v = tf.Variable(tf.truncated_normal([2, 3], seed=3), name="v")
    flat = tf.reshape(x, [2, -1])
    outs = [
        tf.reduce_mean(x, axis=[1, 2], keepdims=True), tf.reduce_max(x), tf.reduce_prod(flat, 0),
        tf.argmin(flat, 1), tf.cumprod(flat, axis=1, exclusive=True, reverse=True),
        tf.nn.conv2d(x, tf.ones([2, 2, 2, 3]), [1, 1, 2, 1], "SAME"),
        tf.nn.max_pool(x, [1, 2, 2, 1], [1, 1, 1, 1], "VALID"),
        tf.nn.avg_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "SAME"), tf.nn.bias_add(x, [1.0, 2.0]),
        tf.nn.softmax(flat), tf.nn.log_softmax(flat), tf.nn.leaky_relu(flat, 0.3), tf.nn.elu(flat),
        tf.concat([flat, flat], 1), tf.stack([flat, flat], axis=1), tf.unstack(flat, axis=0)[1],
        tf.split(flat, 2, axis=1)[0], tf.transpose(x, [3, 0, 1, 2]), tf.strided_slice(x, [0, 1], [2, 3], [1, 2]),
        x[:, 1:, ::2, 0], tf.gather(flat, i, axis=1), tf.one_hot(i, 5, on_value=2.0, axis=0),
        tf.tile(flat, [2, 1]), tf.pad(flat, [[1, 0], [0, 2]], mode="REFLECT"), tf.squeeze(x[:, :1], [1]),
        tf.where(flat > 0.0, flat, -flat), tf.cast(flat, tf.int32), tf.matmul(flat, flat, transpose_b=True),
        tf.cond(tf.reduce_sum(flat) > 0.0, lambda: flat * 2.0, lambda: flat - 1.0),
        tf.add_n([flat, flat, flat]), tf.maximum(flat, 0.5), tf.math.floormod(i, 2), tf.range(1, 7, 2),
        tf.eye(3), tf.shape(x), tf.size(x), tf.expand_dims(flat, -1), tf.reverse(flat, [1]),
        tf.matmul(v, tf.ones([3, 2])), tf.clip_by_value(flat, -0.5, 0.5), tf.nn.top_k(flat, 2)[0],
    ]
    loss = tf.reduce_sum(tf.square(outs[5])) + tf.reduce_sum(outs[6]) + tf.reduce_sum(outs[7] * 2.0)
    loss += tf.reduce_sum(outs[8] + tf.ones([4, 2]))
    loss += tf.reduce_mean(outs[9] * outs[12]) + tf.reduce_sum(outs[39] * v[0, 0])
    outs += tf.gradients(loss, [x, v])  # gradient ops, UnbroadcastTo and friends travel too
    return outs, {x: np.random.RandomState(1).randn(2, 3, 4, 2).astype(np.float32), i: np.array([0, 3, 7])}


@pytest.mark.parametrize("jit", [False, True])
def test_many_ops_roundtrip_through_graph_def(jit: bool) -> None:
    outs, feed = _many_ops()
    g1 = tf.get_default_graph()
    cfg = tf.ConfigProto(jit=jit)
    with tf.Session(config=cfg) as sess:
        sess.run(tf.global_variables_initializer())
        want = sess.run(outs, feed)
    gd = tf.GraphDef.FromString(g1.as_graph_def().SerializeToString())
    with tf.Graph().as_default() as g2:
        tf.import_graph_def(gd, name="")
        ops1 = {op.name: op for op in g1.get_operations()}
        for op in g2.get_operations():
            if op.name in ops1 and ops1[op.name].type not in ("Eye", "UnbroadcastTo"):  # written as other ops
                assert op.type == ops1[op.name].type, op.name
                for k, a in ops1[op.name].attrs.items():
                    b = op.attrs.get(k)
                    if k == "axis" and a is None:  # "all axes" travels as TF's Const of range(rank)
                        a = tuple(range(op.inputs[0].shape.ndims))
                    if isinstance(a, float):  # AttrValue floats are float32, in TF too
                        a, b = np.float32(a), np.float32(b)
                    same = np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b or (
                        isinstance(a, (tuple, list)) and list(a) == list(b))
                    assert same, (op.name, k, a, b)
        fetches = [g2.get_tensor_by_name(t.name) for t in outs]
        with tf.Session(config=cfg) as sess:
            sess.run(g2.get_operation_by_name("v/Assign"))
            got = sess.run(fetches, {g2.get_tensor_by_name(t.name): v for t, v in feed.items()})
    for t, a, b in zip(outs, got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=t.name)


def test_run_graph_serves_tf_models(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jitflow.cli import main

    e = np.load(DATA / "expected.npz")
    for model in ("frozen.pb", "saved_model"):
        got = tf.run_graph(str(DATA / model), {"x": e["x"]}, ["out"])
        np.testing.assert_allclose(got["out"], e["out"], rtol=1e-5, atol=1e-6)
    np.save(tmp_path / "x.npy", e["x"])
    assert main(["run-graph", str(DATA / "saved_model"), "--input", f"x={tmp_path / 'x.npy'}", "--output", "out",
                 "--save", str(tmp_path / "o")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "o" / "out.npy"), e["out"], rtol=1e-5, atol=1e-6)
    assert main(["run-graph", str(DATA / "frozen.pb"), "--output", "out"]) == 1  # x not fed
    assert "must feed a value for placeholder tensor 'x'" in capsys.readouterr().err


def test_text_meta_graph_and_garbled_pb(tmp_path: pathlib.Path) -> None:
    t = _net()
    path = str(tmp_path / "m.meta")
    tf.train.export_meta_graph(path, as_text=True, clear_devices=True)
    assert text_format.Parse(pathlib.Path(path).read_text(), tf.MetaGraphDef()).graph_def.node
    tf.reset_default_graph()
    assert tf.train.import_meta_graph(path) is not None  # a Saver over the imported variable
    assert [v.op.name for v in tf.global_variables()] == [t["w"].op.name]
    bad = tmp_path / "bad.pb"
    bad.write_bytes((DATA / "frozen.pb").read_bytes()[:100])
    with pytest.raises(tf.errors.DataLossError, match="bad.pb"):
        tf.run_graph(str(bad), {}, ["out"])
