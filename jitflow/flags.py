"""Every environment flag jitflow reads, declared once.

Flags are read at call time (not import time) so tests can set them with monkeypatch.
"""
from __future__ import annotations

import os


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def debug_level() -> int:
    """JITFLOW_DEBUG=1..4: 1 compile events, 2 per-step timings, 3 clusters, 4 generated source."""
    try:
        return int(_env("JITFLOW_DEBUG", "0"))
    except ValueError:
        return 0


def jit_enabled() -> bool:
    """JITFLOW_JIT=0 runs every op interpreted."""
    return _env("JITFLOW_JIT", "1").strip().lower() not in ("0", "false", "no", "off")


def fallback_is_error() -> bool:
    """JITFLOW_FALLBACK=error turns an interpreted fallback into an error."""
    return _env("JITFLOW_FALLBACK", "").strip().lower() == "error"


def cache_dir() -> str:
    """JITFLOW_CACHE_DIR, else the user's cache directory (XDG_CACHE_HOME or ~/.cache)/jitflow."""
    explicit = os.environ.get("JITFLOW_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jitflow")


def disk_cache_enabled() -> bool:
    """JITFLOW_DISK_CACHE=0 keeps compiled kernels in memory only."""
    return _env("JITFLOW_DISK_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def explain_record() -> bool:
    """JITFLOW_EXPLAIN_RECORD=1: sessions keep every plan they build, for `jitflow explain`."""
    return _env("JITFLOW_EXPLAIN_RECORD", "0").strip() == "1"


def inter_op() -> str:
    """JITFLOW_INTER_OP: "auto" (default: independent steps run at once where timing shows a gain), "1" (always
    where a plan has independent compiled steps) or "0" (steps always run in plan order)."""
    v = _env("JITFLOW_INTER_OP", "auto").strip().lower()
    if v in ("0", "false", "no", "off"):
        return "0"
    if v in ("1", "true", "yes", "on"):
        return "1"
    return "auto"


def native_plan_runs() -> int:
    """JITFLOW_NATIVE_PLAN: runs of a plan with the same feed shapes before it is translated into one compiled
    call (`compiler/native_plan.py`; default 50); 0 never translates."""
    try:
        return max(0, int(_env("JITFLOW_NATIVE_PLAN", "50")))
    except ValueError:
        return 50
