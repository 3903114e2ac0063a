"""Compiler tests compile kernels even for the small shapes they use."""
from __future__ import annotations

import pytest

from jitflow.compiler import steps


@pytest.fixture(autouse=True)
def _always_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "SMALL_SIZE", 0)
