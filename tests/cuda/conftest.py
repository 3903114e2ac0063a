"""CUDA tests run on Numba's CUDA simulator where no GPU exists; they skip when numba.cuda is unusable.

The simulator must be chosen before `numba.cuda` is first imported, so it is set here, at collection.
(No __init__.py here: a package named `cuda` would hide NVIDIA's `cuda` bindings from numba-cuda.)
"""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    # Numba read its config when it was imported: the bundled numba.cuda looks there
    from numba.core import config as _config

    _config.ENABLE_CUDASIM = int(os.environ["NUMBA_ENABLE_CUDASIM"])


@pytest.fixture(autouse=True)
def _always_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU clusters next to CUDA ones compile kernels even for the tiny shapes used here."""
    import importlib

    for name in ("jitflow.compiler.steps", "jitflow.compiler.lower"):  # where the CPU steps live
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "SMALL_SIZE"):
            monkeypatch.setattr(mod, "SMALL_SIZE", 0)
            return


@pytest.fixture
def host_copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of the device arrays copied to the host (in order)."""
    from jitflow.compiler import gpu

    seen: list[tuple[int, ...]] = []
    real = gpu.to_host

    def counting(a: Any) -> np.ndarray:
        seen.append(tuple(a.shape))
        return real(a)

    monkeypatch.setattr(gpu.runtime, "to_host", counting)
    return seen


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of the host arrays copied to the device (in order)."""
    from jitflow.compiler import gpu

    seen: list[tuple[int, ...]] = []
    api = gpu.cuda_api()
    real = api.to_device

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(api, name)

        @staticmethod
        def to_device(a: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            seen.append(a.shape)
            return real(a, *args, **kwargs)

    monkeypatch.setattr(gpu.runtime, "cuda_api", lambda: Spy())
    return seen
