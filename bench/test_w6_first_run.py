"""W6: time to first result in a fresh process: import, build W2 and W4, first run of each.

Each round starts a child (``python bench/workloads.py w6 ...``) that times its own phases and prints
them as JSON. ``compiled-cold`` gives every child a fresh, empty ``JITFLOW_CACHE_DIR``;
``compiled-warm`` reuses one directory that an earlier child filled. The child also reports the
steady-state runs, so the table can relate the first result to import + build + steady runs
(target: warm ≤ 1.3 × that). pytest-benchmark times the whole child, interpreter start-up included;
the table shows the child's own first-result time. Compile events are read from the child's
``JITFLOW_DEBUG=1`` output.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import workloads as W

S = W.sizes()
CHILD_TIMEOUT_S = 400
COMPILE_EVENT = re.compile(r"jitflow: kernel \w+ \((.*?)\) compiled in ([0-9.]+)s")
LOAD_EVENT = re.compile(r"jitflow: kernel \w+ \(.*?\) loaded from disk")
_shared: dict[str, Path] = {}  # the cache dir a compiled-cold child filled, reused by compiled-warm


def run_child(variant: str, cache_dir: Path, jit: bool = True) -> dict[str, Any]:
    """Runs one W6 child and returns its JSON report plus the compile events from its stderr."""
    env = dict(os.environ, JITFLOW_CACHE_DIR=str(cache_dir), JITFLOW_DEBUG="1",
               JITFLOW_JIT="1" if jit else "0")
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, W.__file__, "w6", "--variant", variant, "--w2-n", str(S.w2_n),
           "--w4-batch", str(S.w4_batch), "--repeats", str(S.child_repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"W6 child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["compile_events"] = [(m.group(1), float(m.group(2))) for m in COMPILE_EVENT.finditer(proc.stderr)]
    report["disk_loads"] = len(LOAD_EVENT.findall(proc.stderr))
    return report


def _check(report: dict[str, Any]) -> None:
    assert report["w2_max_rel_err"] <= 5e-5, report["w2_max_rel_err"]
    assert report["w4_update_err"] <= 1e-3, report["w4_update_err"]


def _median(reports: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
    return float(np.median([key(r) for r in reports]))


def _steady_plus_import(r: dict[str, Any]) -> float:
    return float(r["import_s"] + r.get("w2_build_s", 0.0) + r.get("w4_build_s", 0.0) + r["w2_steady_s"]
                 + r["w4_steady_s"])


@pytest.mark.parametrize("variant", ["numpy", "interpreted", "compiled-cold", "compiled-warm"])
def test_W6_first_run(benchmark: Any, record: Any, tmp_path_factory: pytest.TempPathFactory,
                      variant: str) -> None:
    child = "numpy" if variant == "numpy" else "jitflow"
    jit = variant != "interpreted"
    reports: list[dict[str, Any]] = []

    def fresh_dir() -> tuple[tuple[Path], dict[str, Any]]:
        return (tmp_path_factory.mktemp("w6cache"),), {}

    if variant == "compiled-warm":
        warm_dir = _shared.get("cold_dir")
        if warm_dir is None:  # run alone: fill a cache first, outside the timing
            warm_dir = tmp_path_factory.mktemp("w6cache")
            _check(run_child(child, warm_dir))
        setup = lambda: ((warm_dir,), {})
    else:
        setup = fresh_dir

    def one(cache_dir: Path) -> None:
        report = run_child(child, cache_dir, jit)
        _check(report)
        reports.append(report)
        if variant == "compiled-cold":
            _shared["cold_dir"] = cache_dir

    benchmark.group = "W6"
    benchmark.pedantic(one, setup=setup, rounds=S.w6_rounds)
    first = _median(reports, lambda r: r["first_result_s"])
    last = reports[-1]
    cache = last.get("cache", {})
    jit_state = last.get("jit", "")
    if cache:
        jit_state += (f"; kernels compiled {cache.get('compiled', 0)}, from disk {cache.get('disk_hits', 0)}"
                      f", compile {cache.get('compile_seconds', 0.0):.2f} s")
    extra = {"import_s": _median(reports, lambda r: r["import_s"]),
             "steady_plus_import_s": _median(reports, _steady_plus_import),
             "w2_first_s": _median(reports, lambda r: r["w2_first_s"]),
             "w4_first_s": _median(reports, lambda r: r["w4_first_s"]),
             "w2_steady_s": _median(reports, lambda r: r["w2_steady_s"]),
             "w4_steady_s": _median(reports, lambda r: r["w4_steady_s"]),
             "compile_events": [round(s, 3) for _, s in last["compile_events"]],
             "clusters": last.get("clusters", [])}
    benchmark.extra_info.update({k: v for k, v in extra.items()}, workload="W6", variant=variant)
    record("W6", variant, first, "first result",
           f"child-reported median of {len(reports)} fresh processes (import {extra['import_s']:.3g} s, "
           f"first W2 {extra['w2_first_s']:.3g} s, first W4 {extra['w4_first_s']:.3g} s)",
           jit_state, **extra)
