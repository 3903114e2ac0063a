"""The layers of the compiler: `ir/` below `codegen/` below `compiler/`, and nothing below reaches up."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import jitflow

ROOT = Path(jitflow.__file__).parent
FORBIDDEN = {
    "ir": ("jitflow.compiler", "jitflow.codegen", "jitflow.train", "jitflow.ops"),
    "codegen": ("jitflow.compiler", "jitflow.train"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_import_nothing_above(package: str) -> None:
    bad = {f"{p.name}: {m}" for p in sorted((ROOT / package).rglob("*.py")) for m in _imports(p)
           if m.startswith(FORBIDDEN[package])}
    assert bad == set()


def test_no_import_error_guards_around_own_modules() -> None:
    """A real import bug must not silently turn the JIT or CUDA off."""
    for package in ("compiler", "codegen", "ir"):
        for p in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Try) and any(
                        isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers):
                    guarded = {m for stmt in node.body for m in _imports_of(stmt)}
                    assert not any(m.startswith("jitflow") for m in guarded), f"{p}: {guarded}"


def _imports_of(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.ImportFrom) and stmt.module:
        return {stmt.module}
    if isinstance(stmt, ast.Import):
        return {a.name for a in stmt.names}
    return set()


def _function_lengths() -> dict[str, int]:
    lengths = {}
    for p in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                lengths[f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"] = node.end_lineno - node.lineno + 1
    return lengths


def test_functions_stay_small() -> None:
    """No function over 80 lines, and the median stays at 6 lines: stages read as small named steps."""
    lengths = _function_lengths()
    assert {name: n for name, n in lengths.items() if n > 80} == {}
    ordered = sorted(lengths.values())
    assert ordered[len(ordered) // 2] <= 6
