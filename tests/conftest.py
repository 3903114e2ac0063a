"""Shared test fixtures: every test starts with a fresh default graph and no stray default session."""
from __future__ import annotations

import os

import pytest

# Tests never write to the user's compile cache; each run gets its own.
os.environ.setdefault("JITFLOW_CACHE_DIR", os.path.join(os.path.dirname(__file__), ".jitflow_cache"))

import jitflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_graph():
    from jitflow.session import _default_sessions

    _default_sessions.stack.clear()
    tf.reset_default_graph()
    yield
    _default_sessions.stack.clear()
