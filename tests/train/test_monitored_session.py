"""MonitoredTrainingSession and the session-run hooks."""
from __future__ import annotations

import logging
import os
import pathlib

import numpy as np
import pytest

import jitflow as tf


def _global_step() -> tf.Variable:
    return tf.train.get_or_create_global_step()


def _model() -> tuple[tf.Variable, tf.Operation, tf.Variable]:
    gs = _global_step()
    acc = tf.Variable(0.0, name="acc")
    train = tf.group(tf.assign_add(gs, 1), tf.assign_add(acc, 0.5))
    return gs, train, acc


def _steps(d: pathlib.Path) -> list[int]:
    return sorted(int(n.split("-")[1].split(".")[0]) for n in os.listdir(d) if n.endswith(".index"))


def test_saves_on_step_schedule_and_resumes(tmp_path: pathlib.Path) -> None:
    gs, train, acc = _model()
    with tf.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path), save_checkpoint_steps=10,
                                           save_checkpoint_secs=None,
                                           hooks=[tf.train.StopAtStepHook(last_step=35)]) as sess:
        assert sess.run(gs) == 0
        n = 0
        while not sess.should_stop():
            sess.run(train)
            n += 1
    assert n == 35
    assert _steps(tmp_path) == [0, 10, 20, 30, 35]  # at creation, every 10 steps, and at the end
    assert tf.train.load_checkpoint(str(tmp_path)).get_tensor("acc") == 17.5
    tf.reset_default_graph()
    gs, train, acc = _model()
    with tf.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path), save_checkpoint_steps=10,
                                           save_checkpoint_secs=None,
                                           hooks=[tf.train.StopAtStepHook(num_steps=5)]) as sess:
        assert sess.run([gs, acc]) == [35, 17.5]
        while not sess.should_stop():
            sess.run(train)
        assert sess.run(gs) == 40
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-40")


def test_without_checkpoint_dir_initializes_and_finalizes_graph() -> None:
    gs, train, acc = _model()
    with tf.train.MonitoredTrainingSession(hooks=[tf.train.StopAtStepHook(last_step=3)]) as sess:
        assert sess.run(acc) == 0.0
        with pytest.raises(RuntimeError, match="finalized"):
            tf.constant(1.0)
        while not sess.should_stop():
            sess.run(train)
    assert sess.should_stop()
    with pytest.raises(RuntimeError):
        sess.run(train)


class _Recorder(tf.train.SessionRunHook):
    def __init__(self, fetch: object) -> None:
        self.fetch = fetch
        self.events: list[object] = []

    def begin(self) -> None:
        self.events.append("begin")

    def after_create_session(self, session: object, coord: object) -> None:
        self.events.append("created")

    def before_run(self, run_context: tf.train.SessionRunContext) -> tf.train.SessionRunArgs:
        self.events.append(("before", run_context.original_args.fetches is not None))
        return tf.train.SessionRunArgs(self.fetch)

    def after_run(self, run_context: tf.train.SessionRunContext, run_values: tf.train.SessionRunValues) -> None:
        self.events.append(("after", float(run_values.results)))
        if run_context.session.run(self.fetch) >= 2.0:  # re-read: the fetched value may predate the run
            run_context.request_stop()

    def end(self, session: object) -> None:
        self.events.append("end")


def test_hook_protocol_order_and_feeds() -> None:
    x = tf.placeholder(tf.float32, [], name="x")
    v = tf.Variable(0.0, name="v")
    bump = tf.assign_add(v, x)
    rec = _Recorder(v.value())
    feeder = tf.train.FeedFnHook(lambda: {x: 1.0})
    with tf.train.MonitoredSession(hooks=[rec, feeder]) as sess:
        assert rec.events == ["begin", "created"]
        out = sess.run(bump)
        assert out == 1.0
        assert not sess.should_stop()
        sess.run(bump)
        assert sess.should_stop()
    assert [e[0] for e in rec.events[2:-1]] == ["before", "after", "before", "after"]
    assert rec.events[-1] == "end"
    first, second = rec.events[3][1], rec.events[5][1]
    assert first in (0.0, 1.0) and second in (1.0, 2.0)  # v read before or after this run's assign


def test_caller_and_hook_feeding_the_same_tensor_is_an_error() -> None:
    x = tf.placeholder(tf.float32, [], name="x")
    y = x * 2.0
    with tf.train.MonitoredSession(hooks=[tf.train.FeedFnHook(lambda: {x: 1.0})]) as sess:
        with pytest.raises(RuntimeError, match="fed"):
            sess.run(y, feed_dict={x: 3.0})


def test_end_not_called_on_error_and_out_of_range_is_clean(tmp_path: pathlib.Path) -> None:
    gs, train, acc = _model()
    rec = _Recorder(acc.value())
    with pytest.raises(ZeroDivisionError):
        with tf.train.MonitoredSession(hooks=[rec]):
            raise ZeroDivisionError
    assert "end" not in rec.events
    rec2 = _Recorder(acc.value())
    with tf.train.MonitoredSession(hooks=[rec2]):
        raise tf.errors.OutOfRangeError(None, None, "input exhausted")
    assert rec2.events[-1] == "end"


def test_stop_at_step_hook_validation() -> None:
    with pytest.raises(ValueError):
        tf.train.StopAtStepHook()
    with pytest.raises(ValueError):
        tf.train.StopAtStepHook(num_steps=1, last_step=2)
    tf.Variable(1.0, name="w")
    with pytest.raises(RuntimeError, match="Global step"):
        tf.train.MonitoredSession(hooks=[tf.train.StopAtStepHook(last_step=1)])


def test_checkpoint_saver_hook_with_listener_and_own_saver(tmp_path: pathlib.Path) -> None:
    gs, train, acc = _model()
    calls: list[tuple[str, int]] = []

    class Listener(tf.train.CheckpointSaverListener):
        def before_save(self, session: object, step: int) -> None:
            calls.append(("before", step))

        def after_save(self, session: object, step: int) -> bool:
            calls.append(("after", step))
            return step >= 4  # asks training to stop

    saver = tf.train.Saver(max_to_keep=10)
    hook = tf.train.CheckpointSaverHook(str(tmp_path), save_steps=2, saver=saver, listeners=[Listener()],
                                        checkpoint_basename="run.ckpt")
    with tf.train.MonitoredSession(hooks=[hook]) as sess:
        while not sess.should_stop():
            sess.run(train)
        assert sess.run(gs) == 4
    assert calls == [("before", 0), ("after", 0), ("before", 2), ("after", 2), ("before", 4), ("after", 4)]
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".index")) == [
        "run.ckpt-0.index", "run.ckpt-2.index", "run.ckpt-4.index"]
    with pytest.raises(ValueError):
        tf.train.CheckpointSaverHook(str(tmp_path))  # neither secs nor steps


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_logging_tensor_hook() -> None:
    gs, train, acc = _model()
    hook = tf.train.LoggingTensorHook({"acc": acc.value(), "step": "global_step:0"}, every_n_iter=2,
                                      at_end=True)
    log = logging.getLogger("jitflow.train")
    capture, level = _Capture(), log.level
    log.addHandler(capture)
    log.setLevel(logging.INFO)
    try:
        with tf.train.MonitoredSession(hooks=[hook]) as sess:
            for _ in range(5):
                sess.run(train)
    finally:
        log.removeHandler(capture)
        log.setLevel(level)
    # Logged at local iterations 0, 2 and 4 (values fetched in the same run as the train op), and at the end.
    assert len(hook.logged) == 4
    assert hook.logged[-1] == {"acc": 2.5, "step": 5}
    assert "acc = 2.5, step = 5" in capture.messages
    with pytest.raises(ValueError):
        tf.train.LoggingTensorHook([acc.value()])


def test_step_counter_hook_measures_rate() -> None:
    gs, train, acc = _model()
    hook = tf.train.StepCounterHook(every_n_steps=5)
    with tf.train.MonitoredSession(hooks=[hook]) as sess:
        for _ in range(21):
            sess.run(train)
    assert len(hook.rates) >= 3 and all(r > 0 for r in hook.rates)


def test_nan_tensor_hook() -> None:
    x = tf.placeholder(tf.float32, [], name="x")
    loss = tf.sqrt(x)
    with tf.train.MonitoredSession(hooks=[tf.train.NanTensorHook(loss)]) as sess:
        sess.run(loss, {x: 4.0})
        with pytest.raises(tf.train.NanLossDuringTrainingError):
            sess.run(loss, {x: -1.0})
    with tf.train.MonitoredSession(hooks=[tf.train.NanTensorHook(loss, fail_on_nan_loss=False)]) as sess:
        sess.run(loss, {x: -1.0})
        assert sess.should_stop()


def test_final_ops_hook_and_run_step_fn() -> None:
    gs, train, acc = _model()
    final = tf.train.FinalOpsHook(acc.value())
    with tf.train.MonitoredSession(hooks=[final]) as sess:
        def step(ctx: object) -> object:
            ctx.run_with_hooks(train)  # type: ignore[attr-defined]
            ctx.request_stop()  # type: ignore[attr-defined]
            return "done"

        assert sess.run_step_fn(step) == "done"
        assert sess.should_stop()
    assert final.final_ops_values == 0.5


def test_scaffold_uses_given_saver_and_init_fn(tmp_path: pathlib.Path) -> None:
    w = tf.Variable(np.zeros(3, np.float32), name="w")
    seen: list[object] = []

    def init_fn(scaffold: tf.train.Scaffold, sess: object) -> None:
        seen.append(scaffold)
        sess._write_variables({"w": np.array([1.0, 2.0, 3.0], np.float32)})  # type: ignore[attr-defined]

    scaffold = tf.train.Scaffold(init_fn=init_fn, init_op=tf.no_op())
    with tf.train.SingularMonitoredSession(scaffold=scaffold) as sess:
        assert seen == [scaffold]
        assert sess.run(w).tolist() == [1.0, 2.0, 3.0]
        assert sess.raw_session() is not None


def test_after_run_follows_hook_order() -> None:
    v = tf.Variable(1.0, name="v")
    order: list[str] = []

    class Quiet(tf.train.SessionRunHook):
        def after_run(self, run_context: object, run_values: tf.train.SessionRunValues) -> None:
            order.append("quiet")
            assert run_values.results is None

    class Asking(tf.train.SessionRunHook):
        def before_run(self, run_context: object) -> tf.train.SessionRunArgs:
            return tf.train.SessionRunArgs({"v": v.value()})

        def after_run(self, run_context: object, run_values: tf.train.SessionRunValues) -> None:
            order.append("asking")
            assert run_values.results == {"v": 1.0}

    with tf.train.MonitoredSession(hooks=[Quiet(), Asking(), Quiet()]) as sess:
        assert sess.run(v.value()) == 1.0
    assert order == ["quiet", "asking", "quiet"]
