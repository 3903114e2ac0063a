"""Helpers of the hand-written LLVM IR kernels (`stream_gemv`, `packed_gemm`, `pixel_conv`, `lincomb`).

Creates no Numba dispatcher at import: a module that does starts Numba's CPU target (~0.5 s), which plans
that never compile a kernel must not pay (the scalar programs of `tests/compiler/test_ops.py`).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


def vector_kit(builder: ir.IRBuilder, double: bool, bits: int) -> tuple[Any, Any, int, int, Any]:
    """(element type, vector type, lanes, alignment, the vector FMA intrinsic) for `bits`-bit vectors."""
    elt = ir.DoubleType() if double else ir.FloatType()
    width = bits // (64 if double else 32)
    vt = ir.VectorType(elt, width)
    fname = f"llvm.fma.v{width}{'f64' if double else 'f32'}"
    fma = builder.module.globals.get(fname) or ir.Function(builder.module, ir.FunctionType(vt, [vt] * 3), name=fname)
    return elt, vt, width, 8 if double else 4, fma


def njit_named(fn: Any, name: str) -> Any:
    """`fn` (made by a factory) compiled by Numba under its own `name`. Numba names compiled functions by
    module, qualified name, a per-process counter and argument types: the factory's instances would all be
    ``<factory>.<locals>.<fn>``, and two instances with equal argument types could get the same symbol
    in two processes' cached code (a cached caller embeds its callees). Loaded together, a call could then
    reach the wrong instance (measured: a 512-bit kernel running where a 256-bit one was called)."""
    fn.__name__ = fn.__qualname__ = name
    return numba.njit(nogil=True, error_model="numpy")(fn)


def pointer_to(dtype: Any) -> Any:
    """An intrinsic ``as_pointer(addr)``: the int64 address as a pointer to `dtype` (for `numba.carray`)."""

    @intrinsic
    def as_pointer(typingctx, addr):  # type: ignore[no-untyped-def]
        ty = types.CPointer(dtype)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.inttoptr(args[0], context.get_value_type(ty))

        return ty(types.int64), codegen

    return as_pointer


def splat(builder: ir.IRBuilder, vt: Any, scalar: Any) -> Any:
    """A vector of type `vt` with `scalar` in every lane (one broadcast instruction)."""
    i32 = ir.IntType(32)
    lanes0 = ir.Constant(ir.VectorType(i32, vt.count), [0] * vt.count)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), scalar, ir.Constant(i32, 0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined), lanes0)


def tap_loop(builder: ir.IRBuilder, k: Any, starts: list[list[Any]],
             step: Callable[[Any, list[list[Any]]], list[list[Any]]]) -> list[list[Any]]:
    """A loop over t < k (an i64) carrying a grid of accumulators in registers: `starts` before it, then
    ``step(t, grid)`` gives the next grid; returns the grid after the loop (`starts` when k <= 0). The
    microkernels of `pixel_conv` and `lincomb` are such loops over a window's or a row's taps."""
    i64 = ir.IntType(64)
    pre = builder.block
    loop = builder.append_basic_block("taps")
    done = builder.append_basic_block("taps_done")
    builder.cbranch(builder.icmp_signed(">", k, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    t = builder.phi(i64)
    t.add_incoming(ir.Constant(i64, 0), pre)
    grid = [[builder.phi(a.type) for a in row] for row in starts]
    for row, start in zip(grid, starts):
        for a, s in zip(row, start):
            a.add_incoming(s, pre)
    new = step(t, grid)
    nxt = builder.add(t, ir.Constant(i64, 1))
    t.add_incoming(nxt, builder.block)
    for row, new_row in zip(grid, new):
        for a, n in zip(row, new_row):
            a.add_incoming(n, builder.block)
    tail = builder.block
    builder.cbranch(builder.icmp_signed("<", nxt, k), loop, done)
    builder.position_at_end(done)
    final = []
    for new_row, start in zip(new, starts):  # (phi nodes first in the block)
        row = []
        for n, s in zip(new_row, start):
            res = builder.phi(n.type)
            res.add_incoming(s, pre)
            res.add_incoming(n, tail)
            row.append(res)
        final.append(row)
    return final


def by_width(make: Callable[[int, int], Any], name: str) -> Any:
    """``run(is_wide, vectors, *args)``: calls the microkernel ``make(bits, vectors)`` for 1-4 channel `vectors`
    at 512 bits when `is_wide`, else at 256, compiled under `name` (`njit_named`). The branches compile into
    the caller: a direct call per block."""
    w1, w2, w3, w4 = (make(512, v) for v in range(1, 5))
    n1, n2, n3, n4 = (make(256, v) for v in range(1, 5))

    def run(is_wide, vectors, *args):  # type: ignore[no-untyped-def]
        if is_wide:
            if vectors == 1:
                w1(*args)
            elif vectors == 2:
                w2(*args)
            elif vectors == 3:
                w3(*args)
            else:
                w4(*args)
        elif vectors == 1:
            n1(*args)
        elif vectors == 2:
            n2(*args)
        elif vectors == 3:
            n3(*args)
        else:
            n4(*args)

    return njit_named(run, name)


def for_dtype(make: Callable[[bool, int, int], Any], name: str) -> tuple[Callable[[bool], Any], Any]:
    """(``variants(double)``, ``call(like, is_wide, vectors, *args)``): the `by_width` dispatcher of the
    microkernels ``make(double, bits, vectors)``, made once per dtype (named `name` + 32 or 64), and a function
    for compiled code that calls the one for the dtype of array `like`. The dtype is picked as Numba compiles
    the caller, so a caller compiles one dtype's kernels (both took a cold compile of 6.5 s), and no dispatcher
    is made at import."""

    @functools.cache
    def variants(double: bool) -> Any:
        return by_width(functools.partial(make, double), f"{name}{64 if double else 32}")

    def call(like, is_wide, vectors, *args):  # type: ignore[no-untyped-def]
        raise NotImplementedError("called only from Numba-compiled code")

    @overload(call, jit_options={"nogil": True})
    def _call_dtype(like, is_wide, vectors, *args):  # type: ignore[no-untyped-def]
        run = variants(like.dtype == types.float64)

        def impl(like, is_wide, vectors, *args):  # type: ignore[no-untyped-def]
            run(is_wide, vectors, *args)

        impl.__name__ = impl.__qualname__ = f"{name}_for_dtype"  # (a symbol of its own: see `njit_named`)
        return impl

    return variants, call
