"""The article programs of tests/data/tf1_articles, run as written, print what TensorFlow 1.x printed."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "data" / "tf1_articles"
sys.path.insert(0, str(HERE))
import run_article  # noqa: E402

EXPECTED = json.loads((HERE / "expected.json").read_text())


def _placement_lines(text: str) -> tuple[list[str], list[str]]:
    """log_device_placement lines come in TF's own order: compare them as a set, and only for named ops."""
    lines = text.splitlines()
    placed = sorted(ln for ln in lines if ": (" in ln and ln.split(":")[0] in ("a", "b"))
    return [ln for ln in lines if ": (" not in ln], placed


@pytest.fixture
def alias() -> object:
    finder = run_article._Alias()
    sys.meta_path.insert(0, finder)
    yield finder
    sys.meta_path.remove(finder)
    for name in [n for n in sys.modules if n == "tensorflow" or n.startswith("tensorflow.")]:
        del sys.modules[name]


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "interp"])
@pytest.mark.parametrize("program", sorted(EXPECTED))
def test_article_program_prints_what_tf_printed(program: str, jit: bool, alias: object, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import jitflow as tf

    monkeypatch.setenv("JITFLOW_JIT", "1" if jit else "0")
    monkeypatch.chdir(tmp_path)
    tf.reset_default_graph()
    src = (HERE / program).read_text()
    exec(compile(src, str(HERE / program), "exec"), {"__name__": "__main__"})
    got = capsys.readouterr().out
    assert _placement_lines(got) == _placement_lines(EXPECTED[program])
    assert os.getcwd() == str(tmp_path)
