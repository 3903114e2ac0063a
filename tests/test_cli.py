"""The `jitflow` console script, driven through `python -m jitflow` in fresh processes."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jitflow import cli

CHILD = textwrap.dedent('''
    import json, sys, warnings
    import numpy as np
    from jitflow.codegen import cache

    SOURCE = """
    import numpy as np
    from numba import njit


    @njit("float64[:](float64[:], float64[:])", cache=True)
    def kernel(a, b):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = a[i] * 2.0 + np.tanh(b[i])
        return out
    """
    warnings.simplefilter("always")
    fn, origin = cache.get_kernel(SOURCE, "kernel", {"ops": ["Mul", "Tanh", "Add"]},
                                  {"ops": ["Mul", "Tanh", "Add"]})
    a = np.linspace(-1.0, 1.0, 9)
    ok = bool(np.allclose(fn(a, a[::-1].copy()), a * 2.0 + np.tanh(a[::-1]), rtol=1e-14, atol=0))
    print(json.dumps({"origin": origin, "ok": ok, "stats": cache.cache_stats()}))
''')


def env_for(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITFLOW_")}
    env["JITFLOW_CACHE_DIR"] = str(root)
    return env


def jitflow(root: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "jitflow", *args], env=env_for(root),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def run_child(root: Path, script: Path) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, str(script)], env=env_for(root), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


# --------------------------------------------------------------------------- values and usage


def test_sizes_and_ages_parse() -> None:
    assert [cli.parse_size(s) for s in ("0", "123", "500M", "2G", "1.5k", "10MiB", "3gb")] == [
        0, 123, 500 * 2**20, 2 * 2**30, 1536, 10 * 2**20, 3 * 2**30]
    assert [cli.parse_age(s) for s in ("0", "45", "30m", "12h", "7d", "2w", "1d12h")] == [
        0, 45, 1800, 43200, 604800, 1209600, 129600]
    for bad in ("", "5X", "-1", "M", "1.2.3G"):
        with pytest.raises(argparse.ArgumentTypeError, match="invalid size"):
            cli.parse_size(bad)
    for bad in ("", "7y", "d", "1h30", "-3d"):
        with pytest.raises(argparse.ArgumentTypeError, match="invalid age"):
            cli.parse_age(bad)
    assert cli.format_size(512) == "512 B" and cli.format_size(3 * 2**20 + 2**19) == "3.5 MiB"


def test_help_at_every_level(tmp_path: Path) -> None:
    for args, words in [((), ["cache", "explain"]), (("cache",), ["prune", "verify", "info"]),
                        (("cache", "prune"), ["--max-size", "--older-than"]),
                        (("cache", "verify"), ["--fix"]), (("cache", "list"), ["--json"]),
                        (("explain",), ["--json", "--dot", "-m"])]:
        out = jitflow(tmp_path, *args, "--help").stdout
        assert out.startswith("usage: jitflow") and all(w in out for w in words), (args, out)


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args, code, text in [((), 2, "choose a command"), (("cache",), 2, "choose a command"),
                             (("cache", "prune", "--max-size", "5X"), 2, "invalid size '5X'"),
                             (("cache", "prune", "--older-than", "soon"), 2, "invalid age 'soon'"),
                             (("cache", "prune"), 1, "needs --max-size"),
                             (("cache", "info", "abc123"), 1, "no cache entry matches 'abc123'"),
                             (("cache", "bogus"), 2, "invalid choice"),
                             (("explain",), 1, "needs a script")]:
        proc = jitflow(tmp_path / "c", *args, code=code)
        assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert text in proc.stderr and "error" in proc.stderr, (args, proc.stderr)


def test_listing_commands_do_not_import_numba(tmp_path: Path) -> None:
    probe = ("import json, sys, jitflow; before = set(sys.modules)\n"
             "from jitflow.cli import main\n"
             "codes = [main(['cache', c]) for c in ('dir', 'list', 'stats')]\n"
             "new = set(sys.modules) - before\n"
             "heavy = sorted(m for m in new if m.split('.')[0] in ('numba', 'llvmlite'))\n"
             "print(json.dumps({'codes': codes, 'heavy': heavy}))")
    proc = subprocess.run([sys.executable, "-c", probe], env=env_for(tmp_path / "c"), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0, 0], "heavy": []}


# --------------------------------------------------------------------------- the cache, end to end


def test_cache_commands_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    assert jitflow(root, "cache", "dir").stdout.strip() == str(root)
    assert json.loads(jitflow(root, "cache", "list", "--json").stdout)["entries"] == []

    first, _ = run_child(root, script)
    assert first["origin"] == "compiled" and first["ok"] and first["stats"]["compiled"] == 1
    second, _ = run_child(root, script)  # a new process loads the kernel instead of compiling it
    assert second["origin"] == "disk" and second["ok"]
    assert (second["stats"]["disk_hits"], second["stats"]["compiled"]) == (1, 0)

    listing = json.loads(jitflow(root, "cache", "list", "--json").stdout)
    assert listing["dir"] == str(root) and len(listing["entries"]) == 1
    entry = listing["entries"][0]
    key = entry["key"]
    assert entry["backend"] == "cpu" and entry["description"]["ops"] == ["Mul", "Tanh", "Add"]
    assert entry["size"] > 0 and Path(entry["path"]).is_dir()
    table = jitflow(root, "cache", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["KEY", "BACKEND", "ENTRY", "SIZE"]
    assert table[1].startswith(key[:12]) and "Mul,Tanh,Add" in table[1] and "1 entries" in table[2]
    # columns line up: every row's second column starts where the header's does
    assert table[1].index(" cpu ") + 1 == table[0].index("BACKEND")

    stats = json.loads(jitflow(root, "cache", "stats", "--json").stdout)
    assert (stats["entries"], stats["size"], stats["usable"]) == (1, entry["size"], True)
    assert stats["by_backend"] == {"cpu": {"entries": 1, "size": entry["size"]}}
    assert "entries         1" in jitflow(root, "cache", "stats").stdout
    info = jitflow(root, "cache", "info", key[:8]).stdout
    assert key in info and "integrity     ok" in info and "kernel.py" in info
    assert json.loads(jitflow(root, "cache", "info", key, "--json").stdout)["problem"] is None
    assert "all 1 entries OK" in jitflow(root, "cache", "verify").stdout

    # flip one byte of the object code: verify names the entry, the next process recompiles it
    nbc = next((Path(entry["path"]) / "__pycache__").glob("*.nbc"))
    data = bytearray(nbc.read_bytes())
    data[len(data) // 3] ^= 0x01
    nbc.write_bytes(bytes(data))
    bad = jitflow(root, "cache", "verify", code=1)
    assert key[:12] in bad.stdout and "sha256" in bad.stdout and "--fix" in bad.stdout
    bad_json = json.loads(jitflow(root, "cache", "verify", "--json", code=1).stdout)
    assert [b["key"] for b in bad_json["bad"]] == [key] and bad_json["bad"][0]["removed"] is False
    third, err = run_child(root, script)
    assert third["origin"] == "compiled" and third["ok"] and third["stats"]["corrupt"] == 1
    assert err.count(f"{key[:12]} is corrupt") == 1
    jitflow(root, "cache", "verify")

    saved = tmp_path / "saved-entry"
    shutil.copytree(entry["path"], saved)
    kept = jitflow(root, "cache", "prune", "--older-than", "1d")
    assert "removed 0 entries" in kept.stdout and "1 entries" in kept.stdout
    pruned = json.loads(jitflow(root, "cache", "prune", "--max-size", "0", "--json").stdout)
    assert pruned["removed"] == [key] and pruned["remaining"] == 0
    assert json.loads(jitflow(root, "cache", "list", "--json").stdout)["entries"] == []
    assert "no entries" in jitflow(root, "cache", "list").stdout

    shutil.copytree(saved, entry["path"])  # a copied entry is whole: verify accepts it
    assert "all 1 entries OK" in jitflow(root, "cache", "verify").stdout
    cleared = jitflow(root, "cache", "clear").stdout
    assert cleared.startswith("removed 1 entries")
    assert json.loads(jitflow(root, "cache", "stats", "--json").stdout)["entries"] == 0


def test_processes_racing_on_a_cold_cache_share_one_entry(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    procs = [subprocess.Popen([sys.executable, str(script)], env=env_for(root), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "corrupt" not in err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] and r["origin"] in ("compiled", "disk") for r in results)
    assert len(json.loads(jitflow(root, "cache", "list", "--json").stdout)["entries"]) == 1
    assert "all 1 entries OK" in jitflow(root, "cache", "verify").stdout
    assert os.listdir(root / "tmp") == []  # losers cleaned up their build directories


def test_stats_reports_an_unsafe_directory(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    fresh = json.loads(jitflow(root, "cache", "stats", "--json").stdout)
    assert (fresh["exists"], fresh["usable"], fresh["entries"]) == (False, True, 0)
    root.mkdir()
    root.chmod(0o777)
    shared = json.loads(jitflow(root, "cache", "stats", "--json").stdout)
    assert shared["usable"] is False and "writable by other users" in shared["problem"]
    assert "not usable: it is writable by other users" in jitflow(root, "cache", "stats").stdout


def test_verify_fix_deletes_bad_entries(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    entry = root / ("ab" * 32)[:2] / ("ab" * 32)
    entry.mkdir(parents=True)
    (entry / "kernel.py").write_text("x = 1\n")  # no meta.json: an incomplete entry
    assert "meta.json" in jitflow(root, "cache", "verify", code=1).stdout
    fixed = jitflow(root, "cache", "verify", "--fix")
    assert "removed" in fixed.stdout and not entry.exists()


# --------------------------------------------------------------------------- explain

# Stands in for jitflow.explain: the program under explain records reports into it.
STUB = textwrap.dedent('''
    import sys, types
    import jitflow
    stub = types.ModuleType("jitflow.explain")
    stub.RECORDED = []

    class Report:
        def __init__(self, d):
            self.d = d
        def to_dict(self):
            return self.d
        def __str__(self):
            return "REPORT " + ",".join(c["ops"][0] for c in self.d["clusters"])

    stub.Report = Report
    stub.collect_reports = lambda: [Report(d) for d in stub.RECORDED]
    sys.modules["jitflow.explain"] = jitflow.explain = stub
    from jitflow.cli import main
    sys.exit(main(sys.argv[1:]))
''')

PROGRAM = textwrap.dedent('''
    import os, sys
    import jitflow.explain as ex
    print("program says hi", sys.argv[1:], os.environ.get("JITFLOW_EXPLAIN_RECORD"))
    ex.RECORDED.append({
        "clusters": [{"ops": ["mul", "add"], "backend": "cpu", "key": "ab" * 32,
                      "compile_seconds": 0.25, "source": "compiled"}],
        "fallbacks": [{"op": "print_1", "type": "Print", "reason": "stateful \\"Print\\" op"}],
        "edges": [["mul", "add"], ["add", "print_1"]],
    })
    sys.exit(int(os.environ.get("EXIT_WITH", "0")))
''')


def run_stub(tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None):
    env = {**env_for(tmp_path / "cache"), **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", STUB, "explain", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def test_explain_runs_the_script_and_prints_its_plans(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    dot = tmp_path / "plans.dot"
    proc = run_stub(tmp_path, "--json", "--dot", str(dot), str(prog), "a", "--json")
    assert proc.returncode == 0, proc.stderr
    # the program got its own arguments, saw recording switched on, and its output went to stderr
    assert "program says hi ['a', '--json'] 1" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 0 and doc["program"] == str(prog)
    assert doc["reports"][0]["clusters"][0]["ops"] == ["mul", "add"]
    text = dot.read_text()
    assert text.startswith("digraph jitflow {") and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_p0_c0") == 1 and 'label="mul"' in text
    assert 'stateful \\"Print\\" op' in text and "style=dashed" in text
    assert "p0_c0_n0 -> p0_c0_n1;" in text and "p0_c0_n1 -> p0_f0;" in text
    assert text.count("{") == text.count("}")

    human = run_stub(tmp_path, str(prog), extra_env={"EXIT_WITH": "3"})
    assert human.returncode == 3  # the program's exit status comes back
    assert "program says hi [] 1" in human.stdout and "--- plan 1 ---" in human.stdout
    assert human.stdout.rstrip().endswith("REPORT mul")


def test_explain_module_mode_and_errors(tmp_path: Path) -> None:
    (tmp_path / "progmod.py").write_text(PROGRAM)
    proc = run_stub(tmp_path, "--json", "-m", "progmod", "x")
    assert proc.returncode == 0, proc.stderr
    assert "program says hi ['x'] 1" in proc.stderr and len(json.loads(proc.stdout)["reports"]) == 1
    missing = run_stub(tmp_path, str(tmp_path / "nope.py"))
    assert missing.returncode == 1 and "no such script" in missing.stderr
    (tmp_path / "boom.py").write_text("raise RuntimeError('boom')\n")
    boom = run_stub(tmp_path, str(tmp_path / "boom.py"))
    assert boom.returncode == 1 and "RuntimeError: boom" in boom.stderr and "no plans" in boom.stdout


def test_explain_real_program(tmp_path: Path) -> None:
    prog = tmp_path / "tfprog.py"
    prog.write_text(textwrap.dedent('''
        import jitflow as tf
        x = tf.placeholder(tf.float32, [None, 3])
        y = tf.nn.relu(x * 2.0 + 1.0)
        with tf.Session() as sess:
            print(sess.run(y, {x: [[1.0, -2.0, 3.0]]}))
    '''))
    proc = jitflow(tmp_path / "cache", "explain", "--json", str(prog))
    reports = json.loads(proc.stdout)["reports"]
    assert reports and all({"clusters", "fallbacks"} <= set(r) for r in reports)
