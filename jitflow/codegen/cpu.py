"""CPU code generation: one Numba kernel per (cluster, layout) as Python source.

The kernel takes flat C-contiguous arrays and loops over the layout's groups::

    kernel(in_0, ..., in_n, out_0, ..., out_m, ext, err)

``ext`` (int64) holds the group extents, ``err`` (int64, length 1) is set to k+1 when check k of a node
fails (integer division by zero, ...); the caller then re-runs the cluster interpreted, which raises
the op's error. Inputs are read-only in the signature, so variables and constants pass without copies.
The outermost group runs under ``prange`` when `parallel` is asked for and that group is not reduced.
Transcendentals call `jitflow.codegen.vmath` (bound to ``V``), whose loops vectorize. A reduction
accumulates in the output dtype's wide type (float64 for float32 sums) into ``acc[out index]``; when
its innermost group is reduced, that loop keeps independent accumulators (a single one is a serial
dependency chain that cannot vectorize): blocks of `WIDE_LANES`, then of `LANES`, then a scalar tail.
"""
from __future__ import annotations

from jitflow.codegen import lowering as L
from jitflow.ir import expr
from jitflow.ir.cluster import REDUCTION, Cluster
from jitflow.ir.layout import Layout

CODEGEN_VERSION = 10
ENTRY = "kernel"
LANES = 8
# lanes of the main blocks: a 64-step inner loop is vectorized by LLVM as a loop over eight vectors of
# accumulators (a fully unrolled 8-step one stays scalar: 2M float32 squares summed 0.55 -> 0.19 ms)
WIDE_LANES = 64
CHUNKS = 16  # chunks (partial results) of a parallel reduction over its first group
# Steps of a reduced group per pass over the kept groups inside it (`_unrolled_reduction`).
UNROLL_REDUCED = 4


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
                       "cosh": "cosh", "**": "pow", "arctan2": "atan2"})


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


def flat_index(mask: tuple[bool, ...]) -> str:
    """`index_expr` as an unsigned integer: Numba then omits its negative-index fix-up, a select that keeps
    LLVM from vectorizing the loop wherever the loop variable is not provably >= 0 (a prange body, a
    chunk's ``range(lo, hi)``; measured: a 700 x 10,000 broadcast multiply under prange 8.9 -> 1.5 ms)."""
    e = index_expr(mask)
    return e if e == "0" else f"np.uint64({e})"


def value_masks(c: Cluster, layout: Layout) -> list[tuple[bool, ...]]:
    """The mask of every value id (inputs, then nodes): the union of the masks of its inputs."""
    masks = list(layout.masks)
    for node in c.nodes:
        m = [False] * layout.ngroups
        for a in node.args:
            m = [x or y for x, y in zip(m, masks[a])]
        masks.append(tuple(m))
    return masks


class NumpyScalarDialect(CpuDialect):
    """Formula calls as the interpreter makes them (``F["exp"](x)``: `ir/expr.py`'s functions on NumPy
    scalars), for the one-element path (`codegen/scalar.py`): no Numba function is called there, so a
    program whose clusters are all one element never starts Numba (its first use costs ~0.5 s)."""

    def call(self, name: str, dt: str, args: list[str]) -> str:
        return f"F[{name!r}]({', '.join(args)})"


NUMPY_SCALAR = NumpyScalarDialect({})


def node_expr(c: Cluster, k: int, names: list[str], cpu_math: bool = False) -> L.Expr:
    """The scalar expression of node k, given the names of all value ids (`CPU_MATH` if `cpu_math`)."""
    return L.node_expr(c, k, names, CPU_MATH if cpu_math else CPU)


def generate(c: Cluster, layout: Layout, parallel: bool = False) -> str:
    """Python source of the Numba kernel for cluster `c` under `layout`."""
    G = layout.ngroups
    lines = _signature(c, parallel)
    lines += [f"    e{g} = ext[{g}]" for g in range(G)]
    hoisted, inner = _body(c, layout)
    lines += ["    " + s for s in hoisted]
    if c.kind == REDUCTION:
        lines += _reduction(c, layout, parallel, inner)
    else:
        lines += _loops(G, "    ", inner, parallel, [False] * G)
    return "\n".join(lines) + "\n"


def _signature(c: Cluster, parallel: bool) -> list[str]:
    """Imports, the Numba signature and the kernel's def line."""
    in_names = [f"a{i}" for i in range(c.n_inputs)]
    out_names = [f"o{j}" for j in range(len(c.outputs))]
    sig_args = [f"types.Array({_nbtype(i.dtype)}, 1, 'C', readonly=True)" for i in c.inputs]
    for o in c.outputs:
        sig_args.append(f"types.Array({_nbtype(c.nodes[o.node].dtype)}, 1, 'C')")
    sig_args += ["types.Array(types.int64, 1, 'C')"] * 2
    return [
        "import numpy as np",
        "from numba import njit, prange, types",
        "from jitflow.codegen import vmath as V",
        "",
        f"_SIG = types.void({', '.join(sig_args)})",
        "",
        "",
        f"@njit(_SIG, parallel={parallel}, cache=True, error_model='numpy', nogil=True)",
        f"def {ENTRY}({', '.join(in_names + out_names + ['ext', 'err'])}):",
        "    V.wide_vectors()  # 512-bit vectors in this kernel (and nowhere else) on AVX-512 hosts",
    ]


def _body(c: Cluster, layout: Layout) -> tuple[list[str], list[str]]:
    """(statements computed once, before the loops; those computed per point, stores included)."""
    nin = c.n_inputs
    masks = value_masks(c, layout)
    body_nodes = range(len(c.nodes) - 1) if c.kind == REDUCTION else range(len(c.nodes))
    names = [f"x{i}" for i in range(nin)] + [f"v{k}" for k in range(len(c.nodes))]
    checks: list[str] = []
    # loads and nodes that do not depend on the loop indices are computed once, before the loops
    hoisted: list[str] = []
    inner: list[str] = []
    for i in range(nin):
        (inner if any(masks[i]) else hoisted).append(f"x{i} = a{i}[{flat_index(masks[i])}]")
    for k in body_nodes:
        e = node_expr(c, k, names, cpu_math=True)
        stmt = [f"v{k} = {e.code}"]
        for chk in e.checks:
            checks.append(chk)
            stmt.append(f"if {chk}:")
            stmt.append(f"    err[0] = {len(checks)}")
        (inner if any(masks[nin + k]) else hoisted).extend(stmt)
    out_node_of = {o.node: j for j, o in enumerate(c.outputs)}
    for k in body_nodes:
        j = out_node_of.get(k)
        if j is not None:
            inner.append(f"o{j}[{flat_index(masks[nin + k])}] = v{k}")
    return hoisted, inner


def _reduction(c: Cluster, layout: Layout, parallel: bool, inner: list[str]) -> list[str]:
    """A reduction: accumulate into acc[out index] around `inner`, then finish into the output."""
    G, ind = layout.ngroups, "    "
    red = c.nodes[-1]
    rule = L.reduction(red.op_type)
    in_dt = c.value_dtype(red.args[0])
    acc_dt = rule.acc_dtype(in_dt)
    j_red = next(j for j, o in enumerate(c.outputs) if o.node == len(c.nodes) - 1)
    kept = tuple(not r for r in layout.reduced)
    nout = " * ".join(f"e{g}" for g in range(G) if kept[g]) or "1"
    nred = " * ".join(f"e{g}" for g in range(G) if layout.reduced[g]) or "1"
    init = rule.init(acc_dt)
    lines = [f"{ind}nout = {nout}", f"{ind}nred = {nred}", f"{ind}acc = np.empty(nout, np.{_np_name(acc_dt)})",
             f"{ind}for j in range(nout):", f"{ind}    acc[j] = {init}"]
    oidx = flat_index(kept)
    # a reduced first group cannot run under prange as is: split it into chunks with partial results
    chunked = parallel and layout.reduced[0]
    target = f"loc[{oidx}]" if chunked else f"acc[{oidx}]"  # loc: chunk-private, LLVM knows it aliases nothing
    vcast = L.cast(f"x{red.args[0]}" if red.args[0] < c.n_inputs else f"v{red.args[0] - c.n_inputs}", acc_dt)
    loops = _reduce_loops(layout, rule, acc_dt, vcast, target, inner, parallel and not chunked,
                          ("lo", "hi") if chunked else ("0", "e0"))
    if chunked:
        lines += _chunked(loops, rule, acc_dt, init)
    else:
        lines += loops
    fin = L.finish_code(rule, "acc[j]", "nred", in_dt, red.dtype)
    return lines + [f"{ind}for j in range(nout):", f"{ind}    o{j_red}[j] = {fin}"]


def _reduce_loops(layout: Layout, rule: L.ReduceRule, acc_dt: str, vcast: str, target: str, inner: list[str],
                  parallel: bool, span0: tuple[str, str]) -> list[str]:
    """The loops that accumulate `vcast` into `target`; group 0 runs over `span0`."""
    G, ind = layout.ngroups, "    "
    init = rule.init(acc_dt)
    # trailing block of reduced groups: a private scalar accumulator around those loops
    first_trailing = G
    while first_trailing > 0 and layout.reduced[first_trailing - 1]:
        first_trailing -= 1
    if first_trailing == G:
        body = inner + [f"{target} = {L.cast(rule.combine.format(acc=target, v=vcast), acc_dt)}"]
        r = max((g for g in range(G) if layout.reduced[g]), default=-1)
        # stores of exported values in the loop: unrolled, LLVM needs more overlap checks than it makes and
        # leaves the loop scalar (measured: 2.9 -> 5.8 ms)
        if r < 0 or any(line.startswith("o") for line in inner):
            return _loops(G, ind, body, parallel, list(layout.reduced))
        block = _unrolled_reduction(layout, r, rule, acc_dt, vcast, target, inner, body,
                                    span0 if r == 0 else ("0", f"e{r}"))
        return _loops(r, ind, block, parallel, list(layout.reduced[:r]))
    body = inner + [f"s = {L.cast(rule.combine.format(acc='s', v=vcast), acc_dt)}"]
    merge = [f"{target} = {L.cast(rule.combine.format(acc=target, v='s'), acc_dt)}"]
    # the innermost loop accumulates into LANES independent lanes: without reassociation a single
    # accumulator is a serial dependency chain that cannot vectorize
    lo, hi = span0 if G == 1 else ("0", f"e{G - 1}")
    comb_l = rule.combine.format(acc="sv[k]", v=vcast)
    lanes = [f"sv = np.full({WIDE_LANES} if {hi} - {lo} >= {WIDE_LANES} else {LANES}, {init}, "
             f"np.{_np_name(acc_dt)})", f"n8 = {lo}"]
    # blocks of WIDE_LANES, then of LANES, then a scalar tail; each lane takes its values in order
    for width in (WIDE_LANES, LANES):
        lanes += [f"nb = {hi} - ({hi} - n8) % {width}",
                  f"for jb in range(n8, nb, {width}):",
                  f"    for k in range({width}):",
                  f"        i{G - 1} = jb + k"]
        lanes += ["        " + line for line in inner + [f"sv[k] = {L.cast(comb_l, acc_dt)}"]]
        lanes += ["n8 = nb"]
    lanes += [f"for i{G - 1} in range(n8, {hi}):"] + ["    " + line for line in body]
    # wide lanes fold in halves (vector operations) down to LANES, which are taken in order
    lanes += ["w = sv.size",
              f"while w > {LANES}:",
              "    w //= 2",
              "    for k in range(w):",
              f"        sv[k] = {L.cast(rule.combine.format(acc='sv[k]', v='sv[k + w]'), acc_dt)}",
              f"for k in range({LANES}):",
              f"    s = {L.cast(rule.combine.format(acc='s', v='sv[k]'), acc_dt)}"]
    return _loops(G, ind, body, parallel, list(layout.reduced), split=first_trailing,
                  split_pre=[f"s = {init}"], split_post=merge, innermost=lanes)


def _unrolled_reduction(layout: Layout, r: int, rule: L.ReduceRule, acc_dt: str, vcast: str, target: str,
                        inner: list[str], body: list[str], span: tuple[str, str]) -> list[str]:
    """The loops over groups r..G-1 of a reduction whose last reduced group r is followed by kept groups
    only (a bias gradient's column sum): `UNROLL_REDUCED` steps of group r per pass over the kept groups,
    so each accumulator is loaded and stored once per pass instead of once per step (measured: a
    700 x 10,000 column sum 2.1 -> 0.95 ms). Every accumulator still takes its values in order of i{r}."""
    G, u = layout.ngroups, UNROLL_REDUCED
    lo, hi = span
    kept = [f"for i{g} in range(e{g}):" for g in range(r + 1, G)]
    step = [f"s = {target}",
            f"for u in range({u}):",
            f"    i{r} = ib + u"] + \
        ["    " + line for line in inner] + \
        [f"    s = {L.cast(rule.combine.format(acc='s', v=vcast), acc_dt)}",
         f"{target} = s"]
    lines = [f"nu = {hi} - ({hi} - {lo}) % {u}", f"for ib in range({lo}, nu, {u}):"]
    lines += [" " * 4 * (k + 1) + s for k, s in enumerate(kept)]
    lines += [" " * 4 * (len(kept) + 1) + s for s in step]
    lines += [f"for i{r} in range(nu, {hi}):"]
    lines += [" " * 4 * (k + 1) + s for k, s in enumerate(kept)]
    lines += [" " * 4 * (len(kept) + 1) + s for s in body]
    return lines


def _chunked(loops: list[str], rule: L.ReduceRule, acc_dt: str, init: str) -> list[str]:
    """`loops` run under prange over chunks of group 0, each into its own partial result, then combined."""
    ind = "    "
    np_dt = _np_name(acc_dt)
    comb_p = L.cast(rule.combine.format(acc="acc[j]", v="part[ch * nout + j]"), acc_dt)
    return [f"{ind}nch = max(1, min(e0, {CHUNKS}))",
            f"{ind}part = np.empty(nch * nout, np.{np_dt})  # every chunk fills its row",
            f"{ind}for ch in prange(nch):",
            f"{ind}    V.wide_vectors()",
            f"{ind}    lo = (e0 * ch) // nch",
            f"{ind}    hi = (e0 * (ch + 1)) // nch",
            f"{ind}    loc = np.empty(nout, np.{np_dt})",
            f"{ind}    for j in range(nout):",
            f"{ind}        loc[j] = {init}"] + \
        ["    " + line.replace("for i0 in range(e0):", "for i0 in range(lo, hi):") for line in loops] + \
        [f"{ind}    for j in range(nout):",
         f"{ind}        part[ch * nout + j] = loc[j]",
         f"{ind}for ch in range(nch):",
         f"{ind}    for j in range(nout):",
         f"{ind}        acc[j] = {comb_p}"]


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
        if rng == "prange":  # Numba outlines a prange body into a function of its own
            out.append(f"{depth}V.wide_vectors()")
    out += [depth + s for s in body]
    if 0 <= split < G:
        out += [ind + "    " * split + s for s in (split_post or [])]
    return out
