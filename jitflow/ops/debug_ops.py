"""Debugging ops: Print/PrintV2, CheckNumerics, Assert and the `tf.assert_*` family.

All are stateful (registry.STATEFUL): the compiler keeps them, in order, exactly once per run.
"""
from __future__ import annotations

import sys
import types
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import const_value, make_op, out

# -- formatting -----------------------------------------------------------------------------------------------


def _fmt_scalar(v: Any) -> str:
    """One element as TF1 prints it: shortest float form without a trailing '.0', bools as 0/1."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        s = str(v)
        return s[:-2] if s.endswith(".0") else s
    return str(v.item() if isinstance(v, np.generic) else v)


def summarize(value: Any, n: int) -> str:
    """TF1's summary of a tensor: its first `n` elements (n < 0: all), nested by shape, '...' if cut."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return _fmt_scalar(arr[()])
    flat = arr.reshape(-1)
    limit = flat.size if n < 0 else min(n, flat.size)
    parts = [_fmt_scalar(v) for v in flat[:limit]]
    if arr.ndim == 1 or limit < flat.size:
        return "[" + " ".join(parts) + ("..." if limit < flat.size else "") + "]"
    # Whole tensor printed: nest it like its shape.
    def nest(a: np.ndarray) -> str:
        if a.ndim == 1:
            return "[" + " ".join(_fmt_scalar(v) for v in a) + "]"
        return "[" + "".join(nest(s) for s in a) + "]"

    return nest(arr)


def _v2_format(value: Any, n: int) -> str:
    """tf.print's rendering: nested brackets, rows on new lines, first and last `n` entries per dimension."""
    arr = np.asarray(value)

    def fmt(a: Any, depth: int) -> str:
        if not isinstance(a, np.ndarray):
            return _fmt_scalar(a)
        if a.ndim == 0:
            return _fmt_scalar(a[()])
        k = a.shape[0]
        cut = 0 <= n and 2 * n < k
        idx = list(range(n)) + list(range(k - n, k)) if cut else list(range(k))
        items = [fmt(a[i], depth + 1) for i in idx]
        if cut:
            items.insert(n, "...")
        sep = " " if a.ndim == 1 else "\n" * (a.ndim - 1) + " " * (depth + 1)
        return "[" + sep.join(items) + "]"

    return fmt(arr, 0)


# -- Print (TF1) ------------------------------------------------------------------------------------------

_print_counts: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def _print_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    first_n = op.attrs["first_n"]
    if first_n >= 0:
        try:
            counts = _print_counts.setdefault(ctx, {})
        except TypeError:  # a context that cannot be weakly referenced: count for this run only
            counts = {}
        seen = counts.get(op.name, 0)
        counts[op.name] = seen + 1
        if seen >= first_n:
            return ins[0]
    n = op.attrs["summarize"]
    text = op.attrs["message"] + "".join(summarize(v, n) for v in ins[1:])
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    return ins[0]


registry.register_op("Print", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)], _print_kernel,
                     registry.STATEFUL)


@registry.register_gradient("Print")
def _print_grad(op: Operation, g: Tensor) -> list[Any]:
    return [g] + [None] * (len(op.inputs) - 1)


def Print(input_: Any, data: Sequence[Any], message: str | None = None, first_n: int | None = None,  # noqa: N802
          summarize: int | None = None, name: str | None = None) -> Tensor:
    """Returns `input_`; when it is computed, prints `message` and the values of `data` to stderr."""
    x = convert_to_tensor(input_)
    ds = [convert_to_tensor(d) for d in (data or [])]
    attrs = {"message": message or "", "first_n": -1 if first_n is None else int(first_n),
             "summarize": 3 if summarize is None else int(summarize), "T": x.dtype,
             "U": [d.dtype for d in ds]}
    return out(make_op("Print", [x] + ds, attrs, name=name or "Print"))


# -- tf.print (PrintV2) ---------------------------------------------------------------------------------------

_STDOUT, _STDERR = sys.stdout, sys.stderr  # the defaults as first seen (test harnesses swap sys.stderr)


def _print_v2_kernel(ctx: Any, op: Operation, ins: list) -> None:
    n = op.attrs["summarize"]
    pieces = list(op.attrs["template"])
    for pos, v in zip(op.attrs["tensor_positions"], ins):
        pieces[pos] = _v2_format(v, n)
    text = op.attrs["sep"].join(pieces) + op.attrs["end"]
    stream = sys.stdout if op.attrs["output_stream"] == "stdout" else sys.stderr
    stream.write(text)
    stream.flush()
    return None


registry.register_op("PrintV2", lambda op: [], _print_v2_kernel, registry.STATEFUL)


def print(*inputs: Any, output_stream: Any = _STDERR, summarize: int = 3, sep: str = " ",  # noqa: A001
          end: str = "\n", name: str | None = None) -> Operation:
    """An op that prints `inputs` (tensors and Python values) when run; returns the op."""
    template: list[str] = []
    positions: list[int] = []
    tensors: list[Tensor] = []
    for i, v in enumerate(inputs):
        if isinstance(v, Tensor) or hasattr(v, "_as_tensor"):
            tensors.append(convert_to_tensor(v))
            template.append("")
            positions.append(i)
        else:
            template.append(str(v))
    if any(output_stream is s for s in (sys.stdout, sys.__stdout__, _STDOUT)) or output_stream == "stdout":
        stream = "stdout"
    elif any(output_stream is s for s in (sys.stderr, sys.__stderr__, _STDERR)) or output_stream == "stderr":
        stream = "stderr"
    else:
        raise ValueError(f"Unsupported output stream {output_stream!r}: use sys.stdout or sys.stderr")
    attrs = {"template": template, "tensor_positions": positions,
             "summarize": int(summarize) if summarize is not None else -1, "sep": sep, "end": end,
             "output_stream": stream}
    g = tensors[0].graph if tensors else get_default_graph()
    return g.create_op("PrintV2", tensors, attrs, name=name or "PrintV2")


# -- check_numerics ------------------------------------------------------------------------------------------


def _check_numerics_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = ins[0]
    nan, inf = bool(np.isnan(x).any()), bool(np.isinf(x).any())
    if nan or inf:
        what = "NaN and Inf" if nan and inf else "NaN" if nan else "Inf"
        raise InvalidArgumentError(None, None, f"{op.attrs['message']} : Tensor had {what} values")
    return x


registry.register_op("CheckNumerics", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     _check_numerics_kernel, registry.STATEFUL)


@registry.register_gradient("CheckNumerics")
def _check_numerics_grad(op: Operation, g: Tensor) -> list[Any]:
    return [check_numerics(g, "Not a number (NaN) or infinity (Inf) values detected in gradient. "
                              + op.attrs["message"])]


def check_numerics(tensor: Any, message: str, name: str | None = None) -> Tensor:
    """Returns `tensor`; running it fails with InvalidArgumentError if it holds a NaN or an Inf."""
    x = convert_to_tensor(tensor)
    if not x.dtype.is_floating:
        raise TypeError(f"Value passed to parameter 'tensor' has DataType {x.dtype.name} not in list of allowed "
                        "values: float16, float32, float64")
    return out(make_op("CheckNumerics", [x], {"message": str(message), "T": x.dtype},
                       name=name or "CheckNumerics"))


def verify_tensor_all_finite(t: Any, msg: str, name: str | None = None) -> Tensor:
    """check_numerics under its older name."""
    return check_numerics(t, msg, name=name)


# -- Assert --------------------------------------------------------------------------------------------------


def _assert_kernel(ctx: Any, op: Operation, ins: list) -> None:
    cond = np.asarray(ins[0])
    if cond.shape != ():
        raise InvalidArgumentError(None, None, f"In[0] is not a scalar: {list(cond.shape)}")
    if not bool(cond):
        n = op.attrs["summarize"]
        parts = [f"[{summarize(v, n)}]" if np.ndim(v) else f"[{_fmt_scalar(np.asarray(v)[()])}]"
                 for v in ins[1:]]
        raise InvalidArgumentError(None, None, "assertion failed: " + " ".join(parts))
    return None


registry.register_op("Assert", lambda op: [], _assert_kernel, registry.STATEFUL)


def Assert(condition: Any, data: Sequence[Any], summarize: int | None = None,  # noqa: N802 - TF's name
           name: str | None = None) -> Operation:
    """An op that fails with InvalidArgumentError, listing `data`, when the scalar `condition` is False."""
    c = convert_to_tensor(condition)
    if c.dtype is not dtypes.bool:
        raise TypeError(f"Value passed to parameter 'condition' has DataType {c.dtype.name} not in list of "
                        "allowed values: bool")
    if c.shape.ndims not in (None, 0):
        raise ValueError(f"Shape must be rank 0 but is rank {c.shape.ndims} for 'Assert' with condition shape "
                         f"{c.shape}")
    ds = [convert_to_tensor(d) for d in data]
    return make_op("Assert", [c] + ds, {"summarize": 3 if summarize is None else int(summarize),
                                        "T": [d.dtype for d in ds]}, name=name or "Assert")


# -- the assert_* family -----------------------------------------------------------------------------------


def _static_check(cond_value: Any, data: list[Any], n: int) -> None:
    """TF's build-time failure when both operands are constants and the condition is false."""
    if cond_value is not None and not bool(np.all(cond_value)):
        parts = []
        for d in data:
            v = const_value(d) if isinstance(d, Tensor) else d
            parts.append(summarize(v, n) if v is not None else str(d))
        raise InvalidArgumentError(None, None, "\n".join(parts))


def _all(c: Tensor) -> Tensor:
    """True iff every element of the bool tensor `c` is True (also for empty tensors)."""
    failures = M.reduce_sum(M.cast(M.logical_not(c), dtypes.int64))
    return M.equal(failures, convert_to_tensor(0, dtype=dtypes.int64))


def _binary_assert(fn: Any, np_fn: Any, sym: str, default: str, x: Any, y: Any, data: Any, summarize: Any,
                   message: Any, name: Any) -> Operation:
    n = 3 if summarize is None else int(summarize)
    with _name_scope(name, default):
        xt = convert_to_tensor(x)
        yt = convert_to_tensor(y, dtype=xt.dtype) if not isinstance(y, Tensor) and not hasattr(y, "_as_tensor") \
            else convert_to_tensor(y)
        if data is None:
            data = [message or "", f"Condition x {sym} y did not hold element-wise:", f"x ({xt.name}) = ", xt,
                    f"y ({yt.name}) = ", yt]
        elif message is not None:
            data = [message] + list(data)
        xv, yv = const_value(xt), const_value(yt)
        if xv is not None and yv is not None:
            _static_check(np_fn(xv, yv), data, n)
        return Assert(_all(fn(xt, yt)), data, summarize=n)


def _unary_assert(np_fn: Any, fn: Any, what: str, default: str, x: Any, data: Any, summarize: Any, message: Any,
                  name: Any) -> Operation:
    n = 3 if summarize is None else int(summarize)
    with _name_scope(name, default):
        xt = convert_to_tensor(x)
        if data is None:
            data = [message or "", f"Condition x {what} did not hold element-wise:", f"x ({xt.name}) = ", xt]
        elif message is not None:
            data = [message] + list(data)
        xv = const_value(xt)
        if xv is not None:
            _static_check(np_fn(xv), data, n)
        zero = A.zeros_like(xt)
        return Assert(_all(fn(xt, zero)), data, summarize=n)


def assert_equal(x: Any, y: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                 name: str | None = None) -> Operation:
    """An op asserting x == y elementwise (fails at build time when both are constants and differ)."""
    return _binary_assert(M.equal, np.equal, "==", "assert_equal", x, y, data, summarize, message, name)


def assert_none_equal(x: Any, y: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                      name: str | None = None) -> Operation:
    """An op asserting x != y elementwise."""
    return _binary_assert(M.not_equal, np.not_equal, "!=", "assert_none_equal", x, y, data, summarize, message,
                          name)


def assert_less(x: Any, y: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                name: str | None = None) -> Operation:
    """An op asserting x < y elementwise."""
    return _binary_assert(M.less, np.less, "<", "assert_less", x, y, data, summarize, message, name)


def assert_less_equal(x: Any, y: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                      name: str | None = None) -> Operation:
    """An op asserting x <= y elementwise."""
    return _binary_assert(M.less_equal, np.less_equal, "<=", "assert_less_equal", x, y, data, summarize, message,
                          name)


def assert_greater(x: Any, y: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                   name: str | None = None) -> Operation:
    """An op asserting x > y elementwise."""
    return _binary_assert(M.greater, np.greater, ">", "assert_greater", x, y, data, summarize, message, name)


def assert_greater_equal(x: Any, y: Any, data: Any = None, summarize: int | None = None,
                         message: str | None = None, name: str | None = None) -> Operation:
    """An op asserting x >= y elementwise."""
    return _binary_assert(M.greater_equal, np.greater_equal, ">=", "assert_greater_equal", x, y, data, summarize,
                          message, name)


def assert_positive(x: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                    name: str | None = None) -> Operation:
    """An op asserting x > 0 elementwise."""
    return _unary_assert(lambda v: v > 0, M.greater, "> 0", "assert_positive", x, data, summarize, message, name)


def assert_negative(x: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                    name: str | None = None) -> Operation:
    """An op asserting x < 0 elementwise."""
    return _unary_assert(lambda v: v < 0, M.less, "< 0", "assert_negative", x, data, summarize, message, name)


def assert_non_negative(x: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                        name: str | None = None) -> Operation:
    """An op asserting x >= 0 elementwise."""
    return _unary_assert(lambda v: v >= 0, M.greater_equal, ">= 0", "assert_non_negative", x, data, summarize,
                         message, name)


def assert_non_positive(x: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                        name: str | None = None) -> Operation:
    """An op asserting x <= 0 elementwise."""
    return _unary_assert(lambda v: v <= 0, M.less_equal, "<= 0", "assert_non_positive", x, data, summarize,
                         message, name)


def assert_rank(x: Any, rank: Any, message: str | None = None, name: str | None = None) -> Operation:
    """An op asserting rank(x) == rank; a ValueError now when the static rank is known and differs."""
    with _name_scope(name, "assert_rank"):
        xt = convert_to_tensor(x)
        r = int(rank) if not isinstance(rank, Tensor) else None
        static = xt.shape.ndims
        if r is not None and static is not None:
            if static != r:
                raise ValueError(f"{message + '.  ' if message else ''}Tensor {xt.name} must have rank {r}.  "
                                 f"Received rank {static}, shape {xt.shape}")
            return Assert(convert_to_tensor(True), [message or "", "rank ok"])
        want = convert_to_tensor(rank, dtype=dtypes.int32) if r is not None else rank
        data = [message or "", f"Tensor {xt.name} must have rank", want, "Received shape: ", A.shape(xt)]
        return Assert(M.equal(A.rank(xt), want), data)


def assert_rank_at_least(x: Any, rank: int, message: str | None = None, name: str | None = None) -> Operation:
    """An op asserting rank(x) >= rank."""
    with _name_scope(name, "assert_rank_at_least"):
        xt = convert_to_tensor(x)
        static = xt.shape.ndims
        if static is not None and static < rank:
            raise ValueError(f"{message + '.  ' if message else ''}Tensor {xt.name} must have rank at least "
                             f"{rank}.  Received rank {static}, shape {xt.shape}")
        data = [message or "", f"Tensor {xt.name} must have rank at least", rank, "Received shape: ", A.shape(xt)]
        return Assert(M.greater_equal(A.rank(xt), rank), data)


def assert_type(tensor: Any, tf_type: Any, message: str | None = None, name: str | None = None) -> Operation:
    """Checks the dtype at build time (TypeError); returns a no-op."""
    from jitflow.ops.control_flow_ops import no_op

    t = convert_to_tensor(tensor)
    want = dtypes.as_dtype(tf_type)
    if t.dtype is not want:
        raise TypeError(f"{message or ''}{t.name} must be of type {want.name}; got {t.dtype.name}")
    return no_op(name=name or "assert_type")


def is_numeric_tensor(tensor: Any) -> bool:
    return isinstance(tensor, Tensor) and tensor.dtype.is_numeric


debugging = types.SimpleNamespace(
    check_numerics=check_numerics, Assert=Assert, assert_equal=assert_equal, assert_none_equal=assert_none_equal,
    assert_less=assert_less, assert_less_equal=assert_less_equal, assert_greater=assert_greater,
    assert_greater_equal=assert_greater_equal, assert_positive=assert_positive, assert_negative=assert_negative,
    assert_non_negative=assert_non_negative, assert_non_positive=assert_non_positive, assert_rank=assert_rank,
    assert_rank_at_least=assert_rank_at_least, assert_type=assert_type, is_numeric_tensor=is_numeric_tensor,
    assert_all_finite=verify_tensor_all_finite)
