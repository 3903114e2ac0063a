"""CPU code generation: one Numba kernel per (cluster, layout) as Python source.

The kernel takes flat C-contiguous arrays and loops over the layout's groups::

    kernel(in_0, ..., in_n, out_0, ..., out_m, ext, err)

``ext`` (int64) holds the group extents, ``err`` (int64, length 1) is set to k+1 when check k of a node
fails (integer division by zero, ...); the caller then re-runs the cluster interpreted, which raises
the op's error. Inputs are read-only in the signature, so variables and constants pass without copies.
The outermost group runs under ``prange`` when `parallel` is asked for and that group is not reduced.
Transcendentals call `jitflow.codegen.vmath` (bound to ``V``), whose loops vectorize. A reduction
accumulates in the output dtype's wide type (float64 for float32 sums) into ``acc[out index]``; when
its innermost group is reduced, that loop keeps `LANES` independent accumulators (a single one is a
serial dependency chain that cannot vectorize) and a scalar tail.
"""
from __future__ import annotations

from jitflow.codegen import lowering as L
from jitflow.ir import expr
from jitflow.ir.cluster import REDUCTION, Cluster
from jitflow.ir.layout import Layout

CODEGEN_VERSION = 7
ENTRY = "kernel"
LANES = 8
CHUNKS = 16  # chunks (partial results) of a parallel reduction over its first group


class CpuDialect(expr.Dialect):
    """CPU spelling of formula calls: vmath's vectorizable function (``V.<fn>_<f32|f64>``) where the
    table `vmath_names` maps the NumPy name (or ``**``) to one, else the NumPy ufunc (a libm call)."""

    def __init__(self, vmath_names: dict[str, str]) -> None:
        self.vmath_names = vmath_names

    def call(self, name: str, dt: str, args: list[str]) -> str:
        fn = self.vmath_names.get(name)
        if fn is None or dt not in L.FLOAT:
            return super().call(name, dt, args)
        return f"V.{fn}_{'f32' if dt == 'float32' else 'f64'}({', '.join(args)})"

    def binary(self, op: str, a: str, b: str, dt: str) -> str:
        if op == "**" and "**" in self.vmath_names and dt in L.FLOAT:
            return self.cast(self.call("**", dt, [a, b]), dt)
        return super().binary(op, a, b, dt)


# vmath always stands in for these. CPU_MATH, what CPU kernels use, also takes vmath's asin, acos, atan,
# sinh, cosh and pow; sin/cos/tan stay libm calls: vmath's give nan beyond |x| = 2**50, where NumPy
# still answers. CPU keeps the others NumPy's.
_VMATH_ALWAYS = {n: n for n in ("exp", "log", "log1p", "expm1", "tanh", "sigmoid")}
CPU = CpuDialect(_VMATH_ALWAYS)
CPU_MATH = CpuDialect({**_VMATH_ALWAYS, "arcsin": "asin", "arccos": "acos", "arctan": "atan", "sinh": "sinh",
                       "cosh": "cosh", "**": "pow"})


def _nbtype(dt: str) -> str:
    return "types.boolean" if dt == "bool" else f"types.{dt}"


def _stride(layout_mask: tuple[bool, ...], g: int, ngroups: int) -> str:
    """The element stride of group g in an array spanning the groups of `layout_mask`."""
    parts = [f"e{h}" for h in range(g + 1, ngroups) if layout_mask[h]]
    return " * ".join(parts) if parts else ""


def index_expr(mask: tuple[bool, ...]) -> str:
    """The flat index into an array that spans the groups of `mask`, from loop variables i0, i1, ..."""
    n = len(mask)
    terms = []
    for g in range(n):
        if not mask[g]:
            continue
        s = _stride(mask, g, n)
        terms.append(f"i{g} * ({s})" if s else f"i{g}")
    return " + ".join(terms) if terms else "0"


def value_masks(c: Cluster, layout: Layout) -> list[tuple[bool, ...]]:
    """The mask of every value id (inputs, then nodes): the union of the masks of its inputs."""
    masks = list(layout.masks)
    for node in c.nodes:
        m = [False] * layout.ngroups
        for a in node.args:
            m = [x or y for x, y in zip(m, masks[a])]
        masks.append(tuple(m))
    return masks


def node_expr(c: Cluster, k: int, names: list[str], cpu_math: bool = False) -> L.Expr:
    """The scalar expression of node k, given the names of all value ids (`CPU_MATH` if `cpu_math`)."""
    return L.node_expr(c, k, names, CPU_MATH if cpu_math else CPU)


def generate(c: Cluster, layout: Layout, parallel: bool = False) -> str:
    """Python source of the Numba kernel for cluster `c` under `layout`."""
    G = layout.ngroups
    nin = c.n_inputs
    masks = value_masks(c, layout)
    red = c.reduction() if c.kind == REDUCTION else None
    body_nodes = range(len(c.nodes) - 1) if red is not None else range(len(c.nodes))
    in_names = [f"a{i}" for i in range(nin)]
    out_names = [f"o{j}" for j in range(len(c.outputs))]
    names = [f"x{i}" for i in range(nin)] + [f"v{k}" for k in range(len(c.nodes))]

    sig_args = [f"types.Array({_nbtype(i.dtype)}, 1, 'C', readonly=True)" for i in c.inputs]
    for o in c.outputs:
        dt = c.nodes[o.node].dtype
        sig_args.append(f"types.Array({_nbtype(dt)}, 1, 'C')")
    sig_args += ["types.Array(types.int64, 1, 'C')"] * 2
    lines = [
        "import numpy as np",
        "from numba import njit, prange, types",
        "from jitflow.codegen import vmath as V",
        "",
        f"_SIG = types.void({', '.join(sig_args)})",
        "",
        "",
        f"@njit(_SIG, parallel={parallel}, cache=True, error_model='numpy', nogil=True)",
        f"def {ENTRY}({', '.join(in_names + out_names + ['ext', 'err'])}):",
    ]
    ind = "    "
    for g in range(G):
        lines.append(f"{ind}e{g} = ext[{g}]")
    checks: list[str] = []
    scalar_vals = {i for i in range(nin) if not any(masks[i])}
    # loads and nodes that do not depend on the loop indices are computed once, before the loops
    hoisted: list[str] = []
    inner: list[str] = []
    for i in range(nin):
        (hoisted if i in scalar_vals else inner).append(f"x{i} = a{i}[{index_expr(masks[i])}]")
    for k in body_nodes:
        e = node_expr(c, k, names, cpu_math=True)
        stmt = [f"v{k} = {e.code}"]
        for chk in e.checks:
            checks.append(chk)
            stmt.append(f"if {chk}:")
            stmt.append(f"    err[0] = {len(checks)}")
        vid = nin + k
        (hoisted if not any(masks[vid]) else inner).extend(stmt)
    stores = []
    out_node_of = {o.node: j for j, o in enumerate(c.outputs)}
    for k in body_nodes:
        j = out_node_of.get(k)
        if j is not None:
            stores.append(f"o{j}[{index_expr(masks[nin + k])}] = v{k}")
    lines += [ind + s for s in hoisted]

    if red is None:
        loop_body = inner + stores
        lines += _loops(G, ind, loop_body, parallel, [False] * G)
        return "\n".join(lines) + "\n"

    # reduction: accumulate into acc[out index], then finish into the output
    rule = L.REDUCTIONS[red.op_type]
    src = red.args[0]
    in_dt = c.value_dtype(src)
    acc_dt = rule.acc_dtype(in_dt)
    j_red = out_node_of[len(c.nodes) - 1]
    kept = tuple(not r for r in layout.reduced)
    nout = " * ".join(f"e{g}" for g in range(G) if kept[g]) or "1"
    nred = " * ".join(f"e{g}" for g in range(G) if layout.reduced[g]) or "1"
    lines.append(f"{ind}nout = {nout}")
    lines.append(f"{ind}nred = {nred}")
    lines.append(f"{ind}acc = np.empty(nout, np.{_np_name(acc_dt)})")
    init = rule.init(acc_dt)
    lines.append(f"{ind}for j in range(nout):")
    lines.append(f"{ind}    acc[j] = {init}")
    v = names[src]
    oidx = index_expr(tuple(kept[g] for g in range(G)))
    # a reduced first group cannot run under prange as is: split it into chunks with partial results
    chunked = parallel and layout.reduced[0]
    if chunked:
        lines.append(f"{ind}nch = max(1, min(e0, {CHUNKS}))")
        lines.append(f"{ind}part = np.empty(nch * nout, np.{_np_name(acc_dt)})  # every chunk fills its row")
        target = f"loc[{oidx}]"  # a chunk-private array: LLVM knows it aliases nothing
        lo0, hi0 = "lo", "hi"
    else:
        target = f"acc[{oidx}]"
        lo0, hi0 = "0", "e0"
    # trailing block of reduced groups: a private scalar accumulator around those loops
    first_trailing = G
    while first_trailing > 0 and layout.reduced[first_trailing - 1]:
        first_trailing -= 1
    vcast = L.cast(v, acc_dt)
    comb_s = rule.combine.format(acc="s", v=vcast)
    comb_a = rule.combine.format(acc=target, v=vcast)
    if first_trailing < G:
        body = inner + stores + [f"s = {L.cast(comb_s, acc_dt)}"]
        merge = [f"{target} = {L.cast(rule.combine.format(acc=target, v='s'), acc_dt)}"]
        # the innermost loop accumulates into LANES independent lanes: without reassociation a single
        # accumulator is a serial dependency chain that cannot vectorize
        lo, hi = (lo0, hi0) if G == 1 else ("0", f"e{G - 1}")
        comb_l = rule.combine.format(acc="sv[k]", v=vcast)
        lanes = [f"sv = np.full({LANES}, {init}, np.{_np_name(acc_dt)})",
                 f"n8 = {hi} - ({hi} - {lo}) % {LANES}",
                 f"for jb in range({lo}, n8, {LANES}):",
                 f"    for k in range({LANES}):",
                 f"        i{G - 1} = jb + k"]
        lanes += ["        " + line for line in inner + stores + [f"sv[k] = {L.cast(comb_l, acc_dt)}"]]
        lanes += [f"for i{G - 1} in range(n8, {hi}):"] + ["    " + line for line in body]
        lanes += [f"for k in range({LANES}):",
                  f"    s = {L.cast(rule.combine.format(acc='s', v='sv[k]'), acc_dt)}"]
        loops = _loops(G, ind, body, parallel and not chunked, list(layout.reduced), split=first_trailing,
                       split_pre=[f"s = {init}"], split_post=merge, innermost=lanes)
    else:
        body = inner + stores + [f"{target} = {L.cast(comb_a, acc_dt)}"]
        loops = _loops(G, ind, body, parallel and not chunked, list(layout.reduced))
    if chunked:
        lines.append(f"{ind}for ch in prange(nch):")
        lines.append(f"{ind}    lo = (e0 * ch) // nch")
        lines.append(f"{ind}    hi = (e0 * (ch + 1)) // nch")
        lines.append(f"{ind}    loc = np.empty(nout, np.{_np_name(acc_dt)})")
        lines.append(f"{ind}    for j in range(nout):")
        lines.append(f"{ind}        loc[j] = {init}")
        loops = ["    " + line.replace("for i0 in range(e0):", "for i0 in range(lo, hi):") for line in loops]
        lines += loops
        lines.append(f"{ind}    for j in range(nout):")
        lines.append(f"{ind}        part[ch * nout + j] = loc[j]")
        lines.append(f"{ind}for ch in range(nch):")
        lines.append(f"{ind}    for j in range(nout):")
        comb_p = L.cast(rule.combine.format(acc="acc[j]", v="part[ch * nout + j]"), acc_dt)
        lines.append(f"{ind}        acc[j] = {comb_p}")
    else:
        lines += loops
    fin = L.finish_code(rule, "acc[j]", "nred", in_dt, red.dtype)
    lines.append(f"{ind}for j in range(nout):")
    lines.append(f"{ind}    o{j_red}[j] = {fin}")
    return "\n".join(lines) + "\n"


def _np_name(dt: str) -> str:
    return "bool_" if dt == "bool" else dt


def _loops(G: int, ind: str, body: list[str], parallel: bool, reduced: list[bool], split: int = -1,
           split_pre: list[str] | None = None, split_post: list[str] | None = None,
           innermost: list[str] | None = None) -> list[str]:
    """Nested loops over groups 0..G-1 around `body`; `split_pre`/`split_post` wrap loops split.. .

    `innermost`, when given, replaces the loop over the last group together with its body.
    """
    out: list[str] = []
    depth = ind
    for g in range(G):
        if innermost is not None and g == G - 1:
            if g == split:
                out += [depth + s for s in (split_pre or [])]
            out += [depth + s for s in innermost]
            if 0 <= split < G:
                out += [ind + "    " * split + s for s in (split_post or [])]
            return out
        if g == split:
            out += [depth + s for s in (split_pre or [])]
        rng = "prange" if (g == 0 and parallel and not reduced[0]) else "range"
        out.append(f"{depth}for i{g} in {rng}(e{g}):")
        depth += "    "
    out += [depth + s for s in body]
    if 0 <= split < G:
        out += [ind + "    " * split + s for s in (split_post or [])]
    return out
