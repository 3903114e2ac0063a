"""CUDA code generation: one Numba CUDA kernel module per (cluster, layout, target), as Python source.

Node expressions are rendered from the ops' formulas (`codegen/lowering.py`, `jitflow.ir.expr`) in the
device dialect `CUDA`: calls go to `jitflow.codegen.cudamath` (bound to ``M``) with the float type
spelled out. Every generated module defines a host-side entry that launches its kernels::

    launch(in_0, ..., in_n, out_0, ..., out_m, exts, err)

on device arrays (flat, C-contiguous). ``exts`` is the tuple of group extents of the layout; ``err``
(int64 device array of one element) is set to k+1 when check k of a node fails, and the caller then
re-runs the cluster interpreted, which raises the op's error.

* Elementwise clusters: one grid-stride kernel over the flat iteration space; each point decomposes its
  flat index into group indices and indexes every input through the groups it spans.
* Reduction clusters: pass 1 gives every (output, part) pair one block; its threads stride over the
  part's reduced elements (running the elementwise prologue and its stores), accumulate privately, and
  combine in shared memory by a tree; pass 2 combines the parts of each output and finishes (mean).
* MatMul (`generate_matmul`): a tiled shared-memory kernel, optionally with an elementwise epilogue
  cluster applied to each result element before it is stored.

A `Target` fixes what differs between devices: the architecture name that goes into the cache key
("cudasim" on the simulator), threads per block and the matmul tile.
"""
from __future__ import annotations

from dataclasses import dataclass

from jitflow.codegen import cpu
from jitflow.codegen import lowering as L
from jitflow.ir import expr
from jitflow.ir.cluster import REDUCTION, Cluster
from jitflow.ir.layout import Layout

CODEGEN_VERSION = 1
ENTRY = "launch"


@dataclass(frozen=True)
class Target:
    """What a kernel is compiled for."""

    arch: str  # "cudasim" or "sm_XY"
    tpb: int  # threads per block of 1-D kernels (a power of two: the tree reduction halves it)
    tile: int  # edge of the matmul tile (tile * tile threads per block)
    max_blocks: int  # grid size cap: grid-stride loops cover the rest

    def key(self) -> dict[str, object]:
        return {"arch": self.arch, "tpb": self.tpb, "tile": self.tile, "max_blocks": self.max_blocks}


def _nbtype(dt: str) -> str:
    return "types.boolean" if dt == "bool" else f"types.{dt}"


def _arr(dt: str) -> str:
    return f"types.Array({_nbtype(dt)}, 1, 'C')"


class CudaDialect(expr.Dialect):
    """Device spelling of formula calls: `jitflow.codegen.cudamath` (``M.<fn>_<f32|f64>``)."""

    def call(self, name: str, dt: str, args: list[str]) -> str:
        if dt not in L.FLOAT:
            raise ValueError(f"no device lowering for {name} on {dt}")
        return f"M.{name}_{'f32' if dt == 'float32' else 'f64'}({', '.join(args)})"


CUDA = CudaDialect()


def _node_stmts(c: Cluster, k: int, names: list[str], checks: list[str]) -> list[str]:
    """`v<k> = <expr>` and the checks of node k, as device code."""
    e = L.node_expr(c, k, names, CUDA)
    out = [f"v{k} = {e.code}"]
    for chk in e.checks:
        checks.append(chk)
        out.append(f"if {chk}:")
        out.append(f"    err[0] = {len(checks)}")
    return out


def _prelude(target: Target) -> list[str]:
    """First statements of every kernel: on the simulator, NumPy's float warnings are silenced."""
    return ["M.quiet()"] if target.arch == "cudasim" else []


def _decompose(flat: str, groups: list[int]) -> list[str]:
    """Row-major group indices i<g> (g in `groups`, outermost first) of the flat index `flat`."""
    if not groups:
        return []
    lines = [f"r_ = {flat}"]
    for g in reversed(groups[1:]):
        lines.append(f"i{g} = r_ % e{g}")
        lines.append(f"r_ = r_ // e{g}")
    lines.append(f"i{groups[0]} = r_")
    return lines


def _header(c: Cluster, extra_sig: list[str], extra_args: list[str]) -> tuple[list[str], list[str], str]:
    """Imports, the kernel signature and the argument list shared by the generated kernels."""
    sig = [_arr(i.dtype) for i in c.inputs] + [_arr(c.nodes[o.node].dtype) for o in c.outputs]
    args = [f"a{i}" for i in range(c.n_inputs)] + [f"o{j}" for j in range(len(c.outputs))]
    lines = [
        "import numpy as np",
        "from numba import cuda, types",
        "from jitflow.codegen import cudamath as M",
        "",
    ]
    return lines, sig + extra_sig, ", ".join(args + extra_args)


def _body(c: Cluster, layout: Layout, nodes: range, checks: list[str]) -> tuple[list[str], list[str]]:
    """(loads and nodes computed once per kernel, those computed per point) plus stores, as device code."""
    nin = c.n_inputs
    masks = cpu.value_masks(c, layout)
    names = [f"x{i}" for i in range(nin)] + [f"v{k}" for k in range(len(c.nodes))]
    hoisted: list[str] = []
    inner: list[str] = []
    for i in range(nin):
        (inner if any(masks[i]) else hoisted).append(f"x{i} = a{i}[{cpu.index_expr(masks[i])}]")
    for k in nodes:
        (inner if any(masks[nin + k]) else hoisted).extend(_node_stmts(c, k, names, checks))
    out_of = {o.node: j for j, o in enumerate(c.outputs)}
    for k in nodes:
        j = out_of.get(k)
        if j is not None:
            inner.append(f"o{j}[{cpu.index_expr(masks[nin + k])}] = v{k}")
    return hoisted, inner


def generate(c: Cluster, layout: Layout, target: Target) -> str:
    """Python source of the CUDA kernel module for cluster `c` under `layout`."""
    if c.kind == REDUCTION:
        return _generate_reduction(c, layout, target)
    G = layout.ngroups
    exts = [f"e{g}" for g in range(G)]
    lines, sig, args = _header(c, ["types.int64"] * G + [_arr("int64")], exts + ["err"])
    checks: list[str] = []
    hoisted, inner = _body(c, layout, range(len(c.nodes)), checks)
    ind = "    "
    lines += [
        f"_SIG = types.void({', '.join(sig)})",
        f"TPB = {target.tpb}",
        f"MAXB = {target.max_blocks}",
        "",
        "",
        "@cuda.jit(_SIG, cache=True)",
        f"def _elementwise({args}):",
        f"{ind}n = {' * '.join(exts)}",
    ]
    lines += [ind + s for s in _prelude(target)]
    lines += [ind + s for s in hoisted]
    lines += [f"{ind}t = cuda.grid(1)", f"{ind}step = cuda.gridsize(1)", f"{ind}while t < n:"]
    lines += [2 * ind + s for s in _decompose("t", list(range(G))) + inner]
    lines += [f"{2 * ind}t += step", "", ""]
    n_arr = c.n_inputs + len(c.outputs)
    lines += [
        f"def {ENTRY}(*args):",
        f"{ind}arrays = args[:{n_arr}]",
        f"{ind}exts, err = args[{n_arr}], args[{n_arr + 1}]",
        f"{ind}n = 1",
        f"{ind}for e in exts:",
        f"{ind}    n *= e",
        f"{ind}if n == 0:",
        f"{ind}    return",
        f"{ind}blocks = min((n + TPB - 1) // TPB, MAXB)",
        f"{ind}_elementwise[blocks, TPB](*arrays, *exts, err)",
    ]
    return "\n".join(lines) + "\n"


def _generate_reduction(c: Cluster, layout: Layout, target: Target) -> str:
    G = layout.ngroups
    red = c.nodes[-1]
    rule = L.REDUCTIONS[red.op_type]
    src = red.args[0]
    in_dt = c.value_dtype(src)
    acc_dt = rule.acc_dtype(in_dt)
    j_red = next(j for j, o in enumerate(c.outputs) if o.node == len(c.nodes) - 1)
    kept = [g for g in range(G) if not layout.reduced[g]]
    reduced = [g for g in range(G) if layout.reduced[g]]
    exts = [f"e{g}" for g in range(G)]
    # pass 1 writes partial accumulators instead of the reduction's output
    lines, sig, args = _header(c, [_arr(acc_dt)] + ["types.int64"] * (G + 1) + [_arr("int64")],
                               ["part"] + exts + ["nparts", "err"])
    checks: list[str] = []
    hoisted, inner = _body(c, layout, range(len(c.nodes) - 1), checks)
    src_name = f"x{src}" if src < c.n_inputs else f"v{src - c.n_inputs}"
    init = rule.init(acc_dt)
    comb = L.cast(rule.combine.format(acc="s", v=L.cast(src_name, acc_dt)), acc_dt)
    tree = L.cast(rule.combine.format(acc="sh[tid]", v="sh[tid + w]"), acc_dt)
    ind = "    "
    nout = " * ".join(f"e{g}" for g in kept) or "1"
    nred = " * ".join(f"e{g}" for g in reduced) or "1"
    lines += [
        f"_SIG = types.void({', '.join(sig)})",
        f"_SIG2 = types.void({_arr(acc_dt)}, {_arr(red.dtype)}, types.int64, types.int64, types.int64)",
        f"TPB = {target.tpb}",
        f"MAXB = {target.max_blocks}",
        f"ACC = {_nbtype(acc_dt)}",
        "",
        "",
        "@cuda.jit(_SIG, cache=True)",
        f"def _partial({args}):",
        *[ind + s for s in _prelude(target)],
        f"{ind}sh = cuda.shared.array(TPB, ACC)",
        f"{ind}tid = cuda.threadIdx.x",
        f"{ind}nout = {nout}",
        f"{ind}nred = {nred}",
    ]
    lines += [ind + s for s in hoisted]
    lines += [
        f"{ind}b = cuda.blockIdx.x",
        f"{ind}while b < nout * nparts:",
        f"{ind}    j = b // nparts",
    ]
    lines += [2 * ind + s for s in _decompose("j", kept)]
    lines += [
        f"{ind}    s = {init}",
        f"{ind}    r = (b % nparts) * TPB + tid",
        f"{ind}    while r < nred:",
    ]
    lines += [3 * ind + s for s in _decompose("r", reduced) + inner]
    lines += [
        f"{3 * ind}s = {comb}",
        f"{3 * ind}r += nparts * TPB",
        f"{2 * ind}sh[tid] = s",
        f"{2 * ind}cuda.syncthreads()",
        f"{2 * ind}w = TPB // 2",
        f"{2 * ind}while w > 0:",
        f"{3 * ind}if tid < w:",
        f"{4 * ind}sh[tid] = {tree}",
        f"{3 * ind}cuda.syncthreads()",
        f"{3 * ind}w //= 2",
        f"{2 * ind}if tid == 0:",
        f"{3 * ind}part[b] = sh[0]",
        f"{2 * ind}cuda.syncthreads()",
        f"{2 * ind}b += cuda.gridDim.x",
        "",
        "",
        "@cuda.jit(_SIG2, cache=True)",
        "def _finish(part, out, nout, nparts, nred):",
        f"{ind}j = cuda.grid(1)",
        f"{ind}while j < nout:",
        f"{ind}    s = part[j * nparts]",
        f"{ind}    for p in range(1, nparts):",
        f"{ind}        s = {L.cast(rule.combine.format(acc='s', v='part[j * nparts + p]'), acc_dt)}",
        f"{ind}    out[j] = {L.finish_code(rule, 's', 'nred', in_dt, red.dtype)}",
        f"{ind}    j += cuda.gridsize(1)",
        "",
        "",
    ]
    comb_dev = comb  # casts and comparisons only: the same in device code
    rows_sig = sig[:c.n_inputs + len(c.outputs)] + ["types.int64"] * G + [_arr("int64")]
    rows_args = ", ".join([f"a{i}" for i in range(c.n_inputs)] + [f"o{j}" for j in range(len(c.outputs))]
                          + exts + ["err"])
    lines += [
        f"_SIG3 = types.void({', '.join(rows_sig)})",
        "",
        "",
        "@cuda.jit(_SIG3, cache=True)",
        f"def _rows({rows_args}):",
        *[ind + s for s in _prelude(target)],
        f"{ind}nout = {nout}",
        f"{ind}nred = {nred}",
    ]
    lines += [ind + s for s in hoisted]
    lines += [f"{ind}j = cuda.grid(1)", f"{ind}while j < nout:"]
    lines += [2 * ind + s for s in _decompose("j", kept)]
    lines += [f"{2 * ind}s = {init}", f"{2 * ind}for r in range(nred):"]
    lines += [3 * ind + s for s in _decompose("r", reduced) + inner]
    lines += [f"{3 * ind}s = {comb_dev}",
              f"{2 * ind}o{j_red}[j] = {L.finish_code(rule, 's', 'nred', in_dt, red.dtype)}",
              f"{2 * ind}j += cuda.gridsize(1)", "", ""]
    n_in, n_out = c.n_inputs, len(c.outputs)
    kept_n = " * ".join(f"exts[{g}]" for g in kept) or "1"
    red_n = " * ".join(f"exts[{g}]" for g in reduced) or "1"
    lines += [
        f"def {ENTRY}(*args):",
        f"{ind}arrays = args[:{n_in + n_out}]",
        f"{ind}exts, err = args[{n_in + n_out}], args[{n_in + n_out + 1}]",
        f"{ind}nout = {kept_n}",
        f"{ind}nred = {red_n}",
        f"{ind}if nout == 0:",
        f"{ind}    return",
        f"{ind}if nout >= nred:",
        "        # many short reductions: one thread per output, no block-wide combining",
        f"{ind}    _rows[min((nout + TPB - 1) // TPB, MAXB), TPB](*arrays, *exts, err)",
        f"{ind}    return",
        f"{ind}out = arrays[{n_in + j_red}]",
        "    # parts per output: enough blocks to fill the device, never a part without work",
        f"{ind}nparts = max(1, min((nred + TPB - 1) // TPB, MAXB // nout))",
        f"{ind}part = cuda.device_array(nout * nparts, np.{'bool_' if acc_dt == 'bool' else acc_dt})",
        f"{ind}_partial[min(nout * nparts, MAXB), TPB](*arrays, part, *exts, nparts, err)",
        f"{ind}_finish[min((nout + TPB - 1) // TPB, MAXB), TPB](part, out, nout, nparts, nred)",
    ]
    return "\n".join(lines) + "\n"


def generate_matmul(dtype: str, ta: bool, tb: bool, target: Target, epilogue: Cluster | None = None,
                    layout: Layout | None = None, mm_input: int = -1, store_c: bool = True) -> str:
    """Python source of a tiled MatMul kernel module: ``launch(a, b, c, m, n, k)`` (C = op(A) @ op(B)).

    With an `epilogue` (an elementwise cluster whose input `mm_input` is C and whose iteration space is
    C's [m, n], under `layout`), each result element runs the epilogue before it is stored:
    ``launch(a, b, c, m, n, k, epi_in..., epi_out..., exts, err)`` where the epilogue's input
    `mm_input` is not passed (it is the accumulator) and c is written only when `store_c`.
    """
    T = target.tile
    ind = "    "
    a_idx = "kk * m + row" if ta else "row * k + kk"
    b_idx = "col * k + kk" if tb else "kk * n + col"
    sig = [_arr(dtype)] * 3 + ["types.int64"] * 3
    args = ["a", "b", "c", "m", "n", "k"]
    epi_lines: list[str] = []
    if epilogue is not None:
        assert layout is not None and 0 <= mm_input < epilogue.n_inputs
        G = layout.ngroups
        ins = [i for i in range(epilogue.n_inputs) if i != mm_input]
        sig += [_arr(epilogue.inputs[i].dtype) for i in ins]
        sig += [_arr(epilogue.nodes[o.node].dtype) for o in epilogue.outputs]
        sig += ["types.int64"] * G + [_arr("int64")]
        args += [f"a{i}" for i in ins] + [f"o{j}" for j in range(len(epilogue.outputs))]
        args += [f"e{g}" for g in range(G)] + ["err"]
        checks: list[str] = []
        hoisted, inner = _body(epilogue, layout, range(len(epilogue.nodes)), checks)
        # the accumulator is the epilogue's MatMul input: never loaded from memory
        mm_load = f"x{mm_input} = a{mm_input}["
        hoisted = [s for s in hoisted if not s.startswith(mm_load)]
        inner = [s for s in inner if not s.startswith(mm_load)]
        epi_lines = (hoisted + _decompose("row * n + col", list(range(G))) + [f"x{mm_input} = acc"] + inner)
    else:
        store_c = True
    zero = L.const(0, dtype)
    lines = [
        "import numpy as np",
        "from numba import cuda, types",
        "from jitflow.codegen import cudamath as M",
        "",
        f"_SIG = types.void({', '.join(sig)})",
        f"T = {T}",
        f"DT = {_nbtype(dtype)}",
        "",
        "",
        "@cuda.jit(_SIG, cache=True)",
        f"def _matmul({', '.join(args)}):",
        *[ind + s for s in _prelude(target)],
        f"{ind}sa = cuda.shared.array((T, T), DT)",
        f"{ind}sb = cuda.shared.array((T, T), DT)",
        f"{ind}tx = cuda.threadIdx.x",
        f"{ind}ty = cuda.threadIdx.y",
        f"{ind}row = cuda.blockIdx.y * T + ty",
        f"{ind}col = cuda.blockIdx.x * T + tx",
        f"{ind}acc = {zero}",
        f"{ind}for t0 in range(0, k, T):",
        f"{ind}    kk = t0 + tx",
        f"{ind}    sa[ty, tx] = a[{a_idx}] if (row < m and kk < k) else {zero}",
        f"{ind}    kk = t0 + ty",
        f"{ind}    sb[ty, tx] = b[{b_idx}] if (kk < k and col < n) else {zero}",
        f"{ind}    cuda.syncthreads()",
        f"{ind}    for q in range(T):",
        f"{ind}        acc = {L.cast('acc + sa[ty, q] * sb[q, tx]', dtype)}",
        f"{ind}    cuda.syncthreads()",
        f"{ind}if row < m and col < n:",
    ]
    if store_c:
        lines.append(f"{ind}    c[row * n + col] = acc")
    lines += [2 * ind + s for s in epi_lines]
    if not store_c and not epi_lines:
        lines.append(f"{2 * ind}pass")
    lines += [
        "",
        "",
        f"def {ENTRY}(a, b, c, m, n, k, *rest):",
        f"{ind}if m == 0 or n == 0:",
        f"{ind}    return",
    ]
    if epilogue is not None:
        lines += [f"{ind}exts, err = rest[-2], rest[-1]",
                  f"{ind}_matmul[((n + T - 1) // T, (m + T - 1) // T), (T, T)](a, b, c, m, n, k, *rest[:-2], "
                  "*exts, err)"]
    else:
        lines.append(f"{ind}_matmul[((n + T - 1) // T, (m + T - 1) // T), (T, T)](a, b, c, m, n, k)")
    return "\n".join(lines) + "\n"


def generate_sparse_xent(dt: str, label_dt: str, target: Target) -> str:
    """Source of ``launch(logits, labels, loss, backprop, n, k, err)``: one thread per row, the formulas of
    the CPU row kernel (`codegen/rows.py`); a label outside ``[0, k)`` sets ``err``."""
    sfx = "f32" if dt == "float32" else "f64"
    one = L.const(1, dt)
    ind = "    "
    lines = [
        "import numpy as np",
        "from numba import cuda, types",
        "from jitflow.codegen import cudamath as M",
        "",
        f"_SIG = types.void({_arr(dt)}, {_arr(label_dt)}, {_arr(dt)}, {_arr(dt)}, types.int64, types.int64, "
        f"{_arr('int64')})",
        f"TPB = {target.tpb}",
        f"MAXB = {target.max_blocks}",
        "",
        "",
        "@cuda.jit(_SIG, cache=True)",
        "def _xent(f, lab, loss, bp, n, k, err):",
        *[ind + s for s in _prelude(target)],
        f"{ind}i = cuda.grid(1)",
        f"{ind}while i < n:",
        f"{ind}    lb = lab[i]",
        f"{ind}    if lb < 0 or lb >= k:",
        f"{ind}        err[0] = 1",
        f"{ind}    else:",
        f"{ind}        base = i * k",
        f"{ind}        m = f[base]",
        f"{ind}        for j in range(1, k):",
        f"{ind}            v = f[base + j]",
        f"{ind}            m = v if (v > m or v != v) else m",
        f"{ind}        s = np.float64(0.0)",
        f"{ind}        for j in range(k):",
        f"{ind}            e = M.exp_{sfx}({L.cast('f[base + j] - m', dt)})",
        f"{ind}            bp[base + j] = e",
        f"{ind}            s += np.float64(e)",
        f"{ind}        s1 = {L.cast('s', dt)}",
        f"{ind}        loss[i] = {L.cast(f'M.log_{sfx}(s1) - ' + L.cast('f[base + lb] - m', dt), dt)}",
        f"{ind}        for j in range(k):",
        f"{ind}            bp[base + j] = {L.cast('bp[base + j] / s1', dt)}",
        f"{ind}        bp[base + lb] = {L.cast(f'bp[base + lb] - {one}', dt)}",
        f"{ind}    i += cuda.gridsize(1)",
        "",
        "",
        f"def {ENTRY}(f, lab, loss, bp, n, k, err):",
        f"{ind}if n == 0:",
        f"{ind}    return",
        f"{ind}_xent[min((n + TPB - 1) // TPB, MAXB), TPB](f, lab, loss, bp, n, k, err)",
    ]
    return "\n".join(lines) + "\n"
