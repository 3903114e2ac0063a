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


def test_case_exclusive_raises_when_two_predicates_hold() -> None:
    """TF 1.x documents that exclusive=True checks every predicate (TF 2's compat case no longer does)."""
    import jitflow as tf

    tf.reset_default_graph()
    x = tf.placeholder(tf.int32, [])
    c = tf.case([(tf.less(x, 5), lambda: tf.constant(1)), (tf.less(x, 9), lambda: tf.constant(2))], exclusive=True)
    with tf.Session() as sess:
        assert sess.run(c, {x: 7}) == 2
        with pytest.raises(tf.errors.InvalidArgumentError, match="exclusive=True"):
            sess.run(c, {x: 1})


def test_py_func_is_a_fusion_barrier_with_its_reason() -> None:
    import numpy as np

    import jitflow as tf

    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [3])
    y = tf.py_func(np.sinh, [x * 2.0 + 1.0], tf.float32)
    z = tf.exp(y) * 2.0
    report = tf.explain(z, {x: np.ones(3, np.float32)}).to_dict()
    assert [f["type"] for f in report["fallbacks"]] == ["PyFunc"]
    assert "Python function" in report["fallbacks"][0]["reason"]
    assert all("PyFunc" not in c["ops"] for c in report["clusters"])
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(z, {x: [0.0, 0.5, 1.0]}),
                                   np.exp(np.sinh(np.array([1.0, 2.0, 3.0], np.float32))) * 2, rtol=1e-5)


def test_inference_batch_norm_fuses_with_its_neighbours() -> None:
    import numpy as np

    import jitflow as tf
    from tests.compiler.helpers import assert_same, run_both

    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [2, 4, 4, 3])
    h = tf.layers.batch_normalization(tf.nn.relu(x * 2.0), training=False)
    y = tf.tanh(h) + 1.0
    feed = {x: np.random.RandomState(1).randn(2, 4, 4, 3).astype(np.float32)}
    got, want, plan = run_both(y, feed, init=True)
    assert_same(got, want)
    assert not plan.report["fallbacks"]
    fused = [c["ops"] for c in plan.report["clusters"] if any("Relu" in o for o in c["ops"])]
    assert fused and any("Tanh" in o for o in fused[0]) and any("batchnorm" in o for o in fused[0])
    assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)  # training=False: no moving-average updates


def test_batch_norm_bad_input() -> None:
    import jitflow as tf

    tf.reset_default_graph()
    with pytest.raises(ValueError, match="4-dimensional"):
        tf.nn.fused_batch_norm(tf.zeros([2, 3]), tf.ones([3]), tf.zeros([3]))
    with pytest.raises(ValueError, match="scale must have 3 elements"):
        tf.nn.fused_batch_norm(tf.zeros([1, 2, 2, 3]), tf.ones([4]), tf.zeros([3]))
    with pytest.raises(ValueError, match="mean"):
        tf.nn.fused_batch_norm(tf.zeros([1, 2, 2, 3]), tf.ones([3]), tf.zeros([3]), is_training=False)
    with pytest.raises(TypeError, match="training"):
        tf.layers.batch_normalization(tf.zeros([2, 3]), training=tf.constant(1.0))
    with pytest.raises(ValueError, match="axis"):
        tf.layers.batch_normalization(tf.zeros([2, 3]), axis=5)
