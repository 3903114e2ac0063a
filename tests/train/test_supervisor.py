"""tf.train.Supervisor: background checkpoints and summaries, restarts, stopping."""
from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import pytest

import jitflow as tf


def _model() -> tuple[tf.Tensor, tf.Operation]:
    gs = tf.train.get_or_create_global_step()
    w = tf.Variable(0.0, name="w")
    tf.summary.scalar("w", w)
    return gs, tf.group(tf.assign_add(gs, 1), tf.assign_add(w, 1.0))


def test_services_save_checkpoints_and_summaries(tmp_path: Path) -> None:
    tf.reset_default_graph()
    gs, train = _model()
    logdir = str(tmp_path / "log")
    sv = tf.train.Supervisor(logdir=logdir, save_model_secs=0.05, save_summaries_secs=0.05)
    with sv.managed_session() as sess:
        for _ in range(5):
            sess.run(train)
            time.sleep(0.03)
    assert tf.train.latest_checkpoint(logdir) is not None
    events = [e for p in glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
              for e in tf.train.summary_iterator(p)]
    statuses = [e.session_log.status for e in events if e.HasField("session_log")]
    assert statuses[0] == tf.SessionLog.START and tf.SessionLog.CHECKPOINT in statuses
    assert statuses[-1] == tf.SessionLog.STOP
    assert any(v.tag == "w_1" for e in events for v in e.summary.value)  # "w" is the variable's name
    # a restart (a new program: the same graph built again) restores the latest checkpoint
    tf.reset_default_graph()
    gs, train = _model()
    sv2 = tf.train.Supervisor(logdir=logdir, save_model_secs=0, save_summaries_secs=0)
    with sv2.managed_session() as sess:
        assert sess.run(gs) >= 1


def test_errors_propagate_and_stop_the_services(tmp_path: Path) -> None:
    tf.reset_default_graph()
    _, train = _model()
    sv = tf.train.Supervisor(logdir=str(tmp_path), save_model_secs=0.05, save_summaries_secs=0)
    with pytest.raises(ZeroDivisionError):
        with sv.managed_session() as sess:
            sess.run(train)
            raise ZeroDivisionError
    assert sv.should_stop() and not sv.coord.threads
    with pytest.raises(RuntimeError, match="finalized"):
        tf.constant(1.0)


def test_without_logdir_no_services_and_summary_computed_needs_writer() -> None:
    tf.reset_default_graph()
    gs, train = _model()
    sv = tf.train.Supervisor(logdir=None)
    assert sv.summary_writer is None and sv.save_path is None
    with sv.managed_session() as sess:
        sess.run(train)
        assert sess.run(gs) == 1 and not sv.coord.threads
        with pytest.raises(RuntimeError, match="summary writer"):
            sv.summary_computed(sess, sess.run(sv.summary_op))
