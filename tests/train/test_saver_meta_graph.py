"""Meta graphs: export/import round trips of ops, attrs, collections and the Saver; damaged files."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.framework.tensor_shape import TensorShape
from jitflow.train import meta_graph_json as meta_graph
from jitflow.train.checkpoint import crc

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tf_checkpoint"


def _build() -> dict[str, object]:
    tf.set_random_seed(7)
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.Variable(tf.random_normal([3, 2], seed=1), name="w")
    with tf.device("/cpu:0"):
        b = tf.Variable(np.array([0.5, -1.0], np.float32), name="b", trainable=False)
    y = tf.add(tf.matmul(x, w), b, name="y")
    with tf.control_dependencies([tf.assign_add(b, [1.0, 1.0]).op]):
        z = tf.identity(y, name="z")
    tf.add_to_collection("outputs", y)
    tf.add_to_collection("outputs", z.op)
    tf.add_to_collection("notes", "a note")
    return {"x": x, "w": w, "b": b, "y": y, "z": z}


def _op_summary(g: tf.Graph) -> list[tuple]:
    return [(op.type, op.name, [t.name for t in op.inputs], [c.name for c in op.control_inputs], op.device)
            for op in g.get_operations()]


def _attrs_equal(a: dict, b: dict) -> bool:
    """`a` (imported) has every attr of `b` (built) with the same value; TF's defaults may come on top."""
    if not set(b) <= set(a):
        return False
    for k in b:
        va, vb = a[k], b[k]
        if isinstance(va, np.ndarray):
            if not (isinstance(vb, np.ndarray) and va.dtype == vb.dtype and np.array_equal(va, vb)):
                return False
        elif type(va) is not type(vb) or va != vb:
            return False
    return True


def test_roundtrip_ops_attrs_collections(tmp_path: pathlib.Path) -> None:
    t = _build()
    g1 = tf.get_default_graph()
    path = str(tmp_path / "m.meta")
    tf.train.export_meta_graph(path)
    before = _op_summary(g1)
    ops1 = {op.name: op for op in g1.get_operations()}
    tf.reset_default_graph()
    saver = tf.train.import_meta_graph(path)
    g2 = tf.get_default_graph()
    assert _op_summary(g2) == before
    for op in g2.get_operations():
        assert _attrs_equal(op.attrs, ops1[op.name].attrs), op.name
    assert g2.get_operation_by_name("b").device == t["b"].op.device != ""  # type: ignore[attr-defined]
    # Collections: same kinds of items, variables shared between collections.
    outs = g2.get_collection("outputs")
    assert isinstance(outs[0], tf.Tensor) and outs[0].name == "y:0"
    assert isinstance(outs[1], tf.Operation) and outs[1].name == "z"
    assert g2.get_collection("notes") == [b"a note"]  # a bytes_list, as TF reads it back
    gv = {v.op.name: v for v in tf.global_variables()}
    assert sorted(gv) == ["b", "w"] and [v.op.name for v in tf.trainable_variables()] == ["w"]
    assert tf.trainable_variables()[0] is gv["w"]
    assert saver is not None
    # The imported graph runs, and new ops can be added to it.
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        wv = sess.run(gv["w"])
        xv = np.ones((4, 3), np.float32)
        yv = sess.run("y:0", {"x:0": xv})
        np.testing.assert_allclose(yv, xv @ wv + np.array([0.5, -1.0], np.float32), rtol=1e-6)
        s = tf.reduce_sum(g2.get_tensor_by_name("y:0"))
        np.testing.assert_allclose(sess.run(s, {"x:0": xv}), yv.sum(), rtol=1e-5)


def test_random_values_reproduce_after_import(tmp_path: pathlib.Path) -> None:
    _build()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        w1 = sess.run("w:0")
    path = str(tmp_path / "m.meta")
    tf.train.export_meta_graph(path)
    tf.reset_default_graph()
    tf.train.import_meta_graph(path)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run("w:0"), w1)


def test_saver_def_roundtrip_restores(tmp_path: pathlib.Path) -> None:
    a = tf.Variable([1.0, 2.0], name="a")
    saver = tf.train.Saver({"renamed": a}, max_to_keep=3)
    with tf.Session() as sess:
        sess.run(a.initializer)
        sess.run(tf.assign(a, [5.0, 6.0]))
        p = saver.save(sess, str(tmp_path / "m"), global_step=1)
    tf.reset_default_graph()
    saver2 = tf.train.import_meta_graph(p + ".meta")
    assert saver2.saver_def["var_list"] == {"renamed": "a"} and saver2.saver_def["max_to_keep"] == 3
    with tf.Session() as sess:
        saver2.restore(sess, p)
        assert sess.run("a:0").tolist() == [5.0, 6.0]


def test_import_scope_and_export_scope(tmp_path: pathlib.Path) -> None:
    with tf.name_scope("inner"):
        c = tf.constant([1.0, 2.0], name="c")
        tf.multiply(c, 3.0, name="m")
    tf.constant(0.0, name="outside")
    body = tf.train.export_meta_graph(export_scope="inner")
    names = [n.name for n in body.graph_def.node]
    assert "outside" not in names and "c" in names and "m" in names  # scope stripped
    assert not any(n.startswith("inner/") for n in names)
    tf.reset_default_graph()
    assert tf.train.import_meta_graph(body, import_scope="new") is None  # no variables
    with tf.Session() as sess:
        assert sess.run("new/m:0").tolist() == [3.0, 6.0]
    with pytest.raises(KeyError):
        tf.get_default_graph().get_operation_by_name("outside")


def test_clear_devices(tmp_path: pathlib.Path) -> None:
    with tf.device("/cpu:0"):
        tf.constant(1.0, name="c")
    body = tf.train.export_meta_graph()
    tf.reset_default_graph()
    tf.train.import_meta_graph(body, clear_devices=True)
    assert tf.get_default_graph().get_operation_by_name("c").device == ""


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=10),
    st.sampled_from([tf.float32, tf.int64, tf.bool, tf.string, tf.float16]),
    st.sampled_from([TensorShape(None), TensorShape([]), TensorShape([None, 3]), TensorShape([2, 0])]),
)


@settings(max_examples=100, deadline=None)
@given(st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.lists(inner, max_size=3).map(tuple)), max_leaves=6))
def test_attr_value_roundtrip(value: object) -> None:
    got = _through_file(value)
    assert got == value and type(got) is type(value)


def _through_file(value: object) -> object:
    """Encodes `value` as an op attr, serializes a meta graph holding it, parses it back."""
    op = {"name": "a", "type": "NoOp", "inputs": [], "control_inputs": [], "device": "",
          "attrs": {"v": meta_graph.encode_value(value)}}
    body = meta_graph.loads(meta_graph.dumps({"ops": [op]}))
    return meta_graph.decode_value(body["ops"][0]["attrs"]["v"])


@pytest.mark.parametrize("arr", [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(3, np.int64),
                                 np.array([True, False]), np.array([], np.float64).reshape(0, 2),
                                 np.array([b"a", b"\xff"], dtype=object), np.array([np.nan, -np.inf])])
def test_array_attr_roundtrip(arr: np.ndarray) -> None:
    for got in (_through_file(arr), _through_file([arr, (arr,)])[1][0]):  # type: ignore[index]
        assert isinstance(got, np.ndarray) and got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
    scalar = _through_file(np.float32(1.5))
    assert isinstance(scalar, np.float32) and scalar == 1.5


def test_big_endian_and_noncontiguous_arrays() -> None:
    base = np.arange(12, dtype=">f8").reshape(3, 4)
    got = _through_file(base.T)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, base.T)


def test_unserializable_attr_is_value_error() -> None:
    with pytest.raises(ValueError, match="Cannot serialize"):
        meta_graph.encode_value(object())


def test_damaged_or_foreign_files(tmp_path: pathlib.Path) -> None:
    tf.constant(1.0, name="c")
    path = tmp_path / "m.meta"
    tf.train.export_meta_graph(str(path))
    good = path.read_bytes()
    with pytest.raises(OSError, match="does not exist"):
        tf.train.import_meta_graph(str(tmp_path / "nope.meta"))
    for damaged in (good[:-5], good[:20]):
        path.write_bytes(damaged)
        tf.reset_default_graph()
        with pytest.raises(tf.errors.DataLossError, match="m.meta"):
            tf.train.import_meta_graph(str(path))
    path.write_bytes(good.replace(b"Const", b"Konst"))
    with pytest.raises(tf.errors.NotFoundError, match="Konst"):
        tf.train.import_meta_graph(str(path))
    tf.reset_default_graph()
    with pytest.raises(tf.errors.NotFoundError, match="VarHandleOp"):  # TF2's resource variables
        tf.train.import_meta_graph(str(DATA / "model.ckpt-3.meta"))


def test_former_jitflow_format_is_still_read(tmp_path: pathlib.Path) -> None:
    _build()
    path = str(tmp_path / "old.meta")
    meta_graph.write_meta_graph_file(path, meta_graph.export_meta_graph())
    tf.reset_default_graph()
    with pytest.warns(DeprecationWarning, match="former meta graph format"):
        tf.train.import_meta_graph(path)
    assert tf.get_default_graph().get_operation_by_name("y").type == "AddV2"


def test_well_formed_but_inconsistent_body_is_data_loss() -> None:
    body = {"ops": [{"name": "a", "type": "Identity", "inputs": ["missing:0"], "control_inputs": [],
                     "device": "", "attrs": {}}]}
    with pytest.raises(tf.errors.DataLossError, match="missing"):
        tf.train.import_meta_graph(body)
    with pytest.raises(tf.errors.DataLossError):
        tf.train.import_meta_graph({"ops": [{"name": "a"}]})
    op = {"name": "a", "type": "Const", "inputs": [], "control_inputs": [], "device": "",
          "attrs": {"value": meta_graph.encode_value(np.zeros(3, np.float32))}}
    raw = meta_graph.dumps({"ops": [op]})
    nl = raw.index(b"\n")
    header = json.loads(raw[:nl])
    payload = raw[nl + 1:nl + 1 + header["length"]].replace(b'"blob":[0,12]', b'"blob":[8,12]')
    header.update(length=len(payload), crc32c=crc.value(payload))  # consistent checksums, bad reference
    bad = json.dumps(header).encode() + b"\n" + payload + raw[nl + 1 + len(payload):]
    with pytest.raises(tf.errors.DataLossError, match="out of range"):
        meta_graph.loads(bad)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_damage_to_meta_graph_is_data_loss(data: st.DataObject) -> None:
    g = tf.Graph()
    with g.as_default():
        tf.Variable(np.arange(4, dtype=np.float32), name="v")
        raw = bytearray(meta_graph.dumps(meta_graph.export_meta_graph()))
    pos = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        raw[pos] ^= data.draw(st.integers(1, 255))
    else:
        del raw[pos:]
    with pytest.raises(tf.errors.DataLossError):
        meta_graph.loads(bytes(raw))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_damage_to_tf_meta_graph_is_an_error_class(data: st.DataObject) -> None:
    """Protocol buffers carry no checksum: a damaged file loads, or fails with one of TF's errors."""
    g = tf.Graph()
    with g.as_default():
        tf.Variable(np.arange(4, dtype=np.float32), name="v")
        raw = bytearray(tf.train.export_meta_graph().SerializeToString())
    pos = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        raw[pos] ^= data.draw(st.integers(1, 255))
    else:
        del raw[pos:]
    meta = tf.train.export_meta_graph.__globals__["MetaGraphDef"]()
    try:
        meta.ParseFromString(bytes(raw))
    except Exception:  # protobuf's DecodeError: what read_meta_graph_file turns into DataLossError
        return
    with tf.Graph().as_default():
        try:
            tf.train.import_meta_graph(meta)
        except (tf.errors.OpError, ValueError, TypeError, KeyError):
            pass


def test_input_map_rewires_imported_ops() -> None:
    x = tf.placeholder(tf.float32, [2], name="x")
    tf.multiply(x, 2.0, name="y")
    body = tf.train.export_meta_graph()
    tf.reset_default_graph()
    c = tf.constant([1.0, 5.0], name="c")
    tf.train.import_meta_graph(body, import_scope="imp", input_map={"x": c})
    with tf.Session() as sess:
        assert sess.run("imp/y:0").tolist() == [2.0, 10.0]  # no feed needed: reads c
    with pytest.raises(TypeError):
        tf.train.import_meta_graph(body, import_scope="bad", input_map={"x": 3.0})
    with pytest.raises(TypeError, match="unexpected"):
        tf.train.import_meta_graph(body, import_scope="other", bogus=1)
