"""GEMM against a pre-packed right operand, for compiled loops: ``C[m, n] = A[m, k] @ B[k, n]``.

A recurrent cell multiplies a few rows (the batch) by the same weight matrix at every time step. OpenBLAS
packs that matrix again on every call: for W8's 20 x 400 x 800 gate GEMM, reading and rewriting 1.3 MB
is about half of its 100 us. Here the weight is packed once per run (`packed_helpers.pack`), into column
blocks of `block_columns` (zero-padded at the right edge), each ``[k, block]`` contiguous, and a
register-blocked microkernel runs over it: up to `ROWS` rows of A times one block, the block's
accumulators held in vector registers for the whole k loop (LLVM IR written here: `_microkernel`).

Threads. A GEMM inside a compiled loop takes ~60 us on two threads, and the loop runs one every ~30 us of
other work: waking a sleeping thread per GEMM (Numba's OpenMP threads wait passively, `kernels/omp.py`)
costs more than the second thread gains. So the column blocks are shared with `packed_helpers.Helpers`:
threads that spin, in nopython code, while a compiled loop runs (armed), and sleep otherwise. The
caller posts a job in a control array and takes blocks itself from the same atomic counter as the
helpers; it never waits for a helper that has not started a block, so a helper that is slow to wake (or
absent) only means the caller does more blocks itself. One caller posts at a time; another one meanwhile
(two sessions' loops in two threads) computes its GEMM alone.

The helpers take one other kind of job: `gemv`, a vector-matrix product in row blocks whose partial sums
the caller adds up (`kernels/stream_gemv.py`), for plan steps while a plan runs (`packed_helpers.serving`).

Every output is one dot product accumulated in order of k with fused multiply-adds, in the operands'
precision: the same bits whichever thread computes it. Measured on the 2-core AVX-512 host
(bench/README.md): 20 x 400 x 800 float32, 111 us on one thread and 60 us with a helper, against
OpenBLAS's 160 and 100.
"""
from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from jitflow.kernels.llvm_kit import njit_named, pointer_to, vector_kit
from jitflow.kernels.stream_gemv import block32 as _gemv32
from jitflow.kernels.stream_gemv import block64 as _gemv64

# Rows of A per microkernel call: ROWS x 2 vector accumulators, two B vectors and a broadcast fit in the
# 16 vector registers of AVX2 and leave room in AVX-512's 32.
ROWS = 5
# Multiply-adds from which a GEMM's column blocks are shared with the helpers.
PARALLEL_MACS = 1 << 21
# Row blocks of a `gemv` (at most; none under GEMV_MIN_ROWS rows): enough for a helper that starts late to
# still take a share, few enough that adding the partial sums up stays small.
GEMV_BLOCKS = 4
GEMV_MIN_ROWS = 64


def _vector_bits() -> int:
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:
        return 256
    return 512 if features.get("avx512f", False) else 256


# The vector width the microkernels run at on this host. Both widths are compiled; the width travels in the
# control array (`WIDE`), never as a global frozen into cached code, so a test can run the other one.
VECTOR_BITS = _vector_bits()


def block_columns(dtype: Any, bits: int = 0) -> int:
    """Columns of one packed block: two vector registers' worth of `dtype` (at `bits`, default the host's)."""
    return 2 * (bits or VECTOR_BITS) // (8 * np.dtype(dtype).itemsize)


def packed_size(k: int, n: int, dtype: Any, bits: int = 0) -> int:
    """Elements of `packed_helpers.pack`'s output for a ``[k, n]`` operand."""
    nb = block_columns(dtype, bits)
    return max(1, -(-n // nb)) * max(k, 1) * nb


# -- LLVM IR: the microkernel, atomics, pause ------------------------------------------------------------


def _microkernel(rows: int, double: bool, bits: int) -> Any:
    """``C[r, 0:block] = sum over kk of A[r, kk] * Bp[kk, 0:block]`` for `rows` rows, on addresses:
    ``mk(a, lda, bp, c, ldc, k)`` (strides in elements, k >= 1)."""

    @intrinsic
    def mk(typingctx, a, lda, bp, c, ldc, k):  # type: ignore[no-untyped-def]
        sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            a_i, lda_v, b_i, c_i, ldc_v, k_v = args
            elt, vt, width, align, fma = vector_kit(builder, double, bits)
            i64 = ir.IntType(64)
            a_p, b_p, c_p = (builder.inttoptr(v, elt.as_pointer()) for v in (a_i, b_i, c_i))
            zero = ir.Constant(vt, [0.0] * width)
            lanes0 = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)
            pre = builder.block
            loop = builder.append_basic_block("mk_loop")
            done = builder.append_basic_block("mk_done")
            builder.branch(loop)
            builder.position_at_end(loop)
            kk = builder.phi(i64)
            kk.add_incoming(ir.Constant(i64, 0), pre)
            acc = [[builder.phi(vt) for _ in range(2)] for _ in range(rows)]
            for row in acc:
                for p in row:
                    p.add_incoming(zero, pre)
            base = builder.mul(kk, ir.Constant(i64, 2 * width))
            bv = [builder.load(builder.bitcast(builder.gep(b_p, [builder.add(base, ir.Constant(i64, v * width))]),
                                               vt.as_pointer()), align=align) for v in range(2)]
            new = []
            for r in range(rows):
                av = builder.load(builder.gep(a_p, [builder.add(builder.mul(ir.Constant(i64, r), lda_v), kk)]))
                splat = builder.shuffle_vector(builder.insert_element(ir.Constant(vt, ir.Undefined), av,
                                                                      ir.Constant(ir.IntType(32), 0)),
                                               ir.Constant(vt, ir.Undefined), lanes0)
                new.append([builder.call(fma, [splat, bv[v], acc[r][v]]) for v in range(2)])
            nxt = builder.add(kk, ir.Constant(i64, 1))
            kk.add_incoming(nxt, builder.block)
            for r in range(rows):
                for v in range(2):
                    acc[r][v].add_incoming(new[r][v], builder.block)
            builder.cbranch(builder.icmp_signed("<", nxt, k_v), loop, done)
            builder.position_at_end(done)
            for r in range(rows):
                for v in range(2):
                    off = builder.add(builder.mul(ir.Constant(i64, r), ldc_v), ir.Constant(i64, v * width))
                    builder.store(new[r][v], builder.bitcast(builder.gep(c_p, [off]), vt.as_pointer()), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return mk


def _by_rows(kernels: list[Any], name: str) -> Any:
    """``rows(a, lda, b, c, ldc, k, r)``: the microkernel of `kernels` for r (1..ROWS) rows."""
    mk1, mk2, mk3, mk4, mk5 = kernels

    def rows(a, lda, b, c, ldc, k, r):  # type: ignore[no-untyped-def]
        if r >= 5:
            mk5(a, lda, b, c, ldc, k)
        elif r == 4:
            mk4(a, lda, b, c, ldc, k)
        elif r == 3:
            mk3(a, lda, b, c, ldc, k)
        elif r == 2:
            mk2(a, lda, b, c, ldc, k)
        else:
            mk1(a, lda, b, c, ldc, k)

    return njit_named(rows, name)


_rows32w, _rows64w, _rows32, _rows64 = (_by_rows([_microkernel(r, double, bits) for r in range(1, ROWS + 1)],
                                                  f"packed_rows{64 if double else 32}_{bits}")
                                         for bits in (512, 256) for double in (False, True))


def _slot_pointer(context: Any, builder: ir.IRBuilder, sig: Any, args: list) -> ir.Value:
    from numba.core import cgutils

    arr = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
    return builder.gep(arr.data, [args[1]])


def _rmw(op: str) -> Any:
    @intrinsic
    def rmw(typingctx, arr, i, v):  # type: ignore[no-untyped-def]
        """``arr[i] (op)= v`` atomically (sequentially consistent); returns the old value. `arr`: int64."""
        sig = types.int64(arr, types.intp, types.int64)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.atomic_rmw(op, _slot_pointer(context, builder, signature, args), args[2], "seq_cst")

        return sig, codegen

    return rmw


atomic_add, atomic_swap = _rmw("add"), _rmw("xchg")


@intrinsic
def atomic_load(typingctx, arr, i):  # type: ignore[no-untyped-def]
    """``arr[i]``, read atomically (sequentially consistent; never hoisted out of a spin loop)."""
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.load_atomic(_slot_pointer(context, builder, signature, args), "seq_cst", 8)

    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, i, v):  # type: ignore[no-untyped-def]
    """``arr[i] = v``, written atomically (sequentially consistent)."""
    sig = types.void(arr, types.intp, types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        builder.store_atomic(args[2], _slot_pointer(context, builder, signature, args), "seq_cst", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def call_block(typingctx, fn, args, jb):  # type: ignore[no-untyped-def]
    """``fn(args, jb)`` for the address of a C function ``void fn(int64 args, int64 jb)`` (`run_blocks`)."""
    sig = types.void(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, llargs):  # type: ignore[no-untyped-def]
        i64 = ir.IntType(64)
        target = builder.inttoptr(llargs[0], ir.FunctionType(ir.VoidType(), [i64, i64]).as_pointer())
        builder.call(target, [llargs[1], llargs[2]])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def pause(typingctx):  # type: ignore[no-untyped-def]
    """The x86 spin-wait hint (nothing elsewhere)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        if llvm.get_default_triple().startswith(("x86_64", "i686", "i386")):
            name = "llvm.x86.sse2.pause"
            fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                                 name=name)
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


# -- blocks, jobs, helpers ---------------------------------------------------------------------------------

# Control array slots: the shared counters each on a cache line of its own (8 int64 apart), then the job.
# HELPED: blocks the helpers computed; POSTER: 1 while a caller has a job posted (one at a time); WIDE: 1 for
# 512-bit vectors (set by `control`, read-only after).
SEQ, NEXT, BUSY, ARMED, _BLOCKS, HELPED, POSTER, WIDE = 0, 8, 16, 24, 32, 40, 48, 56
_A, _B, _C, _M, _N, _K, _LDA, _DOUBLE, _KIND, _LDB, _KB = range(64, 75)
LINGER = 75  # spins a helper goes on waiting for a job once disarmed (`packed_helpers.Helpers.disarm`)
CTRL_SIZE = 76
# Job kinds (_KIND): column blocks of a packed GEMM (`gemm`), row blocks of a vector-matrix product (`gemv`),
# blocks of a compiled function called through its address (`run_blocks`).
_GEMM, _GEMV, _CALL = 0, 1, 2
_CLOSED = 1 << 62  # NEXT while a job is being written


def control(bits: int = 0) -> np.ndarray:
    """A new control array for vectors of `bits` (default: the host's)."""
    ctrl = np.zeros(CTRL_SIZE, np.int64)
    ctrl[WIDE] = 1 if (bits or VECTOR_BITS) == 512 else 0
    return ctrl


@numba.njit(nogil=True, error_model="numpy")
def _block(double, wide, a, b, c, m, n, k, lda, jb, tail):  # type: ignore[no-untyped-def]
    """Column block `jb` of C (all rows), on addresses, with 512-bit vectors when `wide` (else 256); a partial
    block at the right edge goes through `tail` (``ROWS * block`` elements of scratch, an address)."""
    size = 8 if double else 4
    nb = 2 * (512 if wide else 256) // (8 * size)
    j0 = jb * nb
    w = min(nb, n - j0)
    bb = b + jb * k * nb * size
    for i0 in range(0, m, ROWS):
        r = min(ROWS, m - i0)
        out, ldc = (c + (i0 * n + j0) * size, n) if w == nb else (tail, nb)
        ai = a + i0 * lda * size
        if double:
            if wide:
                _rows64w(ai, lda, bb, out, ldc, k, r)
            else:
                _rows64(ai, lda, bb, out, ldc, k, r)
        elif wide:
            _rows32w(ai, lda, bb, out, ldc, k, r)
        else:
            _rows32(ai, lda, bb, out, ldc, k, r)
        if w < nb:
            for i in range(r):
                if double:
                    _copy64(tail + i * nb * size, c + ((i0 + i) * n + j0) * size, w)
                else:
                    _copy32(tail + i * nb * size, c + ((i0 + i) * n + j0) * size, w)


def _copier(as_pointer: Any, name: str) -> Any:
    def copy(src, dst, w):  # type: ignore[no-untyped-def]
        """`w` elements from address `src` to address `dst`."""
        s, d = numba.carray(as_pointer(src), (w,)), numba.carray(as_pointer(dst), (w,))
        for j in range(w):
            d[j] = s[j]

    return njit_named(copy, name)


_copy32, _copy64 = _copier(pointer_to(types.float32), "copy32"), _copier(pointer_to(types.float64), "copy64")


@numba.njit(nogil=True, error_model="numpy")
def _gemv_block(double, wide, x, b, ldb, parts, n, k, kb, jb):  # type: ignore[no-untyped-def]
    """Row block `jb` (rows jb * kb onwards) of ``x @ B`` on addresses: its partial sum, row `jb` of `parts`."""
    size = 8 if double else 4
    k0 = jb * kb
    if double:
        _gemv64(x + k0 * size, b + k0 * ldb * size, ldb, parts + jb * n * size, n, min(kb, k - k0), wide)
    else:
        _gemv32(x + k0 * size, b + k0 * ldb * size, ldb, parts + jb * n * size, n, min(kb, k - k0), wide)


@numba.njit(nogil=True, error_model="numpy")
def take_blocks(ctrl, tail32, tail64):  # type: ignore[no-untyped-def]
    """Claims and computes blocks of the posted job until none is left; returns how many it computed."""
    done = 0
    while True:
        jb = atomic_add(ctrl, NEXT, 1)
        if jb >= ctrl[_BLOCKS]:  # no block left (or the job is being written: NEXT is _CLOSED)
            return done
        done += 1
        double = ctrl[_DOUBLE] != 0
        if ctrl[_KIND] == _CALL:
            call_block(ctrl[_A], ctrl[_B], jb)
        elif ctrl[_KIND] == _GEMV:
            _gemv_block(double, ctrl[WIDE] != 0, ctrl[_A], ctrl[_B], ctrl[_LDB], ctrl[_C], ctrl[_N], ctrl[_K],
                        ctrl[_KB], jb)
        else:
            _block(double, ctrl[WIDE] != 0, ctrl[_A], ctrl[_B], ctrl[_C], ctrl[_M], ctrl[_N], ctrl[_K], ctrl[_LDA],
                   jb, tail64.ctypes.data if double else tail32.ctypes.data)


@numba.njit(nogil=True, error_model="numpy")
def _post(ctrl, blocks, macs):  # type: ignore[no-untyped-def]
    """True when the caller may share a job of `blocks` blocks: the helpers are armed, the job is big enough
    and no other thread has one posted. The job is then closed (`_open` opens it once its fields are
    written); else the caller computes every block alone."""
    if blocks < 2 or macs < PARALLEL_MACS or atomic_load(ctrl, ARMED) == 0 or atomic_swap(ctrl, POSTER, 1):
        return False
    while atomic_load(ctrl, BUSY) != 0:  # a helper still in the previous job (it reads the job's fields)
        pause()
    atomic_store(ctrl, NEXT, _CLOSED)  # a late helper's claim, while the job is written, finds no block
    return True


@numba.njit(nogil=True, error_model="numpy")
def _open(ctrl, kind, blocks, a, b, c, m, n, k, lda, ldb, kb, double):  # type: ignore[no-untyped-def]
    """Writes the posted job's fields and opens it to claims (the caller then takes blocks like a helper)."""
    ctrl[_KIND] = kind
    ctrl[_BLOCKS] = blocks
    ctrl[_A] = a
    ctrl[_B] = b
    ctrl[_C] = c
    ctrl[_M] = m
    ctrl[_N] = n
    ctrl[_K] = k
    ctrl[_LDA] = lda
    ctrl[_LDB] = ldb
    ctrl[_KB] = kb
    ctrl[_DOUBLE] = 1 if double else 0
    atomic_store(ctrl, NEXT, 0)  # every claim from here on sees the job's fields (sequentially consistent)
    atomic_add(ctrl, SEQ, 1)


@numba.njit(nogil=True, error_model="numpy")
def _settle(ctrl):  # type: ignore[no-untyped-def]
    """Waits for the blocks the helpers took (before the output is read) and lets the next poster in."""
    while atomic_load(ctrl, BUSY) != 0:
        pause()
    atomic_store(ctrl, POSTER, 0)


@numba.njit(nogil=True, error_model="numpy")
def gemm(a, bp, c, m, n, k, lda, ctrl):  # type: ignore[no-untyped-def]
    """``c[:m * n] = A @ B`` with A the ``[m, k]`` rows of flat `a` (row stride `lda`) and B packed in `bp`
    (`packed_helpers.pack`, at the vector width of `ctrl`). Shares its column blocks with the helpers while
    they are armed (`ctrl`: `packed_helpers.Helpers.ctrl`, or any `control()` to run alone)."""
    if m == 0 or n == 0:
        return
    if k == 0:
        c[:m * n] = 0
        return
    double = c.itemsize == 8
    wide = ctrl[WIDE] != 0
    nb = 2 * (512 if wide else 256) // (8 * c.itemsize)
    blocks = -(-n // nb)
    tail = np.empty(ROWS * nb, c.dtype)
    if not _post(ctrl, blocks, m * n * k):
        for jb in range(blocks):
            _block(double, wide, a.ctypes.data, bp.ctypes.data, c.ctypes.data, m, n, k, lda, jb, tail.ctypes.data)
        return
    _open(ctrl, _GEMM, blocks, a.ctypes.data, bp.ctypes.data, c.ctypes.data, m, n, k, lda, 0, 0, double)
    take_blocks(ctrl, tail, tail)
    _settle(ctrl)


def gemv_blocks(k: int) -> int:
    """Row blocks (partial sums) of `gemv` for k rows: the size of its `parts` buffer is this times n."""
    return -(-k // _gemv_rows(k))


@numba.njit(nogil=True, error_model="numpy")
def _gemv_rows(k):  # type: ignore[no-untyped-def]
    """Rows of B per block: a shape's blocks are the same whoever computes them (so are the bits)."""
    return max(GEMV_MIN_ROWS, -(-k // (GEMV_BLOCKS * 4)) * 4)


@numba.njit(nogil=True, error_model="numpy")
def gemv(x, b, ldb, c, parts, n, k, ctrl):  # type: ignore[no-untyped-def]
    """``c[:n] = x[:k] @ B`` with B the ``[k, n]`` rows of flat `b` (row stride `ldb`), in row blocks shared
    with the helpers while they are armed; `parts`: ``gemv_blocks(k) * n`` elements of scratch."""
    if n == 0:
        return
    if k == 0:
        c[:n] = 0
        return
    double = c.itemsize == 8
    kb = _gemv_rows(k)
    blocks = -(-k // kb)
    wide = ctrl[WIDE] != 0
    xa, ba, pa = x.ctypes.data, b.ctypes.data, parts.ctypes.data
    if _post(ctrl, blocks, n * k):
        _open(ctrl, _GEMV, blocks, xa, ba, pa, 1, n, k, 0, ldb, kb, double)
        take_blocks(ctrl, parts, parts)  # (no tails: gemv blocks never use them)
        _settle(ctrl)
    else:
        for jb in range(blocks):
            _gemv_block(double, wide, xa, ba, ldb, pa, n, k, kb, jb)
    for j in range(n):  # the partial sums in block order
        s = parts[j]
        for jb in range(1, blocks):
            s += parts[jb * n + j]
        c[j] = s


@numba.njit(nogil=True, error_model="numpy")
def run_blocks(fn, args, blocks, ctrl):  # type: ignore[no-untyped-def]
    """``fn(args, jb)`` for every jb < blocks, shared with the helpers while they are armed: `fn` is the
    address of a C function ``void(int64 args, int64 jb)`` (`packed_helpers.block_function`), `args` the
    address of what it reads. The blocks must not depend on each other; all are done on return."""
    if blocks < 2 or not _post(ctrl, blocks, PARALLEL_MACS):
        for jb in range(blocks):
            call_block(fn, args, jb)
        return
    _open(ctrl, _CALL, blocks, fn, args, 0, 0, 0, 0, 0, 0, 0, False)
    tail = np.empty(0, np.float32)
    take_blocks(ctrl, tail, tail)  # (no tails: a call job never uses them)
    _settle(ctrl)
