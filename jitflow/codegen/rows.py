"""Row kernels: ops that work along the last axis of a matrix and need more than one pass per row.

`sparse_xent_source(dtype, label_dtype)` is the Numba kernel of SparseSoftmaxCrossEntropyWithLogits:
per row, the max, the exponentials (vectorizable `vmath.exp`) and their sum, then the loss
``log(sum) - z[label]`` and the gradient ``e / sum - onehot(label)``, with the formulas of the
reference kernel in `jitflow.ops.nn_ops`. A label outside ``[0, classes)`` sets ``err`` and the caller
re-runs the op interpreted, which raises TF's error.
"""
from __future__ import annotations

from jitflow.codegen.lowering import cast, const

ENTRY = "kernel"
ROWS_VERSION = 1


def sparse_xent_source(dt: str, label_dt: str) -> str:
    """Source of ``kernel(logits, labels, loss, backprop, ext, err)`` for `dt` logits."""
    suffix = "f32" if dt == "float32" else "f64"
    one = const(1, dt)
    lines = [
        "import numpy as np",
        "from numba import njit, types",
        "from jitflow.codegen import vmath as V",
        "",
        f"_F = types.Array(types.{dt}, 1, 'C', readonly=True)",
        f"_L = types.Array(types.{label_dt}, 1, 'C', readonly=True)",
        f"_O = types.Array(types.{dt}, 1, 'C')",
        "_I = types.Array(types.int64, 1, 'C')",
        "",
        "",
        "@njit(types.void(_F, _L, _O, _O, _I, _I), cache=True, error_model='numpy', nogil=True)",
        f"def {ENTRY}(f, lab, loss, bp, ext, err):",
        "    V.wide_vectors()",
        "    n = ext[0]",
        "    k = ext[1]",
        "    for i in range(n):",
        "        lb = lab[i]",
        "        if lb < 0 or lb >= k:",
        "            err[0] = 1",
        "            continue",
        "        base = i * k",
        "        m = f[base]",
        "        for j in range(1, k):",
        "            v = f[base + j]",
        "            m = v if (v > m or v != v) else m",
        "        s = np.float64(0.0)",
        "        for j in range(k):",
        f"            e = V.exp_{suffix}({cast('f[base + j] - m', dt)})",
        "            bp[base + j] = e",
        "            s += np.float64(e)",
        f"        s1 = {cast('s', dt)}",
        f"        loss[i] = {cast(f'V.log_{suffix}(s1) - ' + cast('f[base + lb] - m', dt), dt)}",
        "        for j in range(k):",
        f"            bp[base + j] = {cast('bp[base + j] / s1', dt)}",
        f"        bp[base + lb] = {cast(f'bp[base + lb] - {one}', dt)}",
    ]
    return "\n".join(lines) + "\n"


def softmax_source(dt: str, log: bool) -> str:
    """Source of ``kernel(x, out, ext, err)``: softmax (or log-softmax) of each row of ``ext[0]`` rows of
    ``ext[1]`` elements, with the reference formulas (``z = x - max``, ``e / sum(e)`` or ``z - log(sum)``)."""
    suffix = "f32" if dt == "float32" else "f64"
    lines = [
        "import numpy as np",
        "from numba import njit, types",
        "from jitflow.codegen import vmath as V",
        "",
        f"_F = types.Array(types.{dt}, 1, 'C', readonly=True)",
        f"_O = types.Array(types.{dt}, 1, 'C')",
        "_I = types.Array(types.int64, 1, 'C')",
        "",
        "",
        "@njit(types.void(_F, _O, _I, _I), cache=True, error_model='numpy', nogil=True)",
        f"def {ENTRY}(f, out, ext, err):",
        "    V.wide_vectors()",
        "    n = ext[0]",
        "    k = ext[1]",
        "    if k == 0:",
        "        return",
        "    for i in range(n):",
        "        base = i * k",
        "        m = f[base]",
        "        for j in range(1, k):",
        "            v = f[base + j]",
        "            m = v if (v > m or v != v) else m",
        "        s = np.float64(0.0)",
        "        for j in range(k):",
        f"            e = V.exp_{suffix}({cast('f[base + j] - m', dt)})",
    ]
    if not log:
        lines.append("            out[base + j] = e")  # kept for the division below
    lines.append("            s += np.float64(e)")
    if log:
        lines += [
            f"        ls = V.log_{suffix}({cast('s', dt)})",
            "        for j in range(k):",
            f"            out[base + j] = {cast(cast('f[base + j] - m', dt) + ' - ls', dt)}",
        ]
    else:
        lines += [
            f"        s1 = {cast('s', dt)}",
            "        for j in range(k):",
            f"            out[base + j] = {cast('out[base + j] / s1', dt)}",
        ]
    return "\n".join(lines) + "\n"
