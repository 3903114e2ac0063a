"""Loads a fixture's make_fixture.py (its inputs and `build(tf, ...)`) without importing TensorFlow, so a test
builds jitflow's graph with exactly the calls that recorded TensorFlow's values."""
from __future__ import annotations

import importlib.util
import types


def load(path: str) -> types.ModuleType:
    """The module of the script at `path`, its `import tensorflow.compat.v1 as tf` line left out."""
    spec = importlib.util.spec_from_file_location("fixture_script", path)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    with open(path) as f:
        src = f.read().replace("import tensorflow.compat.v1 as tf\n", "")
    exec(compile(src, path, "exec"), mod.__dict__)  # noqa: S102 - a fixture script of this repository
    return mod
