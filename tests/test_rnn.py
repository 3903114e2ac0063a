"""RNN cells and static/dynamic rnn: TF's variable names, seeded values, outputs, gradients and training
(tests/data/rnn_program.py against what TensorFlow printed), plus finite differences and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jitflow as tf
from tests.gradcheck import numeric_grad

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("jit", ["1", "0"])
def test_rnn_program_matches_tensorflow(jit):
    env = {**os.environ, "JITFLOW_JIT": jit}
    r = subprocess.run([sys.executable, os.path.join(DATA, "rnn_program.py")], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = json.load(open(os.path.join(DATA, "tf_rnn.json")))
    assert got["names"] == want["names"]
    for key in ("init", "init_first", "feat", "grads", "losses", "final"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_dynamic_rnn_gradient_matches_finite_differences_and_static_rnn():
    x0 = np.random.RandomState(3).randn(2, 4, 3)
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        x = tf.placeholder(tf.float64, [2, 4, 3])
        seq = tf.constant([4, 2])
        cell = tf.nn.rnn_cell.LSTMCell(3, use_peepholes=True, dtype=tf.float64)
        out, st = tf.nn.dynamic_rnn(cell, x, sequence_length=seq, dtype=tf.float64)
        s_out, s_st = tf.nn.static_rnn(cell, tf.unstack(x, 4, 1), sequence_length=seq, dtype=tf.float64,
                                       scope="rnn")
        loss = tf.reduce_sum(out * out) + tf.reduce_sum(st.c)
        (gx,) = tf.gradients(loss, [x])
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            o, so = s.run([out, tf.stack(s_out, 1)], {x: x0})
            np.testing.assert_allclose(o, so, rtol=1e-12)
            assert np.all(o[1, 2:] == 0)  # past the sequence's end: zeros
            np.testing.assert_allclose(s.run(gx, {x: x0}), numeric_grad(s, loss, [x], [x0], 0), rtol=1e-5,
                                       atol=1e-8)


def test_zero_state_names_and_shapes():
    with tf.Graph().as_default():
        cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.BasicLSTMCell(3), tf.nn.rnn_cell.GRUCell(2)])
        z = cell.zero_state(5, tf.float32)
        assert isinstance(z[0], tf.nn.rnn_cell.LSTMStateTuple)
        assert z[0].c.shape.as_list() == [5, 3] and z[1].shape.as_list() == [5, 2]
        assert tf.contrib.rnn.BasicLSTMCell is tf.nn.rnn_cell.BasicLSTMCell


def test_sequence_length_longer_than_time_axis():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 3, 1])
        out, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(2), x, sequence_length=[3, 5], dtype=tf.float32)
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            with pytest.raises(tf.errors.InvalidArgumentError, match="sequence_length"):
                s.run(out, {x: np.zeros((2, 3, 1), np.float32)})


def test_dropout_wrapper_keeps_tf_seed_rule_and_residual_adds():
    with tf.Graph().as_default():
        x = tf.ones([2, 3])
        cell = tf.nn.rnn_cell.ResidualWrapper(tf.nn.rnn_cell.BasicRNNCell(3))
        out, _ = cell(x, cell.zero_state(2, tf.float32))
        drop = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicRNNCell(3), output_keep_prob=0.5, seed=5)
        d_out, _ = drop(x, drop.zero_state(2, tf.float32))
        assert drop._gen_seed("output", 0) == drop._gen_seed("output", 0) != drop._gen_seed("input", 0)
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            o, inner = s.run([out, out - x])
            np.testing.assert_allclose(o, inner + 1.0, rtol=1e-6)
            d = s.run(d_out)
            assert np.all((d == 0) | (np.abs(d) > 0))
        with pytest.raises(ValueError, match="keep_prob"):
            tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.GRUCell(2), input_keep_prob=1.5)


def test_saver_checkpoints_a_loop_model(tmp_path):
    """Saver.save writes the checkpoint and the .meta (the loop and its gradient as TF 1.x frames);
    restoring into the rebuilt graph, or into the imported meta graph, gives the same model."""
    x0 = np.random.RandomState(0).rand(2, 3, 1).astype(np.float32)
    path = str(tmp_path / "model")

    def build():
        x = tf.placeholder(tf.float32, [2, 3, 1], name="x")
        out, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicLSTMCell(2), x, dtype=tf.float32)
        loss = tf.reduce_sum(out * out)
        return x, loss, tf.train.GradientDescentOptimizer(0.1).minimize(loss)

    with tf.Graph().as_default():
        x, loss, train = build()
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            s.run(train, {x: x0})
            tf.train.Saver().save(s, path)
            want = s.run(loss, {x: x0})
    assert os.path.exists(path + ".index") and os.path.exists(path + ".meta")
    with tf.Graph().as_default():
        x, loss, _ = build()
        with tf.Session() as s:
            tf.train.Saver().restore(s, path)
            assert s.run(loss, {x: x0}) == pytest.approx(want, rel=1e-6)
    with tf.Graph().as_default():
        saver = tf.train.import_meta_graph(path + ".meta")
        with tf.Session() as s:
            saver.restore(s, path)
            assert s.run(loss.name, {x.name: x0}) == pytest.approx(want, rel=1e-6)


def test_dropout_inside_loops_draws_tensorflows_masks():
    r = subprocess.run([sys.executable, os.path.join(DATA, "dropout_rnn_program.py")], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = json.load(open(os.path.join(DATA, "tf_dropout_rnn.json")))
    for key in ("run1", "run2", "static"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
