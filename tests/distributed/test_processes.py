"""TF1's between-graph trainer (examples/distributed_train.py) as separate processes: 1 ps, 2 workers.

The processes join the Ray instance of the test session through RAY_ADDRESS. Worker 1 is killed
mid-training and restarted; it rejoins while worker 0 (the chief) keeps training.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import jitflow as tf

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "distributed_train.py"
LAST_STEP = 300


class Task:
    """A task's process, with its output lines collected by a thread (reads never block the test)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLE), *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def _summary(task: Task, index: int) -> dict[str, float]:
    m = task.wait_for(rf"worker {index}: local_steps=(\d+) global_step=(\d+) first_loss=([\d.]+) "
                      r"last_loss=([\d.]+)", timeout=150)
    return {"local_steps": int(m[1]), "global_step": int(m[2]), "first_loss": float(m[3]),
            "last_loss": float(m[4])}


def test_ps_and_two_workers_train_with_a_worker_killed_and_restarted(ray_address: str, tmp_path: Path) -> None:
    env = dict(os.environ, RAY_ADDRESS=ray_address, PYTHONPATH=str(ROOT), JITFLOW_DISTRIBUTED_TIMEOUT="60")
    common = ["--ps_hosts=localhost:23222", "--worker_hosts=localhost:23223,localhost:23224",
              f"--train_dir={tmp_path}", f"--last_step={LAST_STEP}", "--save_steps=100", "--num_inputs=20",
              "--hidden=16", "--batch_size=32", "--learning_rate=0.3", "--log_every=10", "--step_delay=0.02"]
    tasks: list[Task] = []
    try:
        tasks.append(Task([*common, "--job_name=ps", "--task_index=0"], env))
        chief = Task([*common, "--job_name=worker", "--task_index=0"], env)
        tasks.append(chief)
        doomed = Task([*common, "--job_name=worker", "--task_index=1"], env)
        tasks.append(doomed)
        doomed.wait_for(r"worker 1: step \d+", timeout=120)
        doomed.proc.kill()  # mid-training, without any chance to clean up
        doomed.proc.wait(timeout=30)
        chief.wait_for(r"worker 0: step \d+", timeout=60)
        assert chief.proc.poll() is None, "the chief must keep training after worker 1 died"
        rejoined = Task([*common, "--job_name=worker", "--task_index=1"], env)
        tasks.append(rejoined)
        w0, w1 = _summary(chief, 0), _summary(rejoined, 1)
        assert chief.proc.wait(timeout=60) == 0 and rejoined.proc.wait(timeout=60) == 0
    finally:
        for t in tasks:
            t.stop()
    assert w0["local_steps"] > 0 and w1["local_steps"] > 0  # both workers contributed steps
    assert w0["local_steps"] < LAST_STEP and w0["global_step"] >= LAST_STEP - 10  # its own last update
    assert w0["last_loss"] < 0.5 * w0["first_loss"]
    # The chief's last checkpoint restores in a single-process program.
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        from distributed_train import build_model
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    x, labels, loss, _, global_step = build_model(20, 16, 10, 0.3)
    path = tf.train.latest_checkpoint(str(tmp_path))
    assert path is not None
    with tf.Session() as sess:
        tf.train.Saver().restore(sess, path)
        assert sess.run(global_step) >= LAST_STEP
        assert int(path.rsplit("-", 1)[1]) == sess.run(global_step)


