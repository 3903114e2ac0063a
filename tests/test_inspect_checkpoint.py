"""print_tensors_in_checkpoint_file and `jitflow inspect-checkpoint` print what TensorFlow prints."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jitflow.python.tools.inspect_checkpoint import print_tensors_in_checkpoint_file

DATA = Path(__file__).parent / "data"
PREFIX = str(DATA / "tf_checkpoint" / "model.ckpt-3")
EXPECTED = json.loads((DATA / "inspect_checkpoint" / "expected.json").read_text())
CASES = {
    "debug_string": dict(tensor_name="", all_tensors=False),
    "all_tensors": dict(tensor_name="", all_tensors=True),
    "all_names": dict(tensor_name="", all_tensors=False, all_tensor_names=True),
    "missing_tensor": dict(tensor_name="nope", all_tensors=False),
    "exclude": dict(tensor_name="", all_tensors=False, all_tensor_names=True, count_exclude_pattern="global"),
}


def _as_tf1(text: str) -> str:
    """The recording's TF 2 name lines (`tensor: w (float32) [2]`) in TF 1.15's form (`tensor_name:  w`)."""
    return re.sub(r"^tensor: (\S+) \([a-z0-9]+\) \[[0-9, ]*\]$", r"tensor_name:  \1", text, flags=re.M)


@pytest.mark.parametrize("case", sorted(CASES))
def test_prints_what_tf_printed(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    print_tensors_in_checkpoint_file(PREFIX, **CASES[case])  # type: ignore[arg-type]
    assert capsys.readouterr().out == _as_tf1(EXPECTED[case])


def test_one_tensor_and_bad_path(capsys: pytest.CaptureFixture[str]) -> None:
    print_tensors_in_checkpoint_file(PREFIX, "counter", False)
    assert capsys.readouterr().out == "tensor_name:  counter\n10\n# Total number of params: 643\n"
    print_tensors_in_checkpoint_file(PREFIX + ".index", "", False)
    out = capsys.readouterr().out
    assert "V2 checkpoint" in out and out.rstrip().endswith(PREFIX)


def test_command_line() -> None:
    res = subprocess.run([sys.executable, "-m", "jitflow", "inspect-checkpoint", PREFIX, "--all"],
                         capture_output=True, text=True, check=True)
    assert res.stdout == _as_tf1(EXPECTED["all_tensors"])
    res = subprocess.run([sys.executable, "-m", "jitflow", "inspect-checkpoint", PREFIX, "--tensor", "global_step"],
                         capture_output=True, text=True, check=True)
    assert res.stdout.splitlines()[:2] == ["tensor_name:  global_step", "3"]
