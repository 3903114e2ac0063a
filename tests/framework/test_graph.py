"""Graph construction: names, scopes, control dependencies, devices, collections, conversion."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf


def test_unique_names_and_tensor_names():
    a = tf.constant(1.0)
    b = tf.constant(2.0)
    c = tf.add(a, b)
    d = tf.add(a, b)
    assert [a.op.name, b.op.name, c.op.name, d.op.name] == ["Const", "Const_1", "Add", "Add_1"]
    assert c.name == "Add:0" and c.op.type == "AddV2"
    assert c.op.inputs == (a, b) and c.op.outputs == [c]
    assert c.graph is tf.get_default_graph()


def test_name_scopes_nest_and_uniquify():
    with tf.name_scope("s") as s1:
        x = tf.constant(1, name="x")
        with tf.name_scope("inner"):
            y = tf.constant(1, name="y")
    with tf.name_scope("s") as s2:
        z = tf.constant(1, name="x")
    assert (s1, s2) == ("s/", "s_1/")
    assert (x.op.name, y.op.name, z.op.name) == ("s/x", "s/inner/y", "s_1/x")
    with tf.name_scope(None):
        assert tf.constant(0, name="root").op.name == "root"


def test_lookup_by_name():
    g = tf.get_default_graph()
    v = tf.constant([1, 2], name="v1")
    assert g.get_tensor_by_name("v1:0") is v
    assert g.get_operation_by_name("v1") is v.op
    with pytest.raises(KeyError):
        g.get_tensor_by_name("nope:0")
    with pytest.raises(KeyError):
        g.get_tensor_by_name("v1:3")
    with pytest.raises(ValueError):
        g.get_tensor_by_name("v1")
    assert v.op in g.get_operations()


def test_static_shapes_and_broadcasting():
    x = tf.placeholder(tf.float32, [None, 784])
    assert x.shape.as_list() == [None, 784] and x.shape[1].value == 784
    y = x + tf.zeros([784])
    assert y.shape.as_list() == [None, 784]
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        _ = x + tf.zeros([3])
    with pytest.raises(ValueError):
        tf.matmul(tf.zeros([2, 3]), tf.zeros([4, 5]))


def test_dtype_mismatch_is_type_error():
    with pytest.raises(TypeError, match="does not match"):
        tf.add(tf.constant(1.0), tf.constant(1))
    with pytest.raises(TypeError):
        tf.constant(1) + 1.5


def test_python_values_take_the_tensor_dtype():
    x = tf.placeholder(tf.float64)
    assert (x * 2).dtype == tf.float64
    assert (2 - x).dtype == tf.float64
    assert tf.constant(np.arange(3)).dtype == tf.int64
    assert tf.constant([1.5]).dtype == tf.float32
    assert tf.constant(np.float64(1)).dtype == tf.float64


def test_operators_build_the_right_ops():
    a = tf.constant(7)
    b = tf.constant(2)
    ops = [a + b, a - b, a * b, a // b, a % b, -a, abs(a), a < b, a >= b]
    assert [t.op.type for t in ops] == ["AddV2", "Sub", "Mul", "FloorDiv", "FloorMod", "Neg", "Abs", "Less",
                                        "GreaterEqual"]
    assert (a / b).dtype == tf.float64  # int32 true division goes through float64, as in TF
    with tf.Session() as sess:
        assert sess.run([a + b, a // b, a % b, a / b, -a, a ** b]) == [9, 3, 1, 3.5, -7, 49]
        m = tf.constant([[1.0, 2.0]]) @ tf.constant([[3.0], [4.0]])
        assert sess.run(m).tolist() == [[11.0]]


def test_tensor_is_not_a_bool():
    with pytest.raises(TypeError):
        bool(tf.constant(True))


def test_control_dependencies_recorded():
    a = tf.constant(1)
    with tf.control_dependencies([a]):
        b = tf.constant(2)
        with tf.control_dependencies(None):
            c = tf.constant(3)
    assert b.op.control_inputs == [a.op]
    assert c.op.control_inputs == []


def test_device_strings_are_parsed_and_merged():
    with tf.device("/cpu:0"):
        a = tf.constant(1)
    with tf.device("/job:ps/task:1"):
        with tf.device("/device:GPU:1"):
            b = tf.constant(1)
    with tf.device(lambda op: "/job:worker" if op.type == "Const" else ""):
        c = tf.constant(1)
    assert a.device == "/device:CPU:0"
    assert b.device == "/job:ps/task:1/device:GPU:1"
    assert c.device == "/job:worker"
    with pytest.raises(ValueError):
        with tf.device("/bogus:thing:1"):
            pass


def test_collections():
    g = tf.get_default_graph()
    a = tf.constant(1, name="a")
    tf.add_to_collection("things", a)
    tf.add_to_collections(["x", "y"], a)
    assert tf.get_collection("things") == [a]
    assert g.get_collection("y") == [a]
    assert tf.get_collection("things", scope="b") == []
    tf.get_collection_ref("refd").append(1)
    assert tf.get_collection("refd") == [1]


def test_finalize_forbids_new_ops():
    g = tf.Graph()
    with g.as_default():
        tf.constant(1)
        g.finalize()
        with pytest.raises(RuntimeError, match="finalized"):
            tf.constant(2)


def test_graphs_are_separate():
    g1, g2 = tf.Graph(), tf.Graph()
    with g1.as_default():
        a = tf.constant(1)
    with g2.as_default():
        with pytest.raises(ValueError):
            tf.add(a, tf.constant(1))
    assert tf.get_default_graph() is not g1


def test_indexing_via_getitem_is_installed():
    assert hasattr(tf.Tensor, "__getitem__")
