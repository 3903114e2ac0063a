"""pytest-benchmark set-up for the W1–W6 suite: collects every benchmark's median and prints the ratios.

Tests time themselves through the ``measure`` fixture (pytest-benchmark underneath) or add a row with
``record``; a benchmark that uses the plain ``benchmark`` fixture is picked up too, its workload id read
from its name. At the end, ``pytest_terminal_summary`` prints one table of medians, the ratios to the
NumPy baseline and to the interpreter, and one line per BENCH.md target, e.g.
``W2 compiled/numpy = 0.14 (target <= 0.2)``. Nothing here asserts anything about speed.

With ``--benchmark-disable`` (CI) pytest-benchmark runs each function once and keeps no statistics;
``measure`` then takes a rough median of a few extra calls so that the table is still printed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

# Benchmarks never write to the user's compile cache; JITFLOW_CACHE_DIR still wins when set.
os.environ.setdefault("JITFLOW_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"jitflow-bench-cache-{os.getuid()}"))

sys.path.insert(0, os.path.dirname(__file__))
import workloads  # noqa: E402

DISABLED_REPEATS = 3  # calls timed by hand when pytest-benchmark is disabled


@dataclass
class Row:
    """One measured figure: seconds per unit (run, step, first result) of one variant of a workload."""

    workload: str
    variant: str
    seconds: float
    unit: str
    source: str  # "pytest-benchmark median of N rounds", or how else it was measured
    jit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ROWS_KEY = pytest.StashKey[list[Row]]()
MEASURED_KEY = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ROWS_KEY] = []


Record = Callable[..., Row]
Measure = Callable[..., float]


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Record:
    """``record(workload, variant, seconds, unit, source, jit="", **extra)`` adds a row to the table."""

    def add(workload: str, variant: str, seconds: float, unit: str, source: str, jit: str = "",
            **extra: Any) -> Row:
        row = Row(workload, variant, float(seconds), unit, source, jit, dict(extra))
        request.config.stash[ROWS_KEY].append(row)
        request.node.stash[MEASURED_KEY] = True
        return row

    return add


@pytest.fixture
def measure(benchmark: Any, record: Record) -> Measure:
    """``measure(fn, workload=, variant=, rounds=, iterations=1, per=1, unit="run", jit="", **extra)``.

    Benchmarks `fn` (one warm-up round, then `rounds` rounds of `iterations` calls), records the median
    divided by `per` (calls that do `per` units of work, e.g. an epoch of 100 steps) and returns it.
    """

    def run(fn: Callable[[], Any], *, workload: str, variant: str, rounds: int, iterations: int = 1,
            per: int = 1, unit: str = "run", jit: str = "", **extra: Any) -> float:
        benchmark.group = workload
        benchmark.extra_info.update({"workload": workload, "variant": variant, "per": per, "unit": unit,
                                     "jit": jit, **extra})
        benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=1)
        if benchmark.stats is not None:
            median = float(benchmark.stats.stats.median)
            source = f"pytest-benchmark median of {rounds}x{iterations}"
        else:
            median = workloads.median_time(fn, DISABLED_REPEATS, iterations)
            source = f"rough median of {DISABLED_REPEATS}x{iterations} (benchmark disabled)"
        record(workload, variant, median / per, unit, source, jit, **extra)
        return median / per

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Records benchmarks that used the plain `benchmark` fixture (e.g. W5), read from their names."""
    yield
    funcargs = getattr(item, "funcargs", {})
    bench = funcargs.get("benchmark")
    if call.when != "call" or bench is None or item.stash.get(MEASURED_KEY, False):
        return
    stats = getattr(bench, "stats", None)
    found = re.search(r"w\d", item.name, re.IGNORECASE)
    if stats is None or found is None:
        return
    callspec = getattr(item, "callspec", None)
    # test_w5_save -> "save"; a parametrized test keeps its parameter id
    variant = callspec.id if callspec is not None else re.sub(r"^test_|w\d_?", "", item.name, flags=re.I)
    item.config.stash[ROWS_KEY].append(
        Row(found.group(0).upper(), variant, float(stats.stats.median), "call",
            f"pytest-benchmark median of {stats.stats.rounds} rounds ({item.name})",
            extra=dict(bench.extra_info)))


# -- the summary table ------------------------------------------------------------------------------------

# (workload, variant, baseline variant or None for an absolute per-unit figure, target, note)
TARGETS: list[tuple[str, str, str | None, float, str]] = [
    ("W1", "compiled", "tensorflow", 1 / 25, ""),
    ("W1", "compiled", None, 5e-6, "BENCH.md absolute target; reference TF1 126 us/run"),
    ("W2", "compiled", "numpy", 0.2, ""),
    ("W2", "compiled (interleaved)", "numpy (interleaved)", 0.2, "timed in turns"),
    ("W2", "compiled", "xla", 0.8, ""),
    ("W3", "compiled", "tensorflow", 0.1, ""),
    ("W3", "compiled", None, 20e-6, "BENCH.md absolute target; reference TF1 199 us/step"),
    ("W4", "compiled", "numpy", 1.05, ""),
    ("W4", "compiled (interleaved)", "numpy (interleaved)", 1.05, "timed in turns"),
    ("W4", "compiled", "tensorflow", 1.0, ""),
    ("W5", "save+restore", "raw_io", 3.0, "raw_io = tofile + fromfile of the same arrays"),
    ("W6", "compiled-warm", "steady+import", 1.3, "first result / (import + build + steady runs)"),
    ("W11", "jitflow 2 workers", "tensorflow 2 workers", 1.0, "seconds per example, 1 ps + 2 workers"),
    ("W7", "compiled", "tensorflow", 1.0, "aim 0.8"),
    ("W7i", "compiled", "tensorflow", 0.5, ""),
    ("W9", "jitflow pipeline", "jitflow fed (W4)", 1.1, "step from tf.data / fed step, timed in turns"),
    ("W9", "jitflow pipeline", "tensorflow pipeline", 1.0, "time per step (examples/s inverted)"),
    ("W9r", "jitflow", "tensorflow", 1.0, "seconds per MB"),
    ("W8", "compiled", "tensorflow", 0.8, "PTB small LSTM training step"),
]


def _fmt_time(s: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _jitflow_state() -> str:
    """The commit the suite ran at, and whether jitflow/ had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "jitflow"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {head}" + (f" + uncommitted changes in {len(dirty)} jitflow files" if dirty else "")


def _baseline(rows: dict[tuple[str, str], Row], workload: str, base: str) -> float | None:
    if base == "steady+import":
        warm = rows.get((workload, "compiled-warm"))
        value = warm.extra.get("steady_plus_import_s") if warm else None
        return float(value) if value else None
    row = rows.get((workload, base))
    return row.seconds if row else None


def summary_lines(rows: list[Row], quick: bool) -> list[str]:
    """The table and the target lines, as printed at the end of the run."""
    by_key = {(r.workload, r.variant): r for r in rows}
    for workload, variant, *_ in TARGETS:  # a "a+b" variant is the sum of rows a and b
        parts = [by_key.get((workload, p)) for p in variant.split("+")]
        if "+" in variant and all(parts):
            by_key[(workload, variant)] = Row(workload, variant, sum(p.seconds for p in parts if p), "call",
                                              "sum")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    threads = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                         "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")
                       if k in os.environ)
    lines = [f"jitflow benchmarks ({'quick' if quick else 'full'} sizes), {_jitflow_state()}; "
             f"{os.cpu_count()} CPUs, load average at the end {load}{'; ' + threads if threads else ''}", "",
             "| id | variant | median | per | / numpy | / interpreted | measured | JIT state |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.workload, r.variant)):
        ratios = []
        suffix = " (interleaved)" if r.variant.endswith(" (interleaved)") else ""
        for base in ("numpy", "interpreted"):
            b = by_key.get((r.workload, base + suffix))
            ratios.append(f"{r.seconds / b.seconds:.3g}" if b and b is not r and b.seconds > 0 else "")
        extra = "".join(f"; {k}={v:.3g}" if isinstance(v, float) else "" for k, v in r.extra.items()
                        if k in ("max_rel_err", "max_rel_err_vs_f64"))
        lines.append(f"| {r.workload} | {r.variant} | {_fmt_time(r.seconds)} | {r.unit} | {ratios[0]} | "
                     f"{ratios[1]} | {r.source}{extra} | {r.jit} |")
    lines.append("")
    measured = {r.workload for r in rows}
    for workload, variant, base, target, note in TARGETS:
        if workload not in measured:
            continue
        row = by_key.get((workload, variant))
        suffix = f"  [{note}]" if note else ""
        if row is None:
            lines.append(f"{workload} {variant}{'/' + base if base else ''}: not measured "
                         f"(target <= {target:.3g}){suffix}")
            continue
        if base is None:
            verdict = "met" if row.seconds <= target else "NOT met"
            lines.append(f"{workload} {variant} = {_fmt_time(row.seconds)}/{row.unit} "
                         f"(target <= {_fmt_time(target)}: {verdict}){suffix}")
            continue
        b = _baseline(by_key, workload, base)
        if b is None:
            lines.append(f"{workload} {variant}/{base} = n/a ({base} not measured; target <= {target:.3g})"
                         f"{suffix}")
            continue
        ratio = row.seconds / b
        verdict = "met" if ratio <= target else "NOT met"
        lines.append(f"{workload} {variant}/{base} = {ratio:.3g} (target <= {target:.3g}: {verdict}){suffix}")
    for r in rows:
        if r.workload == "W6" and r.extra.get("compile_events"):
            lines.append(f"W6 {r.variant}: kernel compile times (s): {r.extra['compile_events']}")
        if r.workload == "W6" and r.variant == "compiled-cold" and r.extra.get("clusters"):
            per = ", ".join(f"{name} {sec:.2f} s ({src})" for name, sec, src in r.extra["clusters"])
            lines.append(f"W6 compiled-cold per cluster: {per}")
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS_KEY, [])
    if not rows:
        return
    terminalreporter.section("jitflow benchmark ratios (BENCH.md)")
    for line in summary_lines(rows, workloads.quick_mode()):
        terminalreporter.write_line(line)
