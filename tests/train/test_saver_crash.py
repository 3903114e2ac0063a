"""Crash safety: a saving process killed at random moments always leaves a restorable latest checkpoint."""
from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np

import jitflow as tf

CHILD = r"""
import sys
import numpy as np
import jitflow as tf

d = sys.argv[1]
vs = [tf.Variable(np.zeros((256, 1024), np.float32), name=f"v{i}") for i in range(4)]
step_var = tf.Variable(0, dtype=tf.int64, name="step")
saver = tf.train.Saver(max_to_keep=2)
start = tf.train.latest_checkpoint(d)
with tf.Session() as sess:
    if start:
        saver.restore(sess, start)
    else:
        sess.run(tf.global_variables_initializer())
    step = int(sess.run(step_var))
    print("ready", flush=True)
    while True:
        step += 1
        sess._write_variables({**{v.op.name: np.full((256, 1024), step, np.float32) for v in vs},
                               "step": np.array(step, np.int64)})
        saver.save(sess, d + "/model.ckpt", global_step=step)
        print(step, flush=True)
"""


def _check_latest(d: str) -> int:
    latest = tf.train.latest_checkpoint(d)
    assert latest is not None
    tf.reset_default_graph()
    vs = [tf.Variable(np.zeros((256, 1024), np.float32), name=f"v{i}") for i in range(4)]
    step_var = tf.Variable(0, dtype=tf.int64, name="step")
    with tf.Session() as sess:
        tf.train.Saver().restore(sess, latest)
        step = int(sess.run(step_var))
        assert latest.endswith(f"model.ckpt-{step}")
        for v in vs:  # every variable from the same save: no torn checkpoint
            assert np.all(sess.run(v) == step)
    state = tf.train.get_checkpoint_state(d)
    assert state is not None and state.all_model_checkpoint_paths[-1] == latest
    for path in state.all_model_checkpoint_paths:  # every recorded checkpoint is complete and intact
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    return step


def test_killed_while_saving_leaves_restorable_checkpoint(tmp_path: pathlib.Path) -> None:
    d = str(tmp_path)
    rng = random.Random(1234)
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2]))
    last = 0
    kills = 0
    deadline = time.time() + 15
    while kills < 5 and time.time() < deadline:
        child = subprocess.Popen([sys.executable, "-c", CHILD, d], stdout=subprocess.PIPE, env=env, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        kills += 1
        saved = [int(x) for x in out.split()]
        if not saved and last == 0:
            continue
        step = _check_latest(d)
        # The newest complete save is recorded, or the one in flight finished before the kill.
        assert step >= max(saved, default=last) and step >= last
        last = step
        # No temporary files are ever mistaken for checkpoints; leftovers are only .tmp files.
        for name in os.listdir(d):
            assert name == "checkpoint" or name.startswith("model.ckpt-") or ".tmp" in name, name
    assert kills >= 3 and last > 0
