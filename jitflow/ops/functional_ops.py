"""`tf.map_fn`, `tf.scan`, `tf.foldl`, `tf.foldr`: while_loops over the first axis, through TensorArrays."""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops import loop_structure as ls
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.tensor_array import TensorArray
from jitflow.ops.while_loop import while_loop


def _inputs(elems: Any) -> tuple[list[Tensor], list[TensorArray], Tensor]:
    """The flattened elems, a TensorArray over each, and the number of elements (first axis)."""
    from jitflow.ops.array_ops import shape

    flat = [convert_to_tensor(e, name="elem") for e in ls.flatten(elems)]
    if not flat:
        raise ValueError("elems must not be empty")
    for e in flat:
        if e.shape.ndims == 0:
            raise ValueError(f"Elements in elems must be 1+ dimensional Tensors, not scalars: {e}")
    n_static = flat[0].shape.as_tuple()[0] if flat[0].shape.ndims else None  # type: ignore[index]
    n = convert_to_tensor(n_static, dtypes.int32) if n_static is not None else shape(flat[0])[0]
    tas = [TensorArray(e.dtype, size=n, dynamic_size=False, infer_shape=True).unstack(e) for e in flat]
    return flat, tas, n


def _outputs(dtype_struct: Any, n: Tensor) -> list[TensorArray]:
    return [TensorArray(dtypes.as_dtype(dt), size=n, dynamic_size=False, infer_shape=True)
            for dt in ls.flatten(dtype_struct)]


def _set_first_dim(ts: list[Tensor], n_static: int | None) -> None:
    for t in ts:
        if n_static is not None and t.shape.ndims:
            t.set_shape([n_static] + [None] * (t.shape.ndims - 1))  # type: ignore[operator]


def map_fn(fn: Any, elems: Any, dtype: Any = None, parallel_iterations: Any = None, back_prop: bool = True,
           swap_memory: bool = False, infer_shape: bool = True, name: str | None = None) -> Any:
    """Applies `fn` to each element of `elems` (unstacked on axis 0); stacks the results."""
    with _name_scope(name, "map"):
        flat, tas, n = _inputs(elems)
        out_struct = dtype if dtype is not None else ls.pack(elems, [e.dtype for e in flat])
        outs = _outputs(out_struct, n)

        def body(i: Tensor, *accs: TensorArray) -> Any:
            x = ls.pack(elems, [ta.read(i) for ta in tas])
            y = ls.flatten(fn(x))
            return (i + 1, *[a.write(i, v) for a, v in zip(accs, y)])

        res = while_loop(lambda i, *_: i < n, body, [0, *outs], parallel_iterations=parallel_iterations or 10,
                         back_prop=back_prop, swap_memory=swap_memory, return_same_structure=True)
        stacked = [a.stack() for a in res[1:]]
        _set_first_dim(stacked, flat[0].shape.as_tuple()[0] if flat[0].shape.ndims else None)  # type: ignore[index]
        return ls.pack(out_struct, stacked)


def scan(fn: Any, elems: Any, initializer: Any = None, parallel_iterations: int = 10, back_prop: bool = True,
         swap_memory: bool = False, infer_shape: bool = True, reverse: bool = False, name: str | None = None) -> Any:
    """The running results of `acc = fn(acc, x)` over the elements of `elems` (stacked on axis 0)."""
    with _name_scope(name, "scan"):
        flat, tas, n = _inputs(elems)
        first = 0
        if initializer is None:
            init = ls.pack(elems, [ta.read(n - 1 if reverse else 0) for ta in tas])
            first = 1
        else:
            init = initializer
        init_flat = [convert_to_tensor(a) for a in ls.flatten(init)]
        outs = _outputs([a.dtype for a in init_flat], n)
        if initializer is None:
            outs = [o.write(n - 1 if reverse else 0, a) for o, a in zip(outs, init_flat)]
        k = len(init_flat)

        def body(i: Tensor, *rest: Any) -> Any:
            acc, accs = rest[:k], rest[k:]
            idx = n - 1 - i if reverse else i
            x = ls.pack(elems, [ta.read(idx) for ta in tas])
            a = [convert_to_tensor(v) for v in ls.flatten(fn(ls.pack(init, list(acc)), x))]
            return (i + 1, *a, *[o.write(idx, v) for o, v in zip(accs, a)])

        res = while_loop(lambda i, *_: i < n, body, [first, *init_flat, *outs], parallel_iterations=parallel_iterations,
                         back_prop=back_prop, swap_memory=swap_memory, return_same_structure=True)
        stacked = [o.stack() for o in res[1 + k:]]
        _set_first_dim(stacked, flat[0].shape.as_tuple()[0] if flat[0].shape.ndims else None)  # type: ignore[index]
        return ls.pack(init, stacked)


def _fold(fn: Any, elems: Any, initializer: Any, reverse: bool, name: str, parallel_iterations: int,
          back_prop: bool, swap_memory: bool) -> Any:
    flat, tas, n = _inputs(elems)
    first = 0
    if initializer is None:
        init: Any = ls.pack(elems, [ta.read(n - 1 if reverse else 0) for ta in tas])
        first = 1
    else:
        init = initializer
    init_flat = [convert_to_tensor(a) for a in ls.flatten(init)]

    def body(i: Tensor, *acc: Any) -> Any:
        idx = n - 1 - i if reverse else i
        x = ls.pack(elems, [ta.read(idx) for ta in tas])
        return (i + 1, *[convert_to_tensor(v) for v in ls.flatten(fn(ls.pack(init, list(acc)), x))])

    res = while_loop(lambda i, *_: i < n, body, [first, *init_flat], parallel_iterations=parallel_iterations,
                     back_prop=back_prop, swap_memory=swap_memory, return_same_structure=True)
    return ls.pack(init, list(res[1:]))


def foldl(fn: Any, elems: Any, initializer: Any = None, parallel_iterations: int = 10, back_prop: bool = True,
          swap_memory: bool = False, name: str | None = None) -> Any:
    """`fn(...fn(fn(init, e0), e1)..., en)` over the first axis of `elems`."""
    with _name_scope(name, "foldl"):
        return _fold(fn, elems, initializer, False, "foldl", parallel_iterations, back_prop, swap_memory)


def foldr(fn: Any, elems: Any, initializer: Any = None, parallel_iterations: int = 10, back_prop: bool = True,
          swap_memory: bool = False, name: str | None = None) -> Any:
    """Like foldl, from the last element to the first."""
    with _name_scope(name, "foldr"):
        return _fold(fn, elems, initializer, True, "foldr", parallel_iterations, back_prop, swap_memory)
