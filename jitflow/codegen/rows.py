"""Row kernels: ops that work along the last axis of a matrix and need more than one pass per row.

`sparse_xent_source(dtype, label_dtype)` is the Numba kernel of SparseSoftmaxCrossEntropyWithLogits:
per row, the max, the exponentials (vectorizable `vmath.exp`) and their sum, then the loss
``log(sum) - z[label]`` and the gradient ``e / sum - onehot(label)``, with the formulas of the
reference kernel in `jitflow.ops.nn_ops`. A label outside ``[0, classes)`` sets ``err`` and the caller
re-runs the op interpreted, which raises TF's error.

Rows run under ``prange`` (the caller picks the thread count for the work), and each pass over a row
is a loop over a row slice that LLVM vectorizes (indexing ``f[base + j]`` keeps Numba's negative-index
select in the loop, which stops it: 5x slower). Two passes use per-function fast-math flags, on their
own instructions only (the vmath calls they inline keep theirs):

* the max is a plain ``>`` select under ``nnan``/``nsz`` (needed to vectorize a max reduction). A NaN
  in the row may then give any max, but the NaN still reaches every output of its row through the sum
  of exponentials, as in TF (and an inf gives ``inf - inf`` = NaN there, as in TF);
* the sum of exponentials accumulates in float64 under ``reassoc`` (vectorized partial sums).
"""
from __future__ import annotations

from jitflow.codegen.lowering import cast, const

ENTRY = "kernel"
ROWS_VERSION = 5


def _helpers(dt: str) -> list[str]:
    """The per-row passes: ``_rowmax(row)``, ``_expsum(row, out, m)`` (stores the exponentials, returns
    their float64 sum) and ``_scale(out, s)`` (divides by the sum)."""
    suffix = "f32" if dt == "float32" else "f64"
    return [
        "import numpy as np",
        "from numba import njit, prange, types",
        "from jitflow.codegen import vmath as V",
        "",
        "",
        "@njit(fastmath={'nnan', 'nsz'}, error_model='numpy', nogil=True, cache=True)",
        "def _rowmax(r):",
        "    V.nan_free_reduction()",
        "    V.wide_vectors()",
        "    m = r[0]",
        "    for j in range(1, r.size):",
        "        v = r[j]",
        "        m = v if v > m else m",
        "    return m",
        "",
        "",
        "@njit(fastmath={'reassoc'}, error_model='numpy', nogil=True, cache=True)",
        "def _expsum(r, o, m):",
        "    s = np.float64(0.0)",
        "    for j in range(r.size):",
        f"        e = V.exp_{suffix}({cast('r[j] - m', dt)})",
        "        o[j] = e",
        "        s += np.float64(e)",
        "    return s",
        "",
        "",
        "@njit(error_model='numpy', nogil=True, cache=True)",
        "def _scale(o, s):",
        "    for j in range(o.size):",
        f"        o[j] = {cast('o[j] / s', dt)}",
        "",
        "",
    ]


def _label_types(dt: str, label_dt: str) -> list[str]:
    """Numba types of a labelled row kernel's arrays: logits (read-only), labels, outputs, int64 extents."""
    return [
        f"_F = types.Array(types.{dt}, 1, 'C', readonly=True)",
        f"_L = types.Array(types.{label_dt}, 1, 'C', readonly=True)",
        f"_O = types.Array(types.{dt}, 1, 'C')",
        "_I = types.Array(types.int64, 1, 'C')",
        "",
        "",
    ]


def _label_rows() -> list[str]:
    """The row loop of a labelled row kernel, up to its row's label (a label outside [0, k) sets ``err``)."""
    return [
        "    V.wide_vectors()",
        "    n = ext[0]",
        "    k = ext[1]",
        "    for i in prange(n):",
        "        lb = lab[i]",
        "        if lb < 0 or lb >= k:",
        "            err[0] = 1  # every writer writes the same value",
        "            continue",
    ]


def sparse_xent_source(dt: str, label_dt: str, bias: bool = False) -> str:
    """Source of ``kernel(logits, labels, loss, backprop, ext, err)`` for `dt` logits; with `bias`,
    ``kernel(x, bias, labels, ...)`` whose logits are ``x + bias`` row by row (a dense layer's bias add,
    computed here instead of in a pass of its own), rounded to `dt` as the Add op rounds them."""
    suffix = "f32" if dt == "float32" else "f64"
    one = const(1, dt)
    lines = _helpers(dt) + _label_types(dt, label_dt)
    if bias:
        lines += [
            "@njit(error_model='numpy', nogil=True, cache=True)",
            "def _addrow(r, b, o):",
            "    for j in range(o.size):",
            f"        o[j] = {cast('r[j] + b[j]', dt)}",
            "",
            "",
            "@njit(fastmath={'reassoc'}, error_model='numpy', nogil=True, cache=True)",
            "def _expsum_here(o, m):",
            "    # _expsum in place: one array, so LLVM vectorizes without a run-time overlap check failing",
            "    s = np.float64(0.0)",
            "    for j in range(o.size):",
            f"        e = V.exp_{suffix}({cast('o[j] - m', dt)})",
            "        o[j] = e",
            "        s += np.float64(e)",
            "    return s",
            "",
            "",
            "@njit(types.void(_F, _F, _L, _O, _O, _I, _I), cache=True, error_model='numpy', nogil=True, "
            "parallel=True)",
            f"def {ENTRY}(f, b, lab, loss, bp, ext, err):",
        ]
    else:
        lines += [
            "@njit(types.void(_F, _L, _O, _O, _I, _I), cache=True, error_model='numpy', nogil=True, parallel=True)",
            f"def {ENTRY}(f, lab, loss, bp, ext, err):",
        ]
    lines += _label_rows() + [
        "        o = bp[i * k:(i + 1) * k]",
    ]
    if bias:  # the logits row goes into the gradient's row, which the passes below then overwrite in place
        lines += ["        r = o", "        _addrow(f[i * k:(i + 1) * k], b, o)"]
    else:
        lines += ["        r = f[i * k:(i + 1) * k]"]
    lines += [
        "        m = _rowmax(r)",
        f"        zl = {cast('r[lb] - m', dt)}",
        f"        s1 = {cast('_expsum_here(o, m)' if bias else '_expsum(r, o, m)', dt)}",
        f"        loss[i] = {cast(f'V.log_{suffix}(s1) - zl', dt)}",
        "        _scale(o, s1)",
        f"        o[lb] = {cast(f'o[lb] - {one}', dt)}",
    ]
    return "\n".join(lines) + "\n"


def _logit(dt: str, bias: bool, j: str) -> str:
    """Logit j of the row: ``r[j]``, or ``r[j] + b[j]`` rounded to `dt` as the Add op rounds it."""
    return cast(f"r[{j}] + b[{j}]", dt) if bias else f"r[{j}]"


def _split_helpers(dt: str, bias: bool) -> list[str]:
    """Per-row passes of the split cross-entropy over the logits: ``_lmax(r, b)`` and ``_lexpsum(r, b, m, o)``
    (stores the exponentials, returns their float64 sum); ``b`` is the bias row (ignored without a bias)."""
    suffix = "f32" if dt == "float32" else "f64"
    z = _logit(dt, bias, "j")
    return [
        "@njit(fastmath={'nnan', 'nsz'}, error_model='numpy', nogil=True, cache=True)",
        "def _lmax(r, b):",
        "    V.nan_free_reduction()",
        "    V.wide_vectors()",
        f"    m = {_logit(dt, bias, '0')}",
        "    for j in range(1, r.size):",
        f"        v = {z}",
        "        m = v if v > m else m",
        "    return m",
        "",
        "",
        "@njit(fastmath={'reassoc'}, error_model='numpy', nogil=True, cache=True)",
        "def _lexpsum(r, b, m, o):",
        "    s = np.float64(0.0)",
        "    for j in range(r.size):",
        f"        e = V.exp_{suffix}({cast(z + ' - m', dt)})",
        "        o[j] = e",
        "        s += np.float64(e)",
        "    return s",
        "",
        "",
    ]


def xent_loss_source(dt: str, label_dt: str, bias: bool = False) -> str:
    """Source of ``kernel(logits, [bias,] labels, loss, stats, exps, ext, err)``: the loss of
    `sparse_xent_source` without its gradient; per row the sum of exponentials (``sums[i]``, in `dt`) and
    the exponentials themselves (``exps``, the logits'
    shape), from which `xent_grad_source` computes the gradient later, scaled as the backward pass needs
    it. The exponentials are stored because computing them is most of this pass's time (measured: W8's
    gradient pass 2.5 -> 1.5 ms for 0.2-0.3 ms more here)."""
    suffix = "f32" if dt == "float32" else "f64"
    b_arg = "b, " if bias else ""
    lines = _helpers(dt) + _split_helpers(dt, bias) + _label_types(dt, label_dt) + [
        f"@njit(types.void(_F, {'_F, ' if bias else ''}_L, _O, _O, _O, _I, _I), cache=True, error_model='numpy', "
        "nogil=True, parallel=True)",
        f"def {ENTRY}(f, {b_arg}lab, loss, sums, exps, ext, err):",
    ] + _label_rows() + [
        "        r = f[i * k:(i + 1) * k]",
    ]
    if not bias:
        lines.append("        b = r  # unused")
    lines += [
        "        m = _lmax(r, b)",
        f"        zl = {cast(_logit(dt, bias, 'lb') + ' - m', dt)}",
        f"        s1 = {cast('_lexpsum(r, b, m, exps[i * k:(i + 1) * k])', dt)}",
        f"        loss[i] = {cast(f'V.log_{suffix}(s1) - zl', dt)}",
        "        sums[i] = s1",
    ]
    return "\n".join(lines) + "\n"


def _grad_helpers(dt: str) -> list[str]:
    """The per-row passes of `xent_grad_source`: ``_times(o, s, g)`` (``o = g * (o / s)`` in place),
    ``_times_sum(o, s, g, acc)`` (also adds the products into ``acc``) and ``_add_into(acc, o)``."""
    p = cast(f"g * {cast('o[j] / s', dt)}", dt)
    return [
        "_D = types.Array(types.float64, 1, 'C')",
        "",
        "",
        "@njit(error_model='numpy', nogil=True, cache=True)",
        "def _times(o, s, g):",
        "    V.wide_vectors()",
        "    for j in range(o.size):",
        f"        o[j] = {p}",
        "",
        "",
        "@njit(error_model='numpy', nogil=True, cache=True)",
        "def _times_sum(o, s, g, acc):",
        "    V.wide_vectors()",
        "    for j in range(o.size):",
        f"        v = {p}",
        "        o[j] = v",
        "        acc[j] += np.float64(v)",
        "",
        "",
        "@njit(error_model='numpy', nogil=True, cache=True)",
        "def _add_into(acc, o):",
        "    for j in range(o.size):",
        "        acc[j] += np.float64(o[j])",
        "",
        "",
    ]


def xent_grad_source(dt: str, label_dt: str, colsum: bool = False) -> str:
    """Source of ``kernel(exps, labels, sums, g, parts, colsum, ext, err)``: the gradient of
    `sparse_xent_source` (``e / sum - onehot(label)``, from `xent_loss_source`'s ``exps`` and ``sums``)
    times ``g[i]`` per row, the backward pass's ``Mul`` of that gradient by the loss's row gradient, each
    value rounded as those ops round it, in one pass per row that overwrites ``exps`` (in place, each
    line is read and written once: measured 1.8 -> 1.4 ms for W8's 700 x 10,000). With `colsum`, also the
    column sums of the product (a logits bias's gradient): float64 partial sums of ``ext[2]`` chunks of
    rows, added in chunk order into ``colsum``."""
    one = const(1, dt)
    label_p = cast(f"gi * {cast(cast('o[lb] / s', dt) + ' - ' + one, dt)}", dt)
    lines = _label_types(dt, label_dt) + _grad_helpers(dt) + [
        "@njit(types.void(_O, _L, _F, _F, _D, _O, _I, _I), cache=True, error_model='numpy', nogil=True, "
        "parallel=True)",
        f"def {ENTRY}(exps, lab, sums, g, parts, colsum, ext, err):",
        "    V.wide_vectors()",
        "    n = ext[0]",
        "    k = ext[1]",
        "    nch = ext[2]",
        "    for c in prange(nch):",
    ]
    if colsum:
        lines += [
            "        acc = parts[c * k:(c + 1) * k]",
            "        for j in range(acc.size):",
            "            acc[j] = 0.0",
        ]
    lines += [
        "        for i in range((n * c) // nch, (n * (c + 1)) // nch):",
        "            lb = lab[i]",
        "            if lb < 0 or lb >= k:",
        "                err[0] = 1",
        "                continue",
        "            o = exps[i * k:(i + 1) * k]",
        "            s = sums[i]",
        "            gi = g[i]",
        f"            v = {label_p}",
    ]
    if colsum:  # the label's column apart, so that every column takes its rows' values in order
        lines += [
            "            _times_sum(o[:lb], s, gi, acc[:lb])",
            "            o[lb] = v",
            "            acc[lb] += np.float64(v)",
            "            _times_sum(o[lb + 1:], s, gi, acc[lb + 1:])",
            "    total = parts[:k]",
            "    for c in range(1, nch):",
            "        _add_into(total, parts[c * k:(c + 1) * k])",
            "    for j in range(k):",
            f"        colsum[j] = {cast('total[j]', dt)}",
        ]
    else:
        lines += [
            "            _times(o, s, gi)",
            "            o[lb] = v",
        ]
    head = ["import numpy as np", "from numba import njit, prange, types", "from jitflow.codegen import vmath as V",
            "", ""]
    return "\n".join(head + lines) + "\n"


def softmax_source(dt: str, log: bool) -> str:
    """Source of ``kernel(x, out, ext, err)``: softmax (or log-softmax) of each row of ``ext[0]`` rows of
    ``ext[1]`` elements, with the reference formulas (``z = x - max``, ``e / sum(e)`` or ``z - log(sum)``)."""
    suffix = "f32" if dt == "float32" else "f64"
    lines = _helpers(dt) + [
        f"_F = types.Array(types.{dt}, 1, 'C', readonly=True)",
        f"_O = types.Array(types.{dt}, 1, 'C')",
        "_I = types.Array(types.int64, 1, 'C')",
        "",
        "",
        "@njit(types.void(_F, _O, _I, _I), cache=True, error_model='numpy', nogil=True, parallel=True)",
        f"def {ENTRY}(f, out, ext, err):",
        "    V.wide_vectors()",
        "    n = ext[0]",
        "    k = ext[1]",
        "    if k == 0:",
        "        return",
        "    for i in prange(n):",
        "        r = f[i * k:(i + 1) * k]",
        "        o = out[i * k:(i + 1) * k]",
        "        m = _rowmax(r)",
        f"        s1 = {cast('_expsum(r, o, m)', dt)}",
    ]
    if log:
        lines += [
            f"        ls = V.log_{suffix}(s1)",
            "        for j in range(k):",
            f"            o[j] = {cast(cast('r[j] - m', dt) + ' - ls', dt)}",
        ]
    else:
        lines.append("        _scale(o, s1)")
    return "\n".join(lines) + "\n"
