"""The ``jitflow`` console script.

``jitflow cache dir | list | stats | info KEY | clear | prune | verify`` inspects and manages
the on-disk compile cache (:mod:`jitflow.codegen.cache`); ``jitflow explain SCRIPT.py [ARGS]``
or ``jitflow explain -m MODULE [ARGS]`` runs a program with plan recording switched on
(``JITFLOW_EXPLAIN_RECORD=1``) and then prints the plans its sessions built, as text,
``--json``, or Graphviz (``--dot FILE``).

Exit status: 0 on success, 1 when a command fails (missing entry, bad entries found by
``verify``, a script that failed under ``explain``), 2 for a usage error. Errors are one line
on stderr. Listing commands import neither Numba nor the rest of jitflow, so they start fast.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class CliError(Exception):
    """A failure to report as one line on stderr with exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit status 2), not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- parsing values


def parse_size(text: str) -> int:
    """Bytes from ``500M``, ``2G``, ``1.5GiB``, ``100k``, ``0`` or a plain byte count (K = 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtKMGTbB]?)(?:i?[bB])?\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use a number with an optional K, M, G or T suffix (e.g. 500M, 2G, 0)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_age(text: str) -> float:
    """Seconds from ``7d``, ``12h``, ``30m``, ``45s``, ``2w``, ``1d12h`` or a plain number of seconds."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d*)?", t):
        return float(t)
    pieces = re.findall(r"(\d+(?:\.\d*)?)([smhdw])", t)
    if not t or "".join(n + u for n, u in pieces) != t:
        raise argparse.ArgumentTypeError(
            f"invalid age {text!r}: use a number with a unit s, m, h, d or w (e.g. 7d, 12h, 30m)")
    return sum(float(n) * _AGE_UNITS[u] for n, u in pieces)


def format_size(n: int | float) -> str:
    """``512 B``, ``33.7 KiB``, ``1.2 MiB``..."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_age(seconds: float) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``."""
    s = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit} ago"
    return f"{int(s)}s ago"


def _when(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for r in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r[:-1], widths[:-1])] + [str(r[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _pairs(rows: Sequence[Sequence[str]]) -> str:
    """Two aligned columns: name, value."""
    width = max((len(r[0]) for r in rows), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}".rstrip() for name, value in rows)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _ops_text(description: Any, limit: int = 60) -> str:
    ops = description.get("ops") if isinstance(description, dict) else None
    if not isinstance(ops, list):
        return "-"
    text = ",".join(str(o.get("type", o.get("name", "?"))) if isinstance(o, dict) else str(o) for o in ops)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- cache commands


def _cache() -> Any:
    from jitflow.codegen import cache

    return cache


def _cmd_dir(args: argparse.Namespace) -> int:
    print(_cache().cache_root())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    cache = _cache()
    entries = cache.list_entries()
    if args.json:
        _print_json({"dir": cache.cache_root(), "entries": entries})
        return 0
    if not entries:
        print(f"no entries in {cache.cache_root()}")
        return 0
    now = time.time()
    rows = [[e["key"][:12], str(e["backend"]), str(e["entry"]), format_size(e["size"]),
             format_age(now - e["last_used"]), _when(e["created"]), _ops_text(e["description"])]
            for e in entries]
    print(_table(["KEY", "BACKEND", "ENTRY", "SIZE", "LAST USED", "CREATED", "OPS"], rows))
    total = sum(e["size"] for e in entries)
    print(f"{len(entries)} entries, {format_size(total)} in {cache.cache_root()}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    s = _cache().disk_summary()
    if args.json:
        _print_json(s)
        return 0
    if not s["disk_cache_enabled"]:
        status = "disk cache disabled (JITFLOW_DISK_CACHE=0)"
    else:
        status = f"not usable: {s['problem']}" if not s["usable"] else (
            "usable" if s["exists"] else "usable (created on first use)")
    now = time.time()
    backends = ", ".join(f"{b}: {v['entries']} ({format_size(v['size'])})"
                         for b, v in sorted(s["by_backend"].items())) or "-"
    rows = [
        ["directory", s["dir"]],
        ["status", status],
        ["entries", str(s["entries"])],
        ["total size", format_size(s["size"])],
        ["backends", backends],
        ["kernel library", f"{s['library']['files']} Numba cache files of the hand-written kernels "
                           f"({format_size(s['library']['size'])})"],
        ["oldest use", f"{_when(s['oldest_use'])} ({format_age(now - s['oldest_use'])})"
         if s["oldest_use"] else "-"],
        ["newest use", f"{_when(s['newest_use'])} ({format_age(now - s['newest_use'])})"
         if s["newest_use"] else "-"],
        ["format version", str(s["format_version"])],
    ]
    print(_pairs(rows))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    cache = _cache()
    try:
        info = cache.entry_info(args.key)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    if args.json:
        _print_json(info)
        return 0
    now = time.time()
    rows = [
        ["key", info["key"]],
        ["path", info["path"]],
        ["backend", str(info["backend"])],
        ["entry", str(info["entry"])],
        ["ops", _ops_text(info["description"], limit=10_000)],
        ["size", format_size(info["size"])],
        ["created", _when(info["created"])],
        ["last used", f"{_when(info['last_used'])} ({format_age(now - info['last_used'])})"],
        ["compile time", f"{info['compile_seconds']:.3f} s" if info["compile_seconds"] else "-"],
        ["versions", f"jitflow {info['jitflow']}, numba {info['numba']}"],
        ["integrity", "ok" if info["problem"] is None else f"BAD: {info['problem']}"],
    ]
    desc = info["description"]
    if isinstance(desc, dict):
        rows += [[f"  {k}", json.dumps(v, default=str)] for k, v in sorted(desc.items()) if k != "ops"]
    print(_pairs(rows))
    if info["files"]:
        print()
        print(_table(["FILE", "SIZE", "SHA256"],
                     [[n, format_size(f.get("size", 0)), str(f.get("sha256", "?"))[:16]]
                      for n, f in info["files"].items()]))
    return 0


def _cmd_clear(args: argparse.Namespace) -> int:
    cache = _cache()
    result = cache.clear()
    if args.json:
        _print_json({"dir": cache.cache_root(), **result})
    else:
        freed = format_size(result["freed"])
        print(f"removed {result['removed']} entries and {result['library_files']} hand-written kernel "
              f"cache files ({freed}) from {cache.cache_root()}")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    if args.max_size is None and args.older_than is None:
        raise CliError("prune needs --max-size SIZE and/or --older-than AGE (e.g. --max-size 500M)")
    cache = _cache()
    result = cache.prune(max_size=args.max_size, older_than_s=args.older_than)
    if args.json:
        _print_json({"dir": cache.cache_root(), **result})
    else:
        print(f"removed {len(result['removed'])} entries ({format_size(result['freed'])}); "
              f"{result['remaining']} entries ({format_size(result['remaining_size'])}) remain")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    cache = _cache()
    total = len(cache.list_entries())
    bad = cache.verify(fix=args.fix)
    if args.json:
        _print_json({"dir": cache.cache_root(), "checked": total, "bad": bad})
    elif not bad:
        print(f"all {total} entries OK in {cache.cache_root()}")
    else:
        rows = [[b["key"][:12], "removed" if b["removed"] else "BAD", b["problem"]] for b in bad]
        print(_table(["KEY", "STATUS", "PROBLEM"], rows))
        hint = "" if args.fix else " (run 'jitflow cache verify --fix' to delete them)"
        print(f"{len(bad)} of {total} entries are bad{hint}")
    if not bad:
        return 0
    return 0 if args.fix and all(b["removed"] for b in bad) else 1


# --------------------------------------------------------------------------- explain


def _cmd_explain(args: argparse.Namespace) -> int:
    if args.module is None and not args.command:
        raise CliError("explain needs a script (jitflow explain SCRIPT.py [ARGS]) or -m MODULE")
    from jitflow.explain import collect_reports

    target = args.module if args.module is not None else args.command[0]
    script_args = list(args.command if args.module is not None else args.command[1:])
    if args.module is None and not os.path.isfile(target):
        raise CliError(f"no such script: {target}")

    os.environ["JITFLOW_EXPLAIN_RECORD"] = "1"
    # with --json, stdout carries only the JSON document: the program's own output goes to stderr
    sink = sys.stderr if args.json else sys.stdout
    code = _run_program(target, script_args, as_module=args.module is not None, stdout=sink)
    try:
        reports = list(collect_reports())
        dicts = [r.to_dict() for r in reports]
    except Exception as exc:  # the program ran; say clearly that only the report failed
        raise CliError(f"the program ran (exit status {code}) but its plans could not be collected: "
                       f"{type(exc).__name__}: {exc}") from None
    if args.dot:
        _write_text(args.dot, plans_to_dot(dicts))
        print(f"jitflow explain: wrote {args.dot}", file=sys.stderr)
    if args.tensorboard:
        from jitflow.explain_tensorboard import write_plans
        from jitflow.session import recorded_plans

        print(f"jitflow explain: wrote {write_plans(args.tensorboard, recorded_plans())}", file=sys.stderr)
    if args.json:
        _print_json({"program": target, "exit_code": code, "reports": dicts})
    else:
        _print_reports(reports)
    return code


def _run_program(target: str, argv: list[str], as_module: bool, stdout: Any) -> int:
    """Run a script or module as ``__main__``; return its exit status (tracebacks go to stderr)."""
    import runpy

    saved_argv = sys.argv[:]
    sys.argv = [target, *argv]
    script_dir = None if as_module else os.path.dirname(os.path.abspath(target))
    if script_dir is not None:
        sys.path.insert(0, script_dir)  # like `python SCRIPT.py`: its directory comes first
    try:
        with contextlib.redirect_stdout(stdout):
            if as_module:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
        return 0
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.argv = saved_argv
        if script_dir is not None and script_dir in sys.path:
            sys.path.remove(script_dir)


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints the message and exits 1
    return 1


def _print_reports(reports: Sequence[Any]) -> None:
    if not reports:
        print("jitflow explain: the program built no plans (it never called Session.run "
              "with recording on)")
        return
    print(f"jitflow explain: {len(reports)} plan{'s' if len(reports) != 1 else ''}")
    for i, r in enumerate(reports, 1):
        print(f"\n--- plan {i} ---")
        print(str(r).rstrip("\n"))


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _dot_quote(text: Any) -> str:
    s = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def _op_label(op: Any) -> tuple[str, str]:
    """(name used by edges, label) of an op given as a name or a dict with name/type."""
    if isinstance(op, dict):
        name = str(op.get("name", op.get("op", "?")))
        kind = op.get("type")
        return name, f"{name}\n{kind}" if kind and kind != name else name
    return str(op), str(op)


def plans_to_dot(reports: Sequence[dict[str, Any]]) -> str:
    """Graphviz text for report dicts: one box per plan, one filled box per cluster holding its
    ops, fallback ops as dashed red nodes with their reason. If a report has ``"edges"``
    (pairs of op names), they are drawn between the ops."""
    out = ["digraph jitflow {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for p, rep in enumerate(reports):
        ids: dict[str, str] = {}
        out.append(f"  subgraph cluster_p{p} {{")
        out.append(f"    label={_dot_quote(f'plan {p + 1}')};")
        for c, cl in enumerate(rep.get("clusters", [])):
            secs = cl.get("compile_seconds")
            timing = f", {secs:.3f} s" if isinstance(secs, (int, float)) else ""
            label = (f"cluster {c}: {cl.get('backend', '?')}, {cl.get('source', '?')}{timing}"
                     f"\nkey {str(cl.get('key', ''))[:12]}")
            out.append(f"    subgraph cluster_p{p}_c{c} {{")
            out.append(f'      label={_dot_quote(label)}; style=filled; fillcolor="#e8f0fe";')
            for o, op in enumerate(cl.get("ops", [])):
                node = f"p{p}_c{c}_n{o}"
                name, text = _op_label(op)
                ids.setdefault(name, node)
                out.append(f"      {node} [label={_dot_quote(text)}];")
            out.append("    }")
        for f, fb in enumerate(rep.get("fallbacks", [])):
            node = f"p{p}_f{f}"
            name = str(fb.get("op", "?"))
            ids.setdefault(name, node)
            text = f"{name} ({fb.get('type', '?')})\ninterpreted: {fb.get('reason', '?')}"
            out.append(f"    {node} [label={_dot_quote(text)}, style=dashed, color=red];")
        for edge in rep.get("edges", []):
            if isinstance(edge, (list, tuple)) and len(edge) == 2 and all(str(e) in ids for e in edge):
                out.append(f"    {ids[str(edge[0])]} -> {ids[str(edge[1])]};")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- parser, main


def _build_parser() -> _Parser:
    parser = _Parser(prog="jitflow", description="jitflow command-line tools: the compile cache and plan "
                     "explanations.")
    parser.add_argument("--version", action="store_true", help="print jitflow's version and exit")
    top = parser.add_subparsers(dest="group", metavar="{cache,explain,inspect-checkpoint,run-graph,launch}")
    top.add_parser("inspect-checkpoint", help="print the tensors of a checkpoint (PATH [--tensor NAME] [--all])")

    cache = top.add_parser("cache", help="inspect and manage the on-disk kernel cache",
                           description="Inspect and manage the on-disk compile cache (JITFLOW_CACHE_DIR, "
                           "default ~/.cache/jitflow).")
    sub = cache.add_subparsers(dest="command", metavar="{dir,list,stats,info,clear,prune,verify}")
    cache.set_defaults(group_parser=cache)

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str,
            json_flag: bool = True) -> _Parser:
        p: _Parser = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return p

    add("dir", _cmd_dir, "print the cache directory", json_flag=False)
    add("list", _cmd_list, "list the cached kernels, most recently used first")
    add("stats", _cmd_stats, "summarize the cache directory: entries, size, backends")
    info = add("info", _cmd_info, "show one entry: metadata, files, integrity")
    info.add_argument("key", metavar="KEY", help="the entry's key, or a unique prefix of it")
    add("clear", _cmd_clear, "delete every cached kernel")
    prune = add("prune", _cmd_prune, "delete old entries, least recently used first")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE",
                       help="shrink the cache to at most SIZE bytes (500M, 2G, 0; K=1024)")
    prune.add_argument("--older-than", type=parse_age, metavar="AGE",
                       help="delete entries unused for longer than AGE (7d, 12h, 30m)")
    verify = add("verify", _cmd_verify, "check every entry against its sha256 hashes; exit status 1 "
                 "if any entry is bad (0 with --fix once the bad entries are deleted)")
    verify.add_argument("--fix", action="store_true", help="delete the bad entries")

    explain = top.add_parser(
        "explain", help="run a program and print the plans its sessions built",
        description="Run a Python program with plan recording on (JITFLOW_EXPLAIN_RECORD=1) and print "
        "the plans its sessions built: clusters and their ops, fallbacks and why, compile times, cache "
        "hits. Options go before the script; everything after it is passed to the script.")
    explain.add_argument("--json", action="store_true",
                         help="print the plans as JSON (the program's own output goes to stderr)")
    explain.add_argument("--dot", metavar="FILE", help="also write the plans as Graphviz text to FILE")
    explain.add_argument("--tensorboard", metavar="LOGDIR",
                         help="also write the plans as a graph event for TensorBoard (clusters as name scopes)")
    explain.add_argument("-m", dest="module", metavar="MODULE", help="run a module, like python -m")
    explain.add_argument("command", nargs=argparse.REMAINDER, metavar="SCRIPT.py [ARGS]",
                         help="the script and its arguments")
    explain.set_defaults(func=_cmd_explain)
    from jitflow.graph_runner import add_parser as add_run_graph

    add_run_graph(top)
    from jitflow.distributed.launch import add_parser as add_launch_parser

    add_launch_parser(top)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jitflow`` console script; returns the exit status."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inspect-checkpoint"]:  # TF's tool, with its own arguments
        from jitflow.python.tools.inspect_checkpoint import main as inspect_main

        return inspect_main(argv[1:])
    args = parser.parse_args(argv)
    if args.version:
        from jitflow import __version__

        print(f"jitflow {__version__}")
        return 0
    if args.group is None:
        parser.error("choose a command: cache, explain, inspect-checkpoint, run-graph or launch")
    if not hasattr(args, "func"):
        args.group_parser.error("choose a command: dir, list, stats, info, clear, prune, verify")
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"jitflow: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, BrokenPipeError):
        return 130 if isinstance(sys.exc_info()[1], KeyboardInterrupt) else 1
    except OSError as exc:
        print(f"jitflow: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
