"""Vectorizable transcendental math for Numba CPU kernels.

``math.exp`` and friends lower to scalar libm calls inside a Numba loop, and a call the
loop vectorizer cannot widen keeps the whole loop scalar. The functions here are written
so that LLVM can widen a loop that calls them: no calls, no branches, no tables; each is
range reduction + a minimax polynomial, with the bit manipulation (building ``2**n``,
splitting mantissa and exponent) emitted as integer IR through ``numba.extending.intrinsic``
and the special cases (inf, nan, zero, overflow, underflow) merged in with ``select``.

Functions (each for float32 and float64, named ``<name>_f32`` / ``<name>_f64``): exp,
expm1, log, log1p, tanh, sigmoid, softplus, sin, cos, tan, sinh, cosh, atan, asin, acos
(one argument) and pow(x, y), atan2(y, x) (two). Generated CPU kernels import this
module as ``V`` and call them by name (``V.exp_f32(x)``; `codegen/cpu.py`'s dialect picks
which formula functions go here); ``VMATH[(name, dtype)]`` and :func:`lookup` serve the
tests and ``bench/vmath_probe.py``.

Design choices worth knowing:

* Plain ``numba.njit`` functions, not ``inline="always"``: Numba-IR inlining would re-type
  each body in every kernel and compile it under the kernel's flags. Instead each
  function marks itself ``alwaysinline`` for LLVM, which folds it into the calling loop
  (large ones such as pow would otherwise stay calls and keep the loop scalar).
* ``fastmath=False`` is set explicitly: Numba otherwise lets a callee inherit the caller's
  fastmath, whose ``nnan``/``ninf`` delete the special-value selects (tanh(nan) became 1)
  and whose ``arcp``/``reassoc`` trade away the accuracy of divisions and of the split-
  constant range reductions. Fused multiply-adds come from explicit ``llvm.fmuladd``
  (fused where the CPU has FMA); sin/cos need ``llvm.fma`` (always exact).
* ``error_model="numpy"`` and a plain ``fdiv`` intrinsic: no ZeroDivisionError branch.
* Special cases use a ``select`` intrinsic. A Python ``a if c else b`` usually ends up as
  a select too after LLVM's if-conversion, but the function alone keeps branches.
* Polynomial coefficients are minimax (Remez, relative error) fits made with mpmath;
  ``bench/vmath_probe.py --fit`` re-derives them.
* Nothing is compiled or even created at import: the Numba functions are made on first
  use. On AVX-512 hosts LLVM keeps to 256-bit vectors unless told otherwise; these
  compute-bound loops run ~1.4-1.6x faster at 512 bits, so each generated kernel calls
  :func:`wide_vectors`, which asks for 512-bit vectors in that kernel's own LLVM functions
  (a function attribute), leaving Numba's process-wide settings, and every function that
  is not jitflow's, as they were.

Accuracy (``tests/codegen/test_vmath.py``, against float64 / extended-precision NumPy):
max relative error about 2 eps at worst: float32 <= 2.1e-7 (asin, acos, sigmoid, tanh:
1.4-1.8 eps; exp, log, sin, cos: < 0.7 eps), float64 <= 4.7e-16 (tan, acos: ~2 eps);
subnormal results within one subnormal step. ``bench/vmath_probe.py --accuracy`` prints
the table. pow is computed through a double-double
log in float64 (~1.2 ulp) and in float64 for float32 arguments. sin/cos/tan reduce the
argument by a three-part pi/2 with exact fma: within the error budget above for
``|x| < 2**30``; up to ``2**50`` the reduced argument keeps its quadrant but, near a multiple
of pi/2, loses relative accuracy (tan at 6.2e14 was measured 1.6 eps over budget); beyond
``2**50`` (where ``x * 2/pi`` cannot be rounded to the right quadrant) they return nan
rather than a wrong number.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["VMATH", "NAMES", "lookup", "wide_vectors"]  # noqa: F822 - VMATH is lazy

# ---------------------------------------------------------------------------------------
# Intrinsics: the few operations Python syntax cannot express without branches or calls.
# ---------------------------------------------------------------------------------------


def _same_floats(*tys: Any) -> bool:
    return isinstance(tys[0], types.Float) and all(t == tys[0] for t in tys)


def _llvm_call(builder: ir.IRBuilder, name: str, args: list[ir.Value]) -> ir.Value:
    ty = args[0].type
    fnty = ir.FunctionType(ty, [a.type for a in args])
    fn = builder.module.declare_intrinsic(name, [ty], fnty)
    return builder.call(fn, args)


def _unary_llvm(name: str) -> Any:
    """An intrinsic ``f(x) -> x`` calling the LLVM intrinsic ``name`` (vectorizable)."""

    def typer(typingctx: Any, x: Any) -> Any:
        if not isinstance(x, types.Float):
            return None

        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
            return _llvm_call(builder, name, list(args))

        return x(x), codegen

    typer.__name__ = "_" + name.split(".")[-1]
    return intrinsic(typer)


_rint = _unary_llvm("llvm.rint")  # round half even (the default rounding mode)
_floor = _unary_llvm("llvm.floor")
_fabs = _unary_llvm("llvm.fabs")
_sqrt = _unary_llvm("llvm.sqrt")  # correctly rounded; nan for negative input


@intrinsic
def _inline_into_caller(typingctx: Any) -> Any:
    """Mark the function being compiled ``alwaysinline`` (emits no code).

    LLVM's inliner skips larger callees such as pow; a call left in the loop blocks
    vectorization, so every function here asks to be inlined into its caller.
    """

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> Any:
        attrs = builder.function.attributes
        if "noinline" not in attrs:  # Numba marks every function noinline under NUMBA_DEBUGINFO / profiling
            attrs.add("alwaysinline")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def wide_vectors(typingctx: Any) -> Any:
    """Let LLVM vectorize the function being compiled with 512-bit registers (emits no code).

    Sets the LLVM function attribute ``"prefer-vector-width"="512"`` on that function alone: on
    AVX-512 hosts LLVM's tuning for current Xeons otherwise keeps to 256-bit vectors, and jitflow's
    compute-bound kernel loops run ~1.4-1.6x faster at 512 bits. Hosts without AVX-512 ignore it, and
    no other function (a user's own Numba code included) is affected. Call it first in every function
    that holds a hot loop, including the body of each ``prange`` loop (Numba outlines that body into a
    function of its own).
    """

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> Any:
        # llvmlite's attribute set only takes enum attributes by name; a string attribute is added as
        # the text LLVM parses ("key"="value")
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def nan_free_reduction(typingctx: Any) -> Any:
    """Let LLVM vectorize a max/min reduction in the function being compiled (emits no code).

    LLVM's vectorizer takes a ``select(fcmp)`` max as a reduction only when the function's attributes say
    no NaNs and no signed zeros (the ``nnan``/``nsz`` flags Numba's fastmath puts on the compare are not
    enough): without them a row max ran as a scalar chain, 6.2 us for 10,000 floats against 1.1. The
    function is also kept out of line, since inlining would merge its attributes with its caller's and
    drop them. Call it only in a small function whose result may be any value when its input holds a NaN.
    """

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> Any:
        attrs = builder.function.attributes
        set.add(attrs, '"no-nans-fp-math"="true"')
        set.add(attrs, '"no-signed-zeros-fp-math"="true"')
        if "alwaysinline" not in attrs:
            attrs.add("noinline")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a*b + c, fused when the target has FMA (llvm.fmuladd)."""
    if not _same_floats(a, b, c):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        return _llvm_call(builder, "llvm.fmuladd", list(args))

    return a(a, b, c), codegen


@intrinsic
def _fma_exact(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a*b + c with one rounding always (llvm.fma): for reductions that need the exact product."""
    if not _same_floats(a, b, c):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        return _llvm_call(builder, "llvm.fma", list(args))

    return a(a, b, c), codegen


@intrinsic
def _copysign(typingctx: Any, mag: Any, sgn: Any) -> Any:
    """|mag| with the sign bit of sgn."""
    if not _same_floats(mag, sgn):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        return _llvm_call(builder, "llvm.copysign", list(args))

    return mag(mag, sgn), codegen


@intrinsic
def _fdiv(typingctx: Any, a: Any, b: Any) -> Any:
    """IEEE a / b: no ZeroDivisionError check, so no branch."""
    if not _same_floats(a, b):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        return builder.fdiv(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def _select(typingctx: Any, cond: Any, a: Any, b: Any) -> Any:
    """``a if cond else b`` as one LLVM ``select`` (guaranteed branch-free)."""
    if not (isinstance(cond, types.Boolean) and _same_floats(a, b)):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen


def _layout(fty: Any) -> tuple[ir.IntType, int, int]:
    """(integer type of the same width, mantissa bits, exponent bias) of a float type."""
    if fty.bitwidth == 32:
        return ir.IntType(32), 23, 127
    return ir.IntType(64), 52, 1023


def _pow2_bits(builder: ir.IRBuilder, k: ir.Value, fty: ir.Type, mant: int, bias: int) -> ir.Value:
    """The float 2**k for an integer k inside the normal exponent range."""
    ity = k.type
    e = builder.shl(builder.add(k, ir.Constant(ity, bias)), ir.Constant(ity, mant))
    return builder.bitcast(e, fty)


def _shifter(fty: Any) -> float:
    """1.5 * 2**mant: adding it rounds a float to an integer kept in the low mantissa bits."""
    return 1.5 * 2.0 ** _layout(fty)[1]


def _shifted_int(builder: ir.IRBuilder, t: ir.Value, fty: Any) -> ir.Value:
    """The integer n held by t == n + shifter, as an integer of the float's width."""
    ity, _, _ = _layout(fty)
    np_ft, np_it = (np.float32, np.int32) if fty.bitwidth == 32 else (np.float64, np.int64)
    bits = int(np_ft(_shifter(fty)).view(np_it))
    return builder.sub(builder.bitcast(t, ity), ir.Constant(ity, bits))


@intrinsic
def _pow2_shifted(typingctx: Any, t: Any) -> Any:
    """2**n for t == n + shifter, n inside the normal exponent range.

    n + bias is shifted straight into the exponent field and the integer reinterpreted
    as a float. Going through the bits of t instead of a float-to-int conversion keeps a
    nan t harmless (fptosi of nan is poison in LLVM; a bitcast is not).
    """
    if not isinstance(t, types.Float):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        _, mant, bias = _layout(t)
        return _pow2_bits(builder, _shifted_int(builder, args[0], t), args[0].type, mant, bias)

    return t(t), codegen


@intrinsic
def _ldexp_shifted(typingctx: Any, p: Any, t: Any) -> Any:
    """p * 2**n for t == n + shifter, |n| up to twice the exponent bias.

    2**n is applied as two normal factors, so a result that overflows becomes inf and
    one that underflows is rounded once into the subnormal range (or to 0).
    """
    if not _same_floats(p, t):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        ity, mant, bias = _layout(t)
        fty = args[0].type
        k = _shifted_int(builder, args[1], t)
        k1 = builder.ashr(k, ir.Constant(ity, 1))
        k2 = builder.sub(k, k1)
        y = builder.fmul(args[0], _pow2_bits(builder, k1, fty, mant, bias))
        return builder.fmul(y, _pow2_bits(builder, k2, fty, mant, bias))

    return p(p, t), codegen


@intrinsic
def _split_sqrt2(typingctx: Any, x: Any) -> Any:
    """(m, e) with x == m * 2**e and m in [sqrt(1/2), sqrt(2)), for positive normal x.

    Subtracting the bits of sqrt(1/2) moves the exponent boundary to sqrt(2) so that
    one arithmetic shift gives e and the masked remainder (re-biased) gives m.
    """
    if not isinstance(x, types.Float):
        return None
    np_ft = np.float32 if x.bitwidth == 32 else np.float64
    np_it = np.int32 if x.bitwidth == 32 else np.int64
    sqrt_half_bits = int(np_ft(np.sqrt(0.5)).view(np_it))

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        ity, mant, _ = _layout(x)
        off = ir.Constant(ity, sqrt_half_bits)
        t = builder.sub(builder.bitcast(args[0], ity), off)
        e = builder.sitofp(builder.ashr(t, ir.Constant(ity, mant)), args[0].type)
        mbits = builder.add(builder.and_(t, ir.Constant(ity, (1 << mant) - 1)), off)
        m = builder.bitcast(mbits, args[0].type)
        return context.make_tuple(builder, sig.return_type, [m, e])

    return types.UniTuple(x, 2)(x), codegen


@intrinsic
def _horner(typingctx: Any, x: Any, coeffs: Any) -> Any:
    """c0 + c1*x + ... + cn*x**n for a constant tuple of coefficients, unrolled."""
    if not (isinstance(coeffs, types.UniTuple) and _same_floats(x, coeffs.dtype)):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]) -> ir.Value:
        cs = [builder.extract_value(args[1], i) for i in range(coeffs.count)]
        acc = cs[-1]
        for c in reversed(cs[:-1]):
            acc = _llvm_call(builder, "llvm.fmuladd", [acc, args[0], c])
        return acc

    return x(x, coeffs), codegen


# ---------------------------------------------------------------------------------------
# Constants per float type.
# ---------------------------------------------------------------------------------------

_DEC = Context(prec=60)  # for deriving constants; the caller's decimal context is left alone
_LN2 = Decimal("0.69314718055994530941723212145817656807550013436025")
_PIO2 = Decimal("1.5707963267948966192313216916397514420985846996876")


def _split(value: Decimal, keep_bits: int) -> tuple[float, float]:
    """value = hi + lo where hi keeps ``keep_bits`` significant bits (so n*hi is exact)."""
    hi64 = np.float64(float(value))
    drop = 52 - (keep_bits - 1)
    hi = float(np.int64(int(hi64.view(np.int64)) & ~((1 << drop) - 1)).view(np.float64))
    return hi, float(_DEC.subtract(value, Decimal(hi)))


def _c(dt: Any, *vals: float | str) -> tuple[Any, ...]:
    return tuple(dt(v) for v in vals)


class _Consts:
    """Everything a kernel needs for one float type, already of that type."""

    def __init__(self, dt: Any) -> None:
        f32 = dt is np.float32
        self.zero, self.half, self.one, self.two = _c(dt, 0.0, 0.5, 1.0, 2.0)
        self.inf, self.nan = dt(np.inf), dt(np.nan)
        self.log2e = dt(1.0 / float(_LN2))
        # n * ln2_hi is exact for |n| < 2**11 (float64) / 2**12 (float32)
        self.ln2_hi, self.ln2_lo = _c(dt, *_split(_LN2, 12 if f32 else 40))
        # exp: clamp where the result has already over/underflowed, keeping n*ln2 exact
        self.exp_hi, self.exp_lo = _c(dt, 89.0, -104.0) if f32 else _c(dt, 710.0, -746.0)
        self.expm1_lo = dt(-80.0 if f32 else -700.0)
        self.big_n = dt(64.0)
        self.shifter = dt(1.5 * 2.0 ** (23 if f32 else 52))
        self.tiny = dt(np.finfo(dt).tiny)
        self.tiny_scale, self.tiny_shift = (dt(2.0**24), dt(24.0)) if f32 else (dt(2.0**54), dt(54.0))
        # e^r ~ 1 + r + r^2 q(r), q(r) fitted to (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2]
        self.exp_q = _c(dt, 1.0, 1.0, *(_EXP_Q32 if f32 else _EXP_Q64))
        # expm1(r) ~ r + r^2 (1/2 + r q(r)), q(r) fitted to (expm1(r) - r - r^2/2) / r^3
        self.expm1_q = _c(dt, 0.5, *(_EXPM1_Q32 if f32 else _EXPM1_Q64))
        # P(z) = (2 atanh(s)/s - 2) / z, z = s^2 in [0, (3-2 sqrt2)^2]
        self.log_p = _c(dt, *(_LOG_P32 if f32 else _LOG_P64))
        self.log_q = _c(dt, *_LOG_Q64)
        self.atan_p = _c(dt, *(_ATAN_P32 if f32 else _ATAN_P64))
        sqrt2 = _DEC.sqrt(Decimal(2))
        self.tan_pi8, self.tan_3pi8 = _c(dt, float(_DEC.subtract(sqrt2, 1)), float(_DEC.add(sqrt2, 1)))
        self.pio2_hi, self.pio2_lo = _c(dt, *_split(_PIO2, 24 if f32 else 53))
        self.pio4_hi, self.pio4_lo = _c(dt, *_split(_DEC.divide(_PIO2, 2), 24 if f32 else 53))
        two_thirds = _DEC.divide(2, 3)
        self.c3_hi = dt(float(two_thirds))
        self.c3_lo = dt(float(_DEC.subtract(two_thirds, Decimal(float(two_thirds)))))


class _TrigConsts:
    """float64 constants of sin/cos; float32 uses them too, with shorter polynomials."""

    def __init__(self, f32: bool) -> None:
        f = np.float64
        self.half, self.one, self.two, self.nan = _c(f, 0.5, 1.0, 2.0, np.nan)
        self.two_over_pi = f(float(_DEC.divide(1, _PIO2)))
        p1 = float(_PIO2)
        rest = _DEC.subtract(_PIO2, Decimal(p1))
        p2 = float(rest)
        p3 = float(_DEC.subtract(rest, Decimal(p2)))
        self.pio2_1, self.pio2_2, self.pio2_3 = _c(f, p1, p2, p3)
        # beyond this, x * 2/pi is no longer within 1/2 of the nearest integer quadrant
        self.max_arg = f(2.0**50)
        # S(z) = (sin(r) - r) / r^3 and C(z) = (cos(r) - 1 + z/2) / z^2, z = r^2 in [0, (pi/4)^2]
        self.sin_s = _c(f, *(_SIN_S32 if f32 else _SIN_S64))
        self.cos_c = _c(f, *(_COS_C32 if f32 else _COS_C64))


_EXP_Q32 = ("0.49999999552858091064", "0.16666577319930527875", "0.041666853345941591346",
            "0.0083631403803069783231", "0.0013901285048588404554")
_EXP_Q64 = ("0.50000000000000010143", "0.16666666666666643955", "0.041666666666624342683",
            "0.0083333333333561793498", "0.0013888888917121427992", "0.00019841269784705055758",
            "0.000024801521422697265138", "2.7557355489009256945e-6", "2.7620034105270056315e-7",
            "2.5068166529481310984e-8")
_EXPM1_Q32 = ("0.16666666629357232933", "0.041666554858088017038", "0.0083333457894078242177",
              "0.0013926154354770054624", "0.00019861948842981755068")
_EXPM1_Q64 = ("0.16666666666666663140", "0.041666666666651409876", "0.0083333333333415617728",
              "0.0013888888905842944865", "0.00019841269815155008386", "0.000024801536456377497829",
              "2.7557332289762915712e-6", "2.7613773040756517682e-7", "2.5073806962937676405e-8")
_LOG_P32 = ("0.66666685099983450498", "0.39988764048022992149", "0.29580511676209205489")
_SIN_S32 = ("-0.16666666663817264971", "0.0083333318636606375836", "-0.00019840081968423382670",
            "2.7249411239969336108e-6")
_SIN_S64 = ("-0.16666666666666664594", "0.0083333333333309247225", "-0.00019841269836727809840",
            "2.7557316088605463440e-6", "-2.5051129263451575392e-8", "1.5917962015959088671e-10")
_COS_C32 = ("0.041666666664301018112", "-0.0013888887666141533693", "0.000024800597840851003440",
            "-2.7300685327237064901e-7")
_COS_C64 = ("0.041666666666666665377", "-0.0013888888888887387616", "0.000024801587298753226411",
            "-2.7557317266078562667e-7", "2.0876145222119798732e-9", "-1.1382564615837471795e-11")
# Q(z) = (2 atanh(s)/s - 2 - 2z/3) / z^2: the part of log1p beyond 2s + 2s^3/3 (pow's log)
_LOG_Q64 = ("0.40000000000000027122", "0.28571428571338369481", "0.22222222271153443981",
            "0.18181808240574618522", "0.15385575224122616243", "0.13285945402169799412",
            "0.12913743912970643655")
# P(z) = (atan(t) - t) / t^3, z = t^2 in [0, tan(pi/8)^2]
_ATAN_P32 = ("-0.33333331792788625333", "0.19999546262302021952", "-0.14264122000096701927",
             "0.10745271072203928854", "-0.064563897692623402544")
_ATAN_P64 = ("-0.33333333333333330238", "0.19999999999995610666", "-0.14285714284683721144",
             "0.11111111016530240240", "-0.090909046261438801265", "0.076921842312932492220",
             "-0.066645251796677254467", "0.058582611366762019214", "-0.050860041681662352205",
             "0.039246827768538822612", "-0.019194531241126507753")
_LOG_P64 = ("0.66666666666666696996", "0.39999999999899175338", "0.28571428626106177454",
            "0.22222211115826267007", "0.18182890369327982836", "0.15331684002437791007",
            "0.14616875727366235407")


def _vjit(fn: Callable[..., Any]) -> Any:
    """Compile a scalar math function the way every function here is compiled.

    Explicit fastmath=False stops Numba from handing a fastmath caller's flags down; the
    cfunc wrapper is never used (saves compile time). The Python wrapper must stay:
    without it a call from the interpreter crashes.
    """
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy", "fastmath": False, "no_cfunc_wrapper": True}
    return njit(**options)(fn)  # no_cfunc_wrapper is a Numba option its type stubs do not list


# ---------------------------------------------------------------------------------------
# Function factories: one algorithm, instantiated for float32 and float64.
# ---------------------------------------------------------------------------------------


def _make_exp_core(k: _Consts) -> Any:
    """e**x for x already clamped to [exp_lo, exp_hi]; a nan stays nan."""
    log2e, ln2_hi, ln2_lo, q, shifter = k.log2e, k.ln2_hi, k.ln2_lo, k.exp_q, k.shifter

    @_vjit
    def exp_core(xc):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        t = _fma(xc, log2e, shifter)  # n = round(x / ln2), held in the low bits of t
        n = t - shifter
        r = _fma(n, -ln2_hi, xc)  # exact: n*ln2_hi has spare bits
        r = _fma(n, -ln2_lo, r)
        p = _horner(r, q)  # 1 + r + r^2 q(r) in one Horner chain
        return _ldexp_shifted(p, t)  # overflows to inf / underflows to 0 by itself

    return exp_core


def _make_exp(k: _Consts, core: Any) -> Any:
    hi, lo = k.exp_hi, k.exp_lo

    @_vjit
    def exp(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        # clamp where the result has over/underflowed anyway; the compare order lets nan through
        xc = _select(x > hi, hi, x)
        return core(_select(xc < lo, lo, xc))

    return exp


def _make_expm1_core(k: _Consts) -> Any:
    """(n + shifter, expm1(r)) with x = n*ln2 + r, for x already clamped; nan stays nan."""
    log2e, ln2_hi, ln2_lo, q, shifter = k.log2e, k.ln2_hi, k.ln2_lo, k.expm1_q, k.shifter

    @_vjit
    def expm1_core(xc):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        t = _fma(xc, log2e, shifter)
        n = t - shifter
        r = _fma(n, -ln2_hi, xc)
        r = _fma(n, -ln2_lo, r)
        # r + r^2 (1/2 + r q(r)), one rounding at the end: relative accuracy kept near 0
        return t, _fma(r * r, _horner(r, q), r)

    return expm1_core


def _make_expm1(k: _Consts, core: Any) -> Any:
    hi, lo, zero, one, two = k.exp_hi, k.expm1_lo, k.zero, k.one, k.two
    t_big = k.shifter + k.big_n

    @_vjit
    def expm1(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        xc = _select(x > hi, hi, x)
        t, p = core(_select(xc < lo, lo, xc))
        moderate = t < t_big
        # moderate n: 2^n*p + (2^n - 1) keeps results near 0 accurate
        s = _pow2_shifted(_select(moderate, t, t_big))
        small = _fma(s, p, s - one)
        # large n: the -1 vanishes; scale in two steps so 2^n itself cannot overflow
        large = ((p + one) * _pow2_shifted(t - one)) * two
        y = _select(moderate, small, large)
        return _select(x == zero, x, y)  # keeps the sign of zero

    return expm1


def _make_tanh(k: _Consts, core: Any) -> Any:
    lo, one, two = k.expm1_lo, k.one, k.two

    @_vjit
    def tanh(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        # tanh|x| = -e / (e + 2) with e = expm1(-2|x|) in [-1, 0]: saturates to 1 by itself
        z = -two * _fabs(x)
        t, p = core(_select(z < lo, lo, z))
        s = _pow2_shifted(t)  # n <= 0: only the "moderate n" form of expm1 is needed
        e = _fma(s, p, s - one)
        return _copysign(_fdiv(e, e + two), x)  # copysign drops the sign of e/(e+2) <= 0

    return tanh


def _make_sigmoid(k: _Consts, core: Any) -> Any:
    lo, zero, one = k.exp_lo, k.zero, k.one

    @_vjit
    def sigmoid(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        # e = exp(-|x|) never overflows; for x < 0 use e/(1+e) to keep tiny results exact
        z = -_fabs(x)
        e = core(_select(z < lo, lo, z))
        return _fdiv(_select(x >= zero, one, e), one + e)

    return sigmoid


def _make_softplus(k: _Consts, core: Any, log1p: Any) -> Any:
    lo, zero = k.exp_lo, k.zero

    @_vjit
    def softplus(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|); a nan x reaches log1p as nan
        z = -_fabs(x)
        return _select(x > zero, x, zero) + log1p(core(_select(z < lo, lo, z)))

    return softplus


def _make_log_core(k: _Consts) -> Any:
    """log(m * 2**e) + c for m from _split_sqrt2; c is a small additive correction."""
    one, two, half, ln2_hi, ln2_lo, p = k.one, k.two, k.half, k.ln2_hi, k.ln2_lo, k.log_p

    @_vjit
    def log_core(m, e, c):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        f = m - one  # exact: m is within a factor 2 of 1
        s = _fdiv(f, two + f)
        z = s * s
        rz = z * _horner(z, p)
        hfsq = half * f * f
        # log1p(f) = f - hfsq + s*(hfsq + R) with f kept exact; e*ln2_hi is exact
        return _fma(e, ln2_hi, f - (hfsq - (_fma(s, hfsq + rz, _fma(e, ln2_lo, c)))))

    return log_core


def _make_log(k: _Consts, core: Any) -> Any:
    zero, inf, nan, tiny, scale, shift = k.zero, k.inf, k.nan, k.tiny, k.tiny_scale, k.tiny_shift

    @_vjit
    def log(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        small = x < tiny  # subnormals: scale into the normal range first
        xs = _select(small, x * scale, x)
        m, e = _split_sqrt2(xs)
        e = _select(small, e - shift, e)
        y = core(m, e, zero)
        y = _select(x == inf, inf, y)
        y = _select(x == zero, -inf, y)
        return _select(x >= zero, y, _select(x != x, x, nan))

    return log


def _make_log1p(k: _Consts, core: Any) -> Any:
    zero, one, inf, nan = k.zero, k.one, k.inf, k.nan

    @_vjit
    def log1p(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        u = one + x
        # u = 1 + x rounded; log(1 + x) ~= log(u) + (x - (u - 1)) / u
        c = _fdiv(x - (u - one), u)
        m, e = _split_sqrt2(u)
        y = core(m, e, _select(u < inf, c, zero))
        y = _select(u == inf, inf, y)
        y = _select(x == zero, x, y)  # keeps the sign of zero
        y = _select(u == zero, -inf, y)
        return _select(u >= zero, y, _select(x != x, x, nan))

    return log1p


def _make_log_dd(k: _Consts) -> Any:
    """log(a) as an unevaluated sum hi + lo (~2**-63 relative), for finite a > 0 (float64)."""
    one, two, ln2_hi, ln2_lo, q = k.one, k.two, k.ln2_hi, k.ln2_lo, k.log_q
    tiny, scale, shift, c3_hi, c3_lo = k.tiny, k.tiny_scale, k.tiny_shift, k.c3_hi, k.c3_lo

    @_vjit
    def log_dd(a):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        small = a < tiny
        m, e = _split_sqrt2(_select(small, a * scale, a))
        e = _select(small, e - shift, e)
        f = m - one
        d = two + f
        dl = (two - d) + f  # d + dl == 2 + f exactly
        s = _fdiv(f, d)
        sl = _fdiv(_fma_exact(-s, d, f) - s * dl, d)  # s + sl == f / (2 + f) to ~2**-106
        zh = s * s
        zl = _fma_exact(s, s, -zh)
        ch = s * zh
        cl = _fma_exact(s, zh, -ch) + s * zl  # s**3 == ch + cl
        uh = ch * c3_hi
        ul = _fma_exact(ch, c3_hi, -uh) + (ch * c3_lo + cl * c3_hi)  # (2/3) s**3 == uh + ul
        rest = ch * zh * _horner(zh, q)
        # log(a) = e*ln2 + 2s + (2/3)s^3 + rest; the two big additions are made exact
        a1 = e * ln2_hi
        b1 = two * s
        h1 = a1 + b1
        bb = h1 - a1
        err1 = (a1 - (h1 - bb)) + (b1 - bb)
        h2 = h1 + uh
        err2 = uh - (h2 - h1)  # |h1| >= |uh|
        # 2*s^2*sl: the first-order effect of sl on (2/3) s^3
        lo = (err1 + err2) + (e * ln2_lo + (two * sl + (ul + (two * zh * sl + rest))))
        hi = h2 + lo
        return hi, lo - (hi - h2)

    return log_dd


def _make_exp_dd(k: _Consts) -> Any:
    """e**(xc + xl) for xc clamped like exp_core and |xl| <= ulp(xc) (float64)."""
    log2e, ln2_hi, ln2_lo, q, shifter = k.log2e, k.ln2_hi, k.ln2_lo, k.exp_q, k.shifter

    @_vjit
    def exp_dd(xc, xl):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        t = _fma(xc, log2e, shifter)
        n = t - shifter
        r = _fma(n, -ln2_hi, xc)
        r = _fma(n, -ln2_lo, r) + xl
        return _ldexp_shifted(_horner(r, q), t)

    return exp_dd


def _make_pow_mag64(k: _Consts) -> Any:
    """|x|**y for float64 via a double-double log: t = y*log|x| carried as t_hi + t_lo."""
    hi, lo, zero, one, inf = k.exp_hi, k.exp_lo, k.zero, k.one, k.inf
    log_dd, exp_dd = _make_log_dd(k), _make_exp_dd(k)

    @_vjit
    def pow_mag64(a, y):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        finite = (a > zero) & (a < inf)
        lh, ll = log_dd(_select(finite, a, one))
        lh = _select(a == zero, -inf, _select(a == inf, inf, lh))
        th = y * lh
        tl = _select(finite, _fma_exact(y, lh, -th) + y * ll, zero)
        tc = _select(th < hi, th, hi)  # nan -> hi: nan inputs are resolved by the caller
        tc = _select(tc > lo, tc, lo)
        # a nan t (0*inf, nan inputs) gives some number here; the caller overrides it
        return exp_dd(tc, _select(tc == th, tl, zero))

    return pow_mag64


def _make_pow_mag32(k64: _Consts) -> Any:
    """|x|**y for float32 arguments computed in float64 (plain log/exp are exact enough)."""
    hi, lo = k64.exp_hi, k64.exp_lo
    log64, exp_core = _make_log(k64, _make_log_core(k64)), _make_exp_core(k64)

    @_vjit
    def pow_mag32(a, y):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        t = y * log64(a)  # |t| < 2**7 where it matters: its float64 rounding is invisible in float32
        tc = _select(t < hi, t, hi)  # a nan t gives some number here; the caller overrides it
        tc = _select(tc > lo, tc, lo)
        return exp_core(tc)

    return pow_mag32


def _make_pow(dt: Any, k64: _Consts, mag: Any) -> Any:
    """x**y with C99/NumPy special cases, computed in float64 and rounded to dt."""
    wide = np.float64
    zero, half, one, inf, nan = k64.zero, k64.half, k64.one, k64.inf, k64.nan

    @_vjit
    def pow(x0, y0):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        if y0 == 2:  # x**2 (tf.pow(d, 2) in a loss): one rounded product, as libm's; a loop-invariant
            return dt(x0 * x0)  # exponent makes LLVM split the loop, the square's copy vectorizes (30x)
        x, y = wide(x0), wide(y0)
        a = _fabs(x)
        yi = _rint(y)
        y_int = yi == y  # +-inf counts as an (even) integer
        y_odd = y_int & (_rint(y * half) != y * half)
        r = mag(a, y)
        r = _select(y_odd & (_copysign(one, x) < zero), -r, r)  # negative base, odd power
        r = _select((x < zero) & (x > -inf) & (yi != y), nan, r)  # no real result
        r = _select((x != x) | (y != y), x + y, r)
        r = _select((a == one) & (_fabs(y) == inf), one, r)  # (-1)**inf == 1
        r = _select((y == zero) | (x == one), one, r)  # even when the other argument is nan
        return dt(r)

    return pow


def _make_trig_core(t: _TrigConsts) -> Any:
    """(k, sin r, cos r) with x = k*pi/2 + r, |r| <= pi/4, all float64."""
    half, one, two_over_pi = t.half, t.one, t.two_over_pi
    p1, p2, p3, ss, cc = t.pio2_1, t.pio2_2, t.pio2_3, t.sin_s, t.cos_c

    @_vjit
    def trig_core(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        k = _rint(x * two_over_pi)
        # x - k*pi/2 with pi/2 in three parts; true fma keeps every k*p_i exact
        r = _fma_exact(-k, p1, x)
        r = _fma_exact(-k, p2, r)
        r = _fma_exact(-k, p3, r)
        z = r * r
        return k, _fma(z * r, _horner(z, ss), r), _fma(z * z, _horner(z, cc), one - half * z)

    return trig_core


def _make_sincos(dt: Any, t: _TrigConsts, core: Any, shift: float) -> Any:
    """sin (shift 0) or cos (shift 1, i.e. sin(x + pi/2)) rounded to dt."""
    half, one, two, nan, max_arg = t.half, t.one, t.two, t.nan, t.max_arg
    zero, wide, qshift, is_sin = dt(0.0), np.float64, np.float64(shift), shift == 0.0

    @_vjit
    def sincos(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        w = wide(x)
        k, s, c = core(w)
        q = k + qshift  # quadrant: odd ones use cos, the upper two negate
        v = _select(q - two * _floor(q * half) == one, c, s)
        v = _select(q - (two + two) * _floor(q * (half * half)) >= two, -v, v)
        # inf, nan, and arguments too large to reduce accurately give nan
        y = dt(_select(_fabs(w) < max_arg, v, nan))
        return _select(is_sin & (x == zero), x, y)  # sin keeps the sign of zero

    return sincos


def _make_tan(dt: Any, t: _TrigConsts, core: Any) -> Any:
    half, one, two, nan, max_arg = t.half, t.one, t.two, t.nan, t.max_arg
    zero, wide = dt(0.0), np.float64

    @_vjit
    def tan(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        w = wide(x)
        k, s, c = core(w)
        odd = k - two * _floor(k * half) == one  # tan(r + pi/2) = -cos(r)/sin(r)
        v = _fdiv(_select(odd, -c, s), _select(odd, s, c))
        y = dt(_select(_fabs(w) < max_arg, v, nan))
        return _select(x == zero, x, y)

    return tan


def _make_sinh(k: _Consts, expm1: Any, exp: Any) -> Any:
    half, one, big = k.half, k.one, k.exp_hi - k.one

    @_vjit
    def sinh(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        a = _fabs(x)
        e = expm1(a)
        small = half * (e + _fdiv(e, e + one))  # no cancellation for small |x|
        h = exp(half * a)  # near overflow e^a itself overflows; e^a / 2 = (h / 2) * h need not
        y = _select(a < big, small, (half * h) * h)
        return _copysign(y, x)

    return sinh


def _make_cosh(k: _Consts, exp: Any) -> Any:
    half, big = k.half, k.exp_hi - k.one

    @_vjit
    def cosh(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        a = _fabs(x)
        e = exp(a)
        h = exp(half * a)
        return _select(a < big, half * e + _fdiv(half, e), (half * h) * h)

    return cosh


def _make_atan2_core(k: _Consts) -> Any:
    """atan(y / x) in [0, pi/2] for y >= 0, x >= 0 (not both 0), with a single division.

    The ratio is brought into [-tan(pi/8), tan(pi/8)] by atan(u) = pi/4 + atan((u-1)/(u+1))
    or pi/2 + atan(-1/u), written on y and x directly.
    """
    zero, t1, t3, p = k.zero, k.tan_pi8, k.tan_3pi8, k.atan_p
    pio2_hi, pio2_lo, pio4_hi, pio4_lo = k.pio2_hi, k.pio2_lo, k.pio4_hi, k.pio4_lo

    @_vjit
    def atan2_core(y, x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        big = y > t3 * x
        mid = y > t1 * x
        t = _fdiv(_select(big, -x, _select(mid, y - x, y)), _select(big, y, _select(mid, y + x, x)))
        z = t * t
        hi = _select(big, pio2_hi, _select(mid, pio4_hi, zero))
        lo = _select(big, pio2_lo, _select(mid, pio4_lo, zero))
        return hi + (_fma(t * z, _horner(z, p), t) + lo)

    return atan2_core


def _make_atan(k: _Consts, core: Any) -> Any:
    one = k.one

    @_vjit
    def atan(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        return _copysign(core(_fabs(x), one), x)

    return atan


def _make_asin(k: _Consts, core: Any) -> Any:
    one = k.one

    @_vjit
    def asin(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        # asin(a) = atan(a / sqrt(1 - a^2)); (1-a)(1+a) avoids cancellation, |x| > 1 gives nan
        a = _fabs(x)
        return _copysign(core(a, _sqrt((one - a) * (one + a))), x)

    return asin


def _make_acos(k: _Consts, core: Any) -> Any:
    one, two = k.one, k.two

    @_vjit
    def acos(x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        # acos(x) = 2 atan(sqrt((1-x)/(1+x))): accurate at both ends, nan outside [-1, 1]
        return two * core(_sqrt(one - x), _sqrt(one + x))

    return acos


def _make_atan2(k: _Consts, core: Any) -> Any:
    """atan2(y, x) with the C99/NumPy signed-zero and infinity cases."""
    zero, one, inf, pio4_hi, pio4_lo = k.zero, k.one, k.inf, k.pio4_hi, k.pio4_lo
    pi_hi, pi_lo = k.two * k.pio2_hi, k.two * k.pio2_lo

    @_vjit
    def atan2(y, x):  # type: ignore[no-untyped-def]
        _inline_into_caller()
        ay, ax = _fabs(y), _fabs(x)
        t = core(ay, ax)
        t = _select((ay == zero) & (ax == zero), zero, t)  # 0/0 in the core
        t = _select((ay == inf) & (ax == inf), pio4_hi + pio4_lo, t)  # inf/inf in the core
        t = _select(_copysign(one, x) < zero, (pi_hi - t) + pi_lo, t)  # x < 0 or x == -0
        return _copysign(t, y)  # a nan stays nan

    return atan2


def _build(dt: Any) -> dict[str, Any]:
    k = _Consts(dt)
    exp_core, expm1_core, log_core = _make_exp_core(k), _make_expm1_core(k), _make_log_core(k)
    log1p = _make_log1p(k, log_core)
    tk = _TrigConsts(dt is np.float32)
    trig_core = _make_trig_core(tk)
    k64 = k if dt is np.float64 else _Consts(np.float64)
    exp, expm1 = _make_exp(k, exp_core), _make_expm1(k, expm1_core)
    atan2_core = _make_atan2_core(k)
    return {
        "exp": exp,
        "expm1": expm1,
        "log": _make_log(k, log_core),
        "log1p": log1p,
        "tanh": _make_tanh(k, expm1_core),
        "sigmoid": _make_sigmoid(k, exp_core),
        "softplus": _make_softplus(k, exp_core, log1p),
        "sin": _make_sincos(dt, tk, trig_core, 0.0),
        "cos": _make_sincos(dt, tk, trig_core, 1.0),
        "tan": _make_tan(dt, tk, trig_core),
        "sinh": _make_sinh(k, expm1, exp),
        "cosh": _make_cosh(k, exp),
        "atan": _make_atan(k, atan2_core),
        "asin": _make_asin(k, atan2_core),
        "acos": _make_acos(k, atan2_core),
        "atan2": _make_atan2(k, atan2_core),
        "pow": _make_pow(dt, k64, _make_pow_mag32(k64) if dt is np.float32 else _make_pow_mag64(k64)),
    }


#: The function names every supported dtype provides.
NAMES: tuple[str, ...] = (
    "acos", "asin", "atan", "atan2", "cos", "cosh", "exp", "expm1", "log", "log1p", "pow",
    "sigmoid", "sin", "sinh", "softplus", "tan", "tanh",
)
_DTYPES = {"float32": np.float32, "float64": np.float64}
_TABLE: dict[tuple[str, str], Any] = {}
_TABLE_LOCK = threading.Lock()


def _table() -> dict[tuple[str, str], Any]:
    """Create the Numba functions on first use, so importing this module compiles nothing."""
    with _TABLE_LOCK:
        if not _TABLE:
            built = {(name, dtname): fn for dtname, dt in _DTYPES.items() for name, fn in _build(dt).items()}
            _TABLE.update(built)
    return _TABLE


def __getattr__(attr: str) -> Any:
    """``VMATH`` and ``<name>_f32`` / ``<name>_f64`` (e.g. ``exp_f32``), created lazily."""
    if attr == "VMATH":
        return _table()
    name, _, suffix = attr.rpartition("_")
    dtname = {"f32": "float32", "f64": "float64"}.get(suffix)
    if dtname is not None and name in NAMES:
        return _table()[(name, dtname)]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def lookup(name: str, dtype: str | np.dtype[Any] | type) -> Any | None:
    """The vectorizable Numba function ``name`` for ``dtype``, or None if there is none.

    ``dtype`` may be a NumPy dtype name (``"float32"``), a ``np.dtype`` or a scalar type.
    A None answer means the caller should keep its scalar fallback (e.g. ``math.exp``).
    """
    if dtype is None:  # np.dtype(None) would mean float64
        return None
    try:
        key = np.dtype(dtype).name
    except TypeError:
        return None
    return _table().get((name, key))
