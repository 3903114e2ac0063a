"""`tf.py_func` / `tf.numpy_function`: a Python function as an op.

The function is kept in a process-wide registry under a token (the op's `token` attr), as TF keeps
it; the op is always interpreted and never fused (`explain` gives the reason). Its results are
converted to the declared `Tout`; a wrong type is InvalidArgumentError, and an exception raised by the
function is UnknownError carrying its Python traceback.
"""
from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import make_op

_FUNCS: dict[str, Callable[..., Any]] = {}
_COUNTER = itertools.count()
_LOCK = threading.Lock()


def _infer(op: Operation) -> list:
    return [(dt, TensorShape(None)) for dt in op.attrs["Tout"]]


def _convert(value: Any, dt: dtypes.DType, i: int, token: str) -> np.ndarray:
    """The i-th result as an array of `dt` (InvalidArgumentError when its type differs, as TF)."""
    if dt is dtypes.string:
        arr = np.asarray(value, dtype=object)
        return np.vectorize(lambda s: s.encode() if isinstance(s, str) else s, otypes=[object])(arr) \
            if arr.size else arr
    arr = np.asarray(value)
    if arr.dtype.kind in "OSU" or (arr.dtype != dt.np and not _same_kind_ok(arr, dt)):
        got = dtypes.as_dtype(arr.dtype).name if arr.dtype.kind not in "OSU" else "string"
        raise errors.InvalidArgumentError(None, None, f"{i}-th value returned by pyfunc_{token} is {got}, but "
                                                      f"expects {dt.name}")
    return arr.astype(dt.np, copy=False)


def _same_kind_ok(arr: np.ndarray, dt: dtypes.DType) -> bool:
    """Python scalars come back as int64/float64 arrays: TF accepts them for any int/float Tout."""
    return arr.ndim == 0 and arr.dtype in (np.int64, np.float64) and arr.dtype.kind == dt.np.kind


def _error_for(e: Exception) -> type[errors.OpError]:
    """TF's status for an exception raised by the function (py_func.cc's mapping; UnknownError otherwise)."""
    if isinstance(e, errors.OpError):
        return type(e)
    for exc, err in ((ValueError, errors.InvalidArgumentError), (TypeError, errors.InvalidArgumentError),
                     (StopIteration, errors.OutOfRangeError), (MemoryError, errors.ResourceExhaustedError),
                     (NotImplementedError, errors.UnimplementedError)):
        if isinstance(e, exc):
            return err
    return errors.UnknownError


def _kernel(ctx: Any, op: Operation, ins: list) -> Any:
    token = op.attrs["token"]
    fn = _FUNCS.get(token)
    if fn is None:
        raise errors.InvalidArgumentError(op.node_def, op, f"callback {token} is not found")
    args = [np.asarray(x) if not isinstance(x, np.ndarray) else x for x in ins]
    try:
        res = fn(*args)
    except Exception as e:  # noqa: BLE001 - every exception becomes TF's error, with the traceback
        raise _error_for(e)(op.node_def, op, f"{type(e).__name__}: {e}\n{traceback.format_exc()}") from e
    touts = op.attrs["Tout"]
    if not touts:
        return ()
    if op.attrs["single"]:
        res = [res]
    elif not isinstance(res, (list, tuple)):
        res = [res]
    if len(res) != len(touts):
        raise errors.InvalidArgumentError(op.node_def, op, f"pyfunc_{token} returns {len(res)} values, but expects "
                                                           f"to see {len(touts)} values.")
    outs = [_convert(v, dt, i, token) for i, (v, dt) in enumerate(zip(res, touts))]
    return outs[0] if len(outs) == 1 else tuple(outs)


registry.register_op("PyFunc", _infer, _kernel, registry.STATEFUL, not_differentiable=True)
registry.register_op("PyFuncStateless", _infer, _kernel, registry.OPAQUE, not_differentiable=True)
for _t in ("PyFunc", "PyFuncStateless"):
    registry.INTERPRETED[_t] = f"{_t} runs a Python function: always interpreted, never fused"


def _call(func: Callable[..., Any], inp: Any, Tout: Any, stateful: bool, name: str | None) -> Any:  # noqa: N803
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    single = not isinstance(Tout, (list, tuple))
    touts = [dtypes.as_dtype(Tout)] if single else [dtypes.as_dtype(t) for t in Tout]
    inputs = [x if isinstance(x, Tensor) else convert_to_tensor(x) for x in (inp or [])]
    with _LOCK:
        token = f"pyfunc_{next(_COUNTER)}"
        _FUNCS[token] = func
    op = make_op("PyFunc" if stateful else "PyFuncStateless", inputs,
                 {"token": token, "Tout": touts, "single": single}, name=name or "PyFunc")
    if single:
        return op.outputs[0]
    return list(op.outputs) if touts else op


def py_func(func: Callable[..., Any], inp: Any, Tout: Any, stateful: bool = True,  # noqa: N803
            name: str | None = None) -> Any:
    """Runs `func(*values of inp)` as an op; `Tout` is a dtype (one Tensor) or a list (a list of them)."""
    return _call(func, inp, Tout, stateful, name)


def numpy_function(func: Callable[..., Any], inp: Any, Tout: Any, name: str | None = None) -> Any:
    """`py_func` for functions on NumPy arrays (stateful, as TF 1.x's)."""
    return _call(func, inp, Tout, True, name)
