"""CUDA tests run on Numba's CUDA simulator where no GPU exists; they skip when numba.cuda is unusable.

The simulator must be chosen before `numba.cuda` is first imported, so it is set here, at collection.
(No __init__.py here: a package named `cuda` would hide NVIDIA's `cuda` bindings from numba-cuda.)
"""
from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    # Numba read its config when it was imported: the bundled numba.cuda looks there
    from numba.core import config as _config

    _config.ENABLE_CUDASIM = int(os.environ["NUMBA_ENABLE_CUDASIM"])


@pytest.fixture(autouse=True)
def _gpu_lowering(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Compiles even tiny CPU clusters, and hooks the CUDA pass into `lower` if lower.py does not yet."""
    from jitflow.compiler import gpu, lower

    monkeypatch.setattr(lower, "SMALL_SIZE", 0)
    if "lower_gpu_clusters" not in inspect.getsource(lower):
        orig_lower, orig_warm = lower.lower, lower._warm

        def warm(step: Any) -> None:
            if not gpu.on_gpu(step.c.ops):
                orig_warm(step)

        def lower_with_gpu(plan: Any) -> None:
            orig_lower(plan)
            gpu.lower_gpu_clusters(plan)

        monkeypatch.setattr(lower, "_warm", warm)
        monkeypatch.setattr(lower, "lower", lower_with_gpu)
    yield
