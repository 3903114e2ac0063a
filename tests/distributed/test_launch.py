"""`jitflow launch`: every task of the example trainer as a Ray actor, output streamed with prefixes."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from jitflow.cli import main
from jitflow.distributed.launch import cluster_for, launch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distributed_train.py"


def test_launch_runs_ps_and_workers(ray_address: str, tmp_path: Path) -> None:
    out = io.StringIO()
    code = launch(str(EXAMPLE), [f"--train_dir={tmp_path}", "--last_step=150", "--num_inputs=20", "--hidden=16",
                                 "--batch_size=32", "--log_every=40", "--step_delay=0.01"],
                  ps=1, workers=2, out=out, progress_secs=1.0)
    text = out.getvalue()
    assert code == 0, text
    for w in (0, 1):
        m = re.search(rf"^\[worker/{w}\] worker {w}: local_steps=(\d+) global_step=(\d+)", text, re.M)
        # each worker prints the step its own last update made; the other worker's may follow it
        assert m and int(m[1]) > 0 and int(m[2]) >= 140, text
    assert re.search(r"^\[launch\] global step \d+", text, re.M), text
    assert (tmp_path / "checkpoint").exists()


def test_launch_reports_a_failing_worker(ray_address: str, tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('bad input:', sys.argv[1:])\nsys.exit(3)\n")
    out = io.StringIO()
    assert launch(str(script), ["--x=1"], ps=0, workers=1, out=out, hosts_flags=False) == 3
    assert "[worker/0] bad input: ['--x=1', '--job_name=worker', '--task_index=0']" in out.getvalue()


def test_cluster_for_and_arguments() -> None:
    cluster = cluster_for(2, 3)
    assert cluster.num_tasks("ps") == 2 and cluster.num_tasks("worker") == 3
    assert len({a for j in cluster.jobs for a in cluster.job_tasks(j)}) == 5
    with pytest.raises(ValueError, match="at least one worker"):
        cluster_for(1, 0)
    assert main(["launch"]) == 2
