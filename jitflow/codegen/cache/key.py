"""The content key of a compiled kernel.

:func:`kernel_key` is the one function that says what changes generated code: the
caller's parts (source, cluster structure, dtypes, ranks, backend, target, ...), plus
:data:`FORMAT_VERSION`, the versions of jitflow, Numba, llvmlite, NumPy and Python,
the CPU name and features (host and Numba's overrides), Numba's codegen settings, and
a sha256 of every jitflow module the source imports (transitively), so that editing
``vmath.py`` invalidates the kernels that use it. Source-file timestamps play no part.
"""
from __future__ import annotations

import ast
import enum
import functools
import hashlib
import json
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

FORMAT_VERSION = 1
"""Bumped whenever the layout of an entry or the meaning of a key changes."""

# --------------------------------------------------------------------------- key


def kernel_key(parts: Mapping[str, object]) -> str:
    """Return the sha256 hex key of a kernel: `parts` plus everything else that changes its code.

    `parts` holds whatever the generator knows (``source``, cluster structure, dtypes, ranks,
    backend, target, jitflow codegen flags, ...). Values may be None, bool, int, float, str,
    lists/tuples (equal), dicts (str or int keys), sets, NumPy dtypes and scalars, jitflow
    DTypes and enums; anything else raises TypeError rather than keying on a ``repr``.
    Added here: :data:`FORMAT_VERSION`, the jitflow/Numba/llvmlite/NumPy/Python versions,
    CPU name and features, Numba's codegen settings, and a hash of each jitflow module that
    ``parts["source"]`` imports (transitively).
    """
    source = parts.get("source")
    payload = {
        "format": FORMAT_VERSION,
        "parts": _canonical(dict(parts)),
        "env": _environment(),
        "helpers": _helper_digests(source) if isinstance(source, str) else {},
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def _canonical(obj: Any) -> Any:
    """A JSON-ready, deterministic form of `obj` (raises TypeError for unknown types)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_canonical(x) for x in obj]
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"kernel_key: dict keys must be str or int, got {type(k).__name__}")
            name = str(k)
            if name in out:
                raise TypeError(f"kernel_key: dict keys {name!r} collide once converted to text")
            out[name] = _canonical(v)
        return out
    if isinstance(obj, (set, frozenset)):
        items = [_canonical(x) for x in obj]
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(obj, bytes):
        return "bytes:" + obj.hex()
    if isinstance(obj, enum.Enum):
        return f"enum:{type(obj).__qualname__}.{obj.name}"
    dtypes_mod = sys.modules.get("jitflow.dtypes")
    if dtypes_mod is not None and isinstance(obj, dtypes_mod.DType):
        return f"tf:{obj.name}"
    if "numpy" in sys.modules:
        import numpy as np

        if isinstance(obj, np.dtype):
            return f"dtype:{obj.str}"
        if isinstance(obj, type) and issubclass(obj, np.generic):
            return f"dtype:{np.dtype(obj).str}"
        if isinstance(obj, np.generic) and not isinstance(obj, (np.void, np.object_)):
            return _canonical(obj.item())
    raise TypeError(f"kernel_key: cannot key a value of type {type(obj).__name__}: {obj!r:.80}")


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    """Versions, CPU and Numba codegen settings of this process (constant for its lifetime)."""
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    import numpy

    import jitflow

    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # some platforms cannot report features; the name still separates CPUs
        features = ""
    cfg = numba.config
    return {
        "jitflow": getattr(jitflow, "__version__", "?"),
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "numpy": numpy.__version__,
        "python": sys.version,
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "cpu_name": llvm.get_host_cpu_name(),
        "cpu_features": features,
        "numba_config": {
            name: str(getattr(cfg, name, None))
            for name in ("OPT", "CPU_NAME", "CPU_FEATURES", "ENABLE_AVX", "BOUNDSCHECK",
                         "DEBUGINFO_DEFAULT", "FASTMATH", "LOOP_VECTORIZE", "SLP_VECTORIZE")
        },
    }


def _helper_digests(source: str) -> dict[str, str]:
    """sha256 of every jitflow module `source` imports, following their jitflow imports."""
    pending = list(_source_imports(source))
    seen: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:  # `from module import name` also tries `module.name`; a real miss fails to compile
            continue
        st = os.stat(path)
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        digest, imports = _module_digest_and_imports(path, st.st_mtime_ns, st.st_size, package)
        seen[name] = digest
        pending.extend(imports)
    return dict(sorted(seen.items()))


@functools.lru_cache(maxsize=512)
def _module_digest_and_imports(path: str, mtime_ns: int, size: int, package: str) -> tuple[str, tuple[str, ...]]:
    """A module's sha256 and the jitflow modules it imports (parsed once per file version)."""
    digest, tree = _digest_module_cached(path, mtime_ns, size)
    return digest, tuple(_jitflow_imports(tree, package))


@functools.lru_cache(maxsize=1024)
def _source_imports(source: str) -> tuple[str, ...]:
    """The jitflow modules a kernel source imports directly (parsed once per distinct source)."""
    try:
        return tuple(_jitflow_imports(ast.parse(source), package=None))
    except SyntaxError:  # the compile step reports it properly
        return ()


def _jitflow_imports(tree: ast.Module, package: str | None) -> list[str]:
    """Names of jitflow modules imported by `tree` (absolute, or relative to `package`)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package is not None:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join(anchor + ([base] if base else []))
            elif node.level:
                continue
            names.append(base)
            # `from pkg import mod` may name submodules; a non-module name resolves to no file
            names.extend(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return [n for n in names if n == "jitflow" or n.startswith("jitflow.")]


def _module_file(name: str) -> str | None:
    """The file of jitflow module `name`, found by path (importing nothing)."""
    import jitflow

    root = os.path.dirname(os.path.abspath(jitflow.__file__ or ""))
    rel = name.split(".")[1:]
    base = os.path.join(root, *rel)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


@functools.lru_cache(maxsize=256)
def _digest_module_cached(path: str, mtime_ns: int, size: int) -> tuple[str, ast.Module]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        tree = ast.parse(data)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    return hashlib.sha256(data).hexdigest(), tree

