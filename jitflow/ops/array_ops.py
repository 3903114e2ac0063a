"""Array ops: placeholders, identity, shapes, reshapes, fills and friends."""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape, as_shape, known_dims, shape_str
from jitflow.ir import expr as E
from jitflow.ir.formula import Elementwise
from jitflow.ops.constant_op import constant, convert_to_tensor, holds_tensor
from jitflow.ops.op_util import const_value, make_op, out, shape_dims

# This module defines tf.range, tf.slice and friends; the builtins stay reachable under these names.
builtins_range = builtins.range
_pyslice = builtins.slice

# -- placeholders ----------------------------------------------------------------------------------------


def _placeholder_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    shape = op.attrs["shape"]
    dims = shape.as_tuple()
    raise InvalidArgumentError(
        op.node_def, op,
        f"You must feed a value for placeholder tensor '{op.name}' with dtype {op.attrs['dtype'].name}"
        + (f" and shape {shape_str(dims)}" if dims is not None else ""))


registry.register_op("Placeholder", lambda op: [(op.attrs["dtype"], op.attrs["shape"])], _placeholder_kernel,
                     registry.SOURCE, structural=True)


def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor whose value must be fed to `Session.run`."""
    dt = dtypes.as_dtype(dtype)
    return out(get_default_graph().create_op("Placeholder", [], {"dtype": dt, "shape": as_shape(shape)},
                                             name=name or "Placeholder"))


def _pwd_infer(op: Operation) -> list:
    return [(op.inputs[0].dtype, op.attrs["shape"])]


registry.register_op("PlaceholderWithDefault", _pwd_infer, lambda ctx, op, ins: ins[0], registry.OPAQUE,
                     structural=True)


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """A placeholder that takes `input`'s value when not fed."""
    x = convert_to_tensor(input)
    shp = as_shape(shape)
    if not shp.is_compatible_with(x.shape):
        raise ValueError(f"Shapes {shp} and {x.shape} are incompatible")
    return out(make_op("PlaceholderWithDefault", [x], {"dtype": x.dtype, "shape": shp},
                       name=name or "PlaceholderWithDefault"))


# -- identity ------------------------------------------------------------------------------------------------

# Structural (a slot copy on their own), with a formula for when the compiler fuses one into its producer's
# kernel (`compiler/cluster.py`: a clipped gradient's Identity between its Mul and the optimizer update).
_SAME = Elementwise(lambda x: x, E.SUPPORTED)
registry.register_op("Identity", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: ins[0], registry.OPAQUE, structural=True, lowering=_SAME)
registry.register_op("StopGradient", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: ins[0], registry.OPAQUE, not_differentiable=True, structural=True,
                     lowering=_SAME)


def identity(input: Any, name: str | None = None) -> Tensor:
    """Returns a tensor with the same value (a new op, e.g. to attach control dependencies)."""
    x = convert_to_tensor(input)
    return out(make_op("Identity", [x], {"T": x.dtype}, name=name or "Identity"))


def stop_gradient(input: Any, name: str | None = None) -> Tensor:
    """Identity whose gradient is zero (gradients stop here)."""
    x = convert_to_tensor(input)
    return out(make_op("StopGradient", [x], {"T": x.dtype}, name=name or "StopGradient"))


# -- shape queries ----------------------------------------------------------------------------------------

registry.register_op("Shape", lambda op: [(op.attrs["out_type"], TensorShape([op.inputs[0].shape.ndims]))],
                     lambda ctx, op, ins: np.array(np.shape(ins[0]), dtype=op.attrs["out_type"].np),
                     registry.OPAQUE, not_differentiable=True, structural=True)
registry.register_op("Size", lambda op: [(op.attrs["out_type"], TensorShape([]))],
                     lambda ctx, op, ins: np.array(np.size(ins[0]), dtype=op.attrs["out_type"].np),
                     registry.OPAQUE, not_differentiable=True, structural=True)
registry.register_op("Rank", lambda op: [(dtypes.int32, TensorShape([]))],
                     lambda ctx, op, ins: np.array(np.ndim(ins[0]), dtype=np.int32), registry.OPAQUE,
                     not_differentiable=True, structural=True)


def shape(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    """The dynamic shape of `input` as a 1-D int tensor."""
    x = convert_to_tensor(input)
    return out(make_op("Shape", [x], {"out_type": dtypes.as_dtype(out_type), "T": x.dtype},
                       name=name or "Shape"))


def size(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    x = convert_to_tensor(input)
    return out(make_op("Size", [x], {"out_type": dtypes.as_dtype(out_type), "T": x.dtype},
                       name=name or "Size"))


def rank(input: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    return out(make_op("Rank", [x], {"T": x.dtype}, name=name or "Rank"))


# -- reshape -------------------------------------------------------------------------------------------------


def _reshape_target(op: Operation) -> list[int | None] | None:
    return shape_dims(op.inputs[1])


def _reshape_infer(op: Operation) -> list:
    x = op.inputs[0]
    tgt = _reshape_target(op)
    if tgt is None:
        return [(x.dtype, TensorShape(None))]
    if sum(1 for d in tgt if d == -1) > 1:
        raise ValueError(f"Cannot infer multiple unknown dimensions in shape {tgt} for '{op.name}'")
    n = x.shape.num_elements()
    known = [d for d in tgt if d is not None and d != -1]
    prod = int(np.prod(known)) if known else 1
    if -1 in tgt:
        fill = None
        if n is not None and None not in tgt:
            if prod == 0 or n % prod:
                raise ValueError(f"Cannot reshape a tensor with {n} elements to shape {tgt} for '{op.name}' "
                                 f"(op: 'Reshape') with input shapes: {x.shape}")
            fill = n // prod
        return [(x.dtype, TensorShape([fill if d == -1 else d for d in tgt]))]
    if n is not None and None not in tgt and n != prod:
        raise ValueError(f"Cannot reshape a tensor with {n} elements to shape {tgt} ({prod} elements) for "
                         f"'{op.name}' (op: 'Reshape') with input shapes: {shape_str(x.shape.as_tuple())}, "
                         f"[{len(tgt)}].")
    return [(x.dtype, TensorShape(tgt))]


def _reshape_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, s = ins
    tgt = [int(d) for d in np.asarray(s).reshape(-1)]
    try:
        return np.reshape(x, tgt)
    except ValueError:
        raise InvalidArgumentError(None, None, f"Input to reshape is a tensor with {np.size(x)} values, but "
                                               f"the requested shape has {int(np.prod(tgt))}") from None


registry.register_op("Reshape", _reshape_infer, _reshape_kernel, registry.OPAQUE, structural=True)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    """Reshapes to `shape` (one dim may be -1)."""
    x = convert_to_tensor(tensor)
    s = convert_to_tensor(shape, dtype=dtypes.int32) if not isinstance(shape, Tensor) else shape
    return out(make_op("Reshape", [x, s], {"T": x.dtype}, name=name or "Reshape"))


# -- fills ---------------------------------------------------------------------------------------------------


def _fill_infer(op: Operation) -> list:
    return [(op.inputs[1].dtype, TensorShape(shape_dims(op.inputs[0])))]


def _fill_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    dims, value = ins
    if np.any(np.asarray(dims) < 0):
        raise InvalidArgumentError(None, None, f"Fill dimensions must be >= 0, got {list(dims)}")
    return np.full([int(d) for d in dims], value, dtype=op.outputs[0].dtype.np)


registry.register_op("Fill", _fill_infer, _fill_kernel, registry.OPAQUE)


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    """A tensor of shape `dims` filled with the scalar `value`."""
    d = convert_to_tensor(dims, dtype=dtypes.int32) if not isinstance(dims, Tensor) else dims
    v = convert_to_tensor(value)
    return out(make_op("Fill", [d, v], {"T": v.dtype}, name=name or "Fill"))


def _filled(shape: Any, dtype: Any, value: int, name: str) -> Tensor:
    dt = dtypes.as_dtype(dtype)
    if isinstance(shape, (list, tuple)) and holds_tensor(shape):
        shape = convert_to_tensor(shape, dtype=dtypes.int32)  # packed, as TF does
    if isinstance(shape, Tensor):
        with _name_scope(name):
            return fill(shape, constant(value, dtype=dt), name=name)
    shp = as_shape(shape)
    if not shp.is_fully_defined():
        raise ValueError(f"Shape {shp} must be fully defined or a tensor")
    if (shp.num_elements() or 0) < 1000 or dt is dtypes.string:
        return constant(np.full(shp.as_list(), value, dtype=dt.np if dt is not dtypes.string else object),
                        dtype=dt, name=name)
    # Large shapes become Fill ops, as in TF: no big constant in the graph (or in a saved meta graph).
    with _name_scope(name) as scope:
        dims = constant(np.array(shp.as_list(), dtype=np.int32), name="shape_as_tensor")
        return fill(dims, constant(value, dtype=dt), name=scope)


def zeros(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    """A tensor of zeros."""
    return _filled(shape, dtype, 0, name or "zeros")


def ones(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    """A tensor of ones."""
    return _filled(shape, dtype, 1, name or "ones")


registry.register_op("ZerosLike", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: np.zeros_like(ins[0]), registry.ELEMENTWISE,
                     not_differentiable=True, lowering=Elementwise(lambda x: 0, E.SUPPORTED))
registry.register_op("OnesLike", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: np.ones_like(ins[0]), registry.ELEMENTWISE,
                     not_differentiable=True, lowering=Elementwise(lambda x: 1, E.SUPPORTED))


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None, optimize: bool = True) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        from jitflow.ops.math_ops import cast

        x = cast(x, dtype)
    return out(make_op("ZerosLike", [x], {"T": x.dtype}, name=name or "zeros_like"))


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None, optimize: bool = True) -> Tensor:
    x = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not x.dtype:
        from jitflow.ops.math_ops import cast

        x = cast(x, dtype)
    return out(make_op("OnesLike", [x], {"T": x.dtype}, name=name or "ones_like"))


# -- helpers for ops whose shape-like inputs are tensors -------------------------------------------------


def _ints(t: Tensor) -> list[int] | None:
    """The build-time value of an int tensor as a flat list, or None if it is only known at run time."""
    v = const_value(t)
    return None if v is None else [int(d) for d in np.asarray(v).reshape(-1)]


def _int_input(value: Any, name: str = "Const") -> Tensor:
    """An int32 (or the given int tensor) input for shape-like arguments."""
    if isinstance(value, Tensor) or hasattr(value, "_as_tensor"):
        t = convert_to_tensor(value)
        if not t.dtype.is_integer:
            raise TypeError(f"Value passed to parameter '{name}' has DataType {t.dtype.name} not in list of "
                            "allowed values: int32, int64")
        return t
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and arr.size == 0):
        raise TypeError(f"Expected int32 for argument '{name}', got {value!r} of type "
                        f"'{type(value).__name__}' instead.")
    dt = dtypes.int64 if arr.size and (arr.max() > 2**31 - 1 or arr.min() < -2**31) else dtypes.int32
    return constant(arr.astype(dt.np), dtype=dt, name=name)


def _dims(t: Tensor) -> tuple[int | None, ...] | None:
    return t.shape.as_tuple()


def _norm_axis(axis: int, rank: int | None, op_name: str) -> int:
    """`axis` made non-negative for a tensor of `rank`; ValueError when out of range."""
    if rank is None:
        return axis
    n = rank
    if not -n <= axis < n:
        raise ValueError(f"axis {axis} is out of range [{-n}, {n}) for '{op_name}' with an input of rank {rank}")
    return axis % n if n else 0


def _scalar_axis(ins_value: Any) -> int:
    return int(np.asarray(ins_value).reshape(-1)[0])


def _check_axis_rt(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < ndim:
        raise InvalidArgumentError(None, None, f"Expected {what} in the range [{-ndim}, {ndim}), but got {axis}")
    return axis % ndim


# -- expand_dims / squeeze ------------------------------------------------------------------------------


def _expand_dims_infer(op: Operation) -> list:
    x = op.inputs[0]
    dims = _dims(x)
    ax = _ints(op.inputs[1])
    if dims is None or ax is None:
        return [(x.dtype, TensorShape(None if dims is None else [None] * (len(dims) + 1)))]
    if len(ax) != 1:
        raise ValueError(f"'dim' input must be a tensor with a single value for '{op.name}' (op: 'ExpandDims')")
    a = ax[0]
    if not -len(dims) - 1 <= a <= len(dims):
        raise ValueError(f"dim {a} not in the interval [{-len(dims) - 1}, {len(dims)}] for '{op.name}' "
                         "(op: 'ExpandDims')")
    a = a % (len(dims) + 1)
    return [(x.dtype, TensorShape(list(dims[:a]) + [1] + list(dims[a:])))]


def _expand_dims_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, a = ins
    a = _scalar_axis(a)
    if not -x.ndim - 1 <= a <= x.ndim:
        raise InvalidArgumentError(None, None, f"Tried to expand dim index {a} for tensor with {x.ndim} "
                                               "dimensions.")
    return np.expand_dims(x, a % (x.ndim + 1))


registry.register_op("ExpandDims", _expand_dims_infer, _expand_dims_kernel, registry.OPAQUE, structural=True)


def expand_dims(input: Any, axis: Any = None, name: str | None = None, dim: Any = None) -> Tensor:
    """Inserts a dimension of size 1 at `axis`."""
    if axis is None:
        axis = dim
    elif dim is not None:
        raise ValueError("Cannot specify both 'axis' and 'dim'")
    if axis is None:
        raise ValueError("Must specify an axis argument to tf.expand_dims()")
    x = convert_to_tensor(input)
    return out(make_op("ExpandDims", [x, _int_input(axis, "dim")], {"T": x.dtype}, name=name or "ExpandDims"))


def _squeeze_infer(op: Operation) -> list:
    x = op.inputs[0]
    dims = _dims(x)
    axes = op.attrs["squeeze_dims"]
    if dims is None:
        return [(x.dtype, TensorShape(None))]
    r = len(dims)
    if not axes:
        if any(d is None for d in dims):
            return [(x.dtype, TensorShape(None))]
        return [(x.dtype, TensorShape([d for d in dims if d != 1]))]
    norm = set()
    for a in axes:
        if not -r <= a < r:
            raise ValueError(f"Tried to squeeze dim index {a} for tensor with {r} dimensions. for '{op.name}' "
                             "(op: 'Squeeze')")
        a %= r
        if dims[a] is not None and dims[a] != 1:
            raise ValueError(f"Can not squeeze dim[{a}], expected a dimension of 1, got {dims[a]} for "
                             f"'{op.name}' (op: 'Squeeze') with input shapes: {shape_str(dims)}.")
        norm.add(a)
    return [(x.dtype, TensorShape([d for i, d in enumerate(dims) if i not in norm]))]


def _squeeze_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = ins[0]
    axes = op.attrs["squeeze_dims"]
    if not axes:
        return np.squeeze(x)
    norm = tuple(sorted({a % x.ndim for a in axes}))
    for a in norm:
        if x.shape[a] != 1:
            raise InvalidArgumentError(None, None, f"Can not squeeze dim[{a}], expected a dimension of 1, got "
                                                   f"{x.shape[a]}")
    return np.squeeze(x, axis=norm)


registry.register_op("Squeeze", _squeeze_infer, _squeeze_kernel, registry.OPAQUE, structural=True)


def squeeze(input: Any, axis: Any = None, name: str | None = None, squeeze_dims: Any = None) -> Tensor:
    """Removes dimensions of size 1 (all of them, or those in `axis`)."""
    if axis is None:
        axis = squeeze_dims
    if isinstance(axis, int):
        axis = [axis]
    x = convert_to_tensor(input)
    return out(make_op("Squeeze", [x], {"squeeze_dims": [int(a) for a in axis or []], "T": x.dtype},
                       name=name or "Squeeze"))


# -- transpose -----------------------------------------------------------------------------------------------


def _transpose_infer(op: Operation) -> list:
    x = op.inputs[0]
    dims = _dims(x)
    perm = _ints(op.inputs[1])
    if perm is None:
        n = _dims(op.inputs[1])
        r = dims if dims is not None else (None if n is None or n[0] is None else [None] * n[0])
        return [(x.dtype, TensorShape(None if r is None else [None] * len(r)))]
    if dims is not None and len(perm) != len(dims):
        raise ValueError(f"Dimension must be {len(dims)} but is {len(perm)} for '{op.name}' (op: 'Transpose') "
                         f"with input shapes: {shape_str(dims)}, [{len(perm)}].")
    if sorted(p % len(perm) if -len(perm) <= p < len(perm) else -1 for p in perm) != list(builtins_range(len(perm))):
        raise ValueError(f"{perm} is not a valid permutation for '{op.name}' (op: 'Transpose')")
    if dims is None:
        return [(x.dtype, TensorShape([None] * len(perm)))]
    return [(x.dtype, TensorShape([dims[p] for p in perm]))]


def _transpose_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, p = ins
    perm = [int(d) for d in np.asarray(p).reshape(-1)]
    if len(perm) != x.ndim or sorted(q % x.ndim if -x.ndim <= q < x.ndim else -1 for q in perm) != \
            list(builtins_range(x.ndim)):
        raise InvalidArgumentError(None, None, f"transpose expects a vector of size {x.ndim}. But input(1) is "
                                               f"a vector of size {len(perm)}: {perm} is not a permutation")
    return np.transpose(x, perm)


registry.register_op("Transpose", _transpose_infer, _transpose_kernel, registry.OPAQUE)
registry.register_op("InvertPermutation", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)],
                     lambda ctx, op, ins: np.argsort(ins[0]).astype(ins[0].dtype), registry.OPAQUE,
                     not_differentiable=True)


def invert_permutation(x: Any, name: str | None = None) -> Tensor:
    """The inverse permutation of the 1-D int tensor `x`."""
    t = _int_input(x, "x")
    return out(make_op("InvertPermutation", [t], {"T": t.dtype}, name=name or "InvertPermutation"))


def transpose(a: Any, perm: Any = None, name: str = "transpose", conjugate: bool = False) -> Tensor:
    """Permutes the dimensions of `a` (reverses them when `perm` is None)."""
    x = convert_to_tensor(a)
    with _name_scope(name) as scope:
        if perm is None:
            r = x.shape.ndims
            if r is not None:
                p = _int_input(list(builtins_range(r - 1, -1, -1)), "perm")
            else:
                from jitflow.ops import math_ops

                rk = rank(x)
                p = math_ops.subtract(math_ops.subtract(rk, 1), range(0, rk, 1))
        else:
            p = _int_input(perm, "perm")
        return out(make_op("Transpose", [x, p], {"T": x.dtype, "Tperm": p.dtype}, name=scope))


# -- concat / stack / unstack ------------------------------------------------------------------------------


def _concat_infer(op: Operation) -> list:
    values = op.inputs[:-1]
    ax = _ints(op.inputs[-1])
    dt = values[0].dtype
    ranks = {v.shape.ndims for v in values if v.shape.ndims is not None}
    if len(ranks) > 1:
        a, b = sorted(ranks)[:2]
        raise ValueError(f"Shape must be rank {a} but is rank {b} for '{op.name}' (op: 'ConcatV2') with input "
                         f"shapes: {', '.join(shape_str(_dims(v)) for v in values)}.")
    if not ranks:
        return [(dt, TensorShape(None))]
    r = ranks.pop()
    if ax is None:
        return [(dt, TensorShape([None] * r))]
    if r == 0:
        raise ValueError(f"Can't concatenate scalars (use tf.stack instead) for '{op.name}' (op: 'ConcatV2')")
    a = ax[0]
    if not -r <= a < r:
        raise ValueError(f"ConcatOp : Expected concatenating dimensions in the range [{-r}, {r}), but got {a} "
                         f"for '{op.name}'")
    a %= r
    res: list[int | None] = [None] * r
    total: int | None = 0
    for v in values:
        dims = _dims(v)
        if dims is None:
            total = None
            continue
        for i, d in enumerate(dims):
            if i == a:
                continue
            if res[i] is not None and d is not None and res[i] != d:
                raise ValueError(f"Dimension {i} in both shapes must be equal, but are {res[i]} and {d}. Shapes "
                                 f"are {shape_str(_dims(values[0]))} and {shape_str(dims)}. for '{op.name}' "
                                 "(op: 'ConcatV2')")
            res[i] = res[i] if res[i] is not None else d
        along = dims[a]
        total = None if total is None or along is None else total + along
    res[a] = total
    return [(dt, TensorShape(res))]


def _concat_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    values = ins[:-1]
    r = np.ndim(values[0])
    a = _check_axis_rt(_scalar_axis(ins[-1]), r, "concatenating dimensions")
    for v in values[1:]:
        if np.ndim(v) != r or any(v.shape[i] != values[0].shape[i] for i in builtins_range(r) if i != a):
            raise InvalidArgumentError(None, None, "ConcatOp : Dimensions of inputs should match: shape[0] = "
                                                   f"{shape_str(values[0].shape)} vs. shape[k] = "
                                                   f"{shape_str(v.shape)}")
    return np.concatenate(values, axis=a)


registry.register_op("ConcatV2", _concat_infer, _concat_kernel, registry.OPAQUE)


def concat(values: Any, axis: Any, name: str = "concat") -> Tensor:
    """Joins tensors along an existing dimension `axis`."""
    if not isinstance(values, (list, tuple)):
        values = [values]
    from jitflow.ops.op_util import same_dtype_inputs

    ts = same_dtype_inputs("ConcatV2", list(values), ("values",))
    if len(ts) == 1:
        with _name_scope(name) as scope:
            return identity(ts[0], name=scope)
    ax = _int_input(axis, "axis")
    return out(make_op("ConcatV2", ts + [ax], {"N": len(ts), "T": ts[0].dtype, "Tidx": ax.dtype},
                       name=name))


def _pack_infer(op: Operation) -> list:
    vals = op.inputs
    shape = TensorShape(None)
    for v in vals:
        if not shape.is_compatible_with(v.shape):
            raise ValueError(f"Shapes must be equal rank, but are {shape.ndims} and {v.shape.ndims} for "
                             f"'{op.name}' (op: 'Pack') with input shapes: "
                             f"{', '.join(shape_str(_dims(t)) for t in vals)}." if shape.ndims != v.shape.ndims
                             else f"Shapes {shape} and {v.shape} are not compatible for '{op.name}' (op: 'Pack')")
        shape = shape.merge_with(v.shape)
    dims = shape.as_tuple()
    if dims is None:
        return [(vals[0].dtype, TensorShape(None))]
    a = op.attrs["axis"]
    r = len(dims) + 1
    if not -r <= a < r:
        raise ValueError(f"Argument 'axis' = {a} not in range [{-r}, {r}) for '{op.name}' (op: 'Pack')")
    a %= r
    return [(vals[0].dtype, TensorShape(list(dims[:a]) + [len(vals)] + list(dims[a:])))]


def _pack_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    s0 = np.shape(ins[0])
    for v in ins[1:]:
        if np.shape(v) != s0:
            raise InvalidArgumentError(None, None, f"Shapes of all inputs must match: values[0].shape = "
                                                   f"{shape_str(s0)} != values[k].shape = {shape_str(np.shape(v))}")
    return np.stack(ins, axis=op.attrs["axis"]).astype(op.outputs[0].dtype.np, copy=False)


registry.register_op("Pack", _pack_infer, _pack_kernel, registry.OPAQUE)


def stack(values: Any, axis: int = 0, name: str = "stack") -> Tensor:
    """Stacks rank-R tensors into one rank-(R+1) tensor along a new dimension `axis`."""
    from jitflow.ops.op_util import same_dtype_inputs

    vals = list(values) if isinstance(values, (list, tuple)) else [values]
    if not vals:
        raise ValueError("tf.stack needs at least one value")
    if all(isinstance(v, (int, float)) for v in vals):
        return constant(vals, name=name)  # Python scalars: one constant, with TF's default dtypes
    ts = same_dtype_inputs("Pack", vals, ("values",))
    return out(make_op("Pack", ts, {"axis": int(axis), "N": len(ts), "T": ts[0].dtype}, name=name))


def _unpack_infer(op: Operation) -> list:
    x = op.inputs[0]
    dims = _dims(x)
    num, a = op.attrs["num"], op.attrs["axis"]
    if dims is None:
        return [(x.dtype, TensorShape(None))] * num
    a = a % len(dims)
    if dims[a] is not None and dims[a] != num:
        raise ValueError(f"Dimension {a} has {dims[a]} elements, not {num} for '{op.name}' (op: 'Unpack')")
    sub = TensorShape(list(dims[:a]) + list(dims[a + 1:]))
    return [(x.dtype, sub)] * num


def _unpack_kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    x = ins[0]
    a = op.attrs["axis"] % x.ndim
    if x.shape[a] != op.attrs["num"]:
        raise InvalidArgumentError(None, None, f"Input shape axis {a} must equal {op.attrs['num']}, got shape "
                                               f"{shape_str(x.shape)}")
    return tuple(np.take(x, i, axis=a) for i in builtins_range(op.attrs["num"]))


registry.register_op("Unpack", _unpack_infer, _unpack_kernel, registry.OPAQUE)


def unstack(value: Any, num: int | None = None, axis: int = 0, name: str = "unstack") -> list[Tensor]:
    """Splits `value` along `axis` into a list of tensors of one rank less."""
    x = convert_to_tensor(value)
    dims = _dims(x)
    if dims is not None:
        if not -len(dims) <= axis < len(dims):
            raise ValueError(f"axis = {axis} not in [{-len(dims)}, {len(dims)})")
        axis %= len(dims)
    if num is None:
        along = None if dims is None else dims[axis]
        if along is None:
            raise ValueError(f"Cannot infer num from shape {x.shape}")
        num = along
    return list(make_op("Unpack", [x], {"num": int(num), "axis": int(axis), "T": x.dtype}, name=name).outputs)


# -- split --------------------------------------------------------------------------------------------------------


def _split_infer(op: Operation) -> list:
    x = op.inputs[1]
    n = op.attrs["num_split"]
    dims = _dims(x)
    ax = _ints(op.inputs[0])
    if dims is None or ax is None:
        return [(x.dtype, TensorShape(None if dims is None else [None] * len(dims)))] * n
    a = _norm_axis(ax[0], len(dims), op.name)
    d = dims[a]
    if d is not None and d % n:
        raise ValueError(f"Dimension size must be evenly divisible by {n} but is {d} for '{op.name}' "
                         f"(op: 'Split') with input shapes: [], {shape_str(dims)}.")
    res = list(dims)
    res[a] = None if d is None else d // n
    return [(x.dtype, TensorShape(res))] * n


def _split_kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    a, x = ins
    a = _check_axis_rt(_scalar_axis(a), x.ndim, "split dimension")
    n = op.attrs["num_split"]
    if x.shape[a] % n:
        raise InvalidArgumentError(None, None, f"Number of ways to split should evenly divide the split "
                                               f"dimension, but got split_dim {a} (size = {x.shape[a]}) and "
                                               f"num_split {n}")
    return tuple(np.split(x, n, axis=a))


def _splitv_sizes(sizes: list[int], total: int | None, op_name: str) -> list[int | None]:
    if sum(1 for s in sizes if s == -1) > 1:
        raise ValueError(f"Only one dimensions can have a value of -1. Second one found at dimension "
                         f"{[i for i, s in enumerate(sizes) if s == -1][1]} for '{op_name}'")
    known = sum(s for s in sizes if s != -1)
    if total is None:
        return [None if s == -1 else s for s in sizes]
    if -1 in sizes:
        if known > total:
            raise ValueError(f"Determined shape must either match input shape along split_dim exactly if "
                             f"fully specified, or be less than the size of the input along split_dim if not "
                             f"fully specified.  Got: {known} for '{op_name}'")
        return [total - known if s == -1 else s for s in sizes]
    if known != total:
        raise ValueError(f"Determined shape must either match input shape along split_dim exactly if fully "
                         f"specified, or be less than the size of the input along split_dim if not fully "
                         f"specified.  Got: {known} for '{op_name}'")
    return list(sizes)


def _splitv_infer(op: Operation) -> list:
    x, s, ax_t = op.inputs
    n = op.attrs["num_split"]
    dims = _dims(x)
    ax = _ints(ax_t)
    sizes = _ints(s)
    if dims is None or ax is None:
        return [(x.dtype, TensorShape(None if dims is None else [None] * len(dims)))] * n
    a = _norm_axis(ax[0], len(dims), op.name)
    per = _splitv_sizes(sizes, dims[a], op.name) if sizes is not None else [None] * n
    outs = []
    for p in per:
        r = list(dims)
        r[a] = p
        outs.append((x.dtype, TensorShape(r)))
    return outs


def _splitv_kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    x, s, a = ins
    a = _check_axis_rt(_scalar_axis(a), x.ndim, "split dimension")
    sizes = [int(v) for v in np.asarray(s).reshape(-1)]
    try:
        per = _splitv_sizes(sizes, x.shape[a], op.name)
    except ValueError as e:
        raise InvalidArgumentError(None, None, str(e)) from None
    if any(p is None or p < 0 for p in per):
        raise InvalidArgumentError(None, None, f"Split sizes must be non-negative, got {sizes}")
    cuts = np.cumsum([int(p) for p in per[:-1] if p is not None])
    return tuple(np.split(x, cuts, axis=a))


registry.register_op("Split", _split_infer, _split_kernel, registry.OPAQUE)
registry.register_op("SplitV", _splitv_infer, _splitv_kernel, registry.OPAQUE)


def split(value: Any, num_or_size_splits: Any, axis: Any = 0, num: int | None = None,
          name: str = "split") -> list[Tensor]:
    """Splits `value` along `axis` into `num_or_size_splits` equal parts, or parts of the given sizes."""
    x = convert_to_tensor(value)
    ax = _int_input(axis, "axis")
    if isinstance(num_or_size_splits, (int, np.integer)) and not isinstance(num_or_size_splits, bool):
        n = int(num_or_size_splits)
        if n <= 0:
            raise ValueError(f"num_split must be >= 1, got {n}")
        return list(make_op("Split", [ax, x], {"num_split": n, "T": x.dtype}, name=name).outputs)
    sizes = _int_input(num_or_size_splits, "size_splits")
    sdims = _dims(sizes)
    if num is None:
        if sdims is None or len(sdims) != 1 or sdims[0] is None:
            raise ValueError(f"Cannot infer num from shape {sizes.shape}")
        num = sdims[0]
    return list(make_op("SplitV", [x, sizes, ax], {"num_split": int(num), "T": x.dtype,
                                                    "Tlen": sizes.dtype}, name=name).outputs)


# -- slice ------------------------------------------------------------------------------------------------------


def _slice_infer(op: Operation) -> list:
    x, b, s = op.inputs
    dims = _dims(x)
    begin, size = _ints(b), _ints(s)
    if dims is None:
        bd = _dims(b)
        r = None if bd is None or not bd or bd[0] is None else bd[0]
        if size is None or r is None:
            return [(x.dtype, TensorShape(None if r is None else [None] * r))]
    if size is None:
        return [(x.dtype, TensorShape([None] * len(dims)))]  # type: ignore[arg-type]
    if dims is not None and len(size) != len(dims):
        raise ValueError(f"Shape must be rank {len(dims)} but is rank {len(size)} for '{op.name}' (op: 'Slice') "
                         f"with input shapes: {shape_str(dims)}, [{len(size)}], [{len(size)}].")
    res: list[int | None] = []
    for i, sz in enumerate(size):
        d = dims[i] if dims is not None else None
        bg = begin[i] if begin is not None else None
        if sz < -1:
            raise ValueError(f"Expected size[{i}] >= -1, got {sz} for '{op.name}'")
        res.append((None if d is None or bg is None else d - bg) if sz == -1 else sz)
        if d is not None and bg is not None:
            end = d if sz == -1 else bg + sz
            if bg < 0 or end > d:
                raise ValueError(f"Expected begin[{i}] in [0, {d}] and size[{i}] in [0, {d - bg}], but got "
                                 f"begin {bg} and size {sz} for '{op.name}' (op: 'Slice')")
    return [(x.dtype, TensorShape(res))]


def _slice_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, b, s = ins
    begin = [int(v) for v in np.asarray(b).reshape(-1)]
    size = [int(v) for v in np.asarray(s).reshape(-1)]
    if len(begin) != x.ndim or len(size) != x.ndim:
        raise InvalidArgumentError(None, None, f"Expected begin and size arguments to be 1-D tensors of size "
                                               f"{x.ndim}, but got shapes [{len(begin)}] and [{len(size)}] "
                                               "instead.")
    idx = []
    for i, (bg, sz) in enumerate(zip(begin, size)):
        d = x.shape[i]
        if sz == -1:
            sz = d - bg
        if bg < 0 or bg > d or sz < 0 or bg + sz > d:
            raise InvalidArgumentError(None, None, f"Expected begin[{i}] in [0, {d}], but got {bg}, and size[{i}] "
                                                   f"in [0, {d - bg}], but got {sz}")
        idx.append(_pyslice(bg, bg + sz))
    return x[tuple(idx)]


registry.register_op("Slice", _slice_infer, _slice_kernel, registry.OPAQUE)


def slice(input_: Any, begin: Any, size: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF's name
    """The part of `input_` starting at `begin` with extent `size` (-1: to the end)."""
    x = convert_to_tensor(input_)
    b = _int_input(begin, "begin")
    s = _int_input(size, "size")
    if s.dtype is not b.dtype:
        raise TypeError(f"Input 'size' of 'Slice' Op has type {s.dtype.name} that does not match type "
                        f"{b.dtype.name} of argument 'begin'.")
    return out(make_op("Slice", [x, b, s], {"T": x.dtype, "Index": b.dtype}, name=name or "Slice"))


# -- strided_slice and Python indexing ---------------------------------------------------------------------

newaxis = None  # tf.newaxis: a new dimension of size 1 in an index expression

_SS_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


def _dense_spec(n: int, attrs: dict[str, Any], rank: int) -> list[tuple[str, int, int]]:
    """Expands a sparse strided-slice spec of `n` entries over an input of `rank` dims.

    Returns (kind, entry, input_dim) per output position or consumed dim; kind is 'slice', 'shrink',
    'new' (a new axis, input_dim -1) or 'full' (a dim covered by the ellipsis).
    """
    ell, new, shrink = attrs["ellipsis_mask"], attrs["new_axis_mask"], attrs["shrink_axis_mask"]
    if bin(ell & ((1 << n) - 1)).count("1") > 1:
        raise ValueError("Multiple ellipses in slice spec not allowed")
    n_real = sum(1 for i in builtins_range(n) if not (ell >> i) & 1 and not (new >> i) & 1)
    if n_real > rank:
        raise ValueError(f"Index out of range using input dim {rank}; input has only {rank} dims")
    spec: list[tuple[str, int, int]] = []
    dim = 0
    for i in builtins_range(n):
        if (ell >> i) & 1:
            for _ in builtins_range(rank - n_real):
                spec.append(("full", i, dim))
                dim += 1
        elif (new >> i) & 1:
            spec.append(("new", i, -1))
        else:
            spec.append(("shrink" if (shrink >> i) & 1 else "slice", i, dim))
            dim += 1
    while dim < rank:  # an implicit ellipsis at the end
        spec.append(("full", n, dim))
        dim += 1
    return spec


def _strided_index(shape: tuple[int, ...], begin: list[int], end: list[int], strides: list[int],
                   attrs: dict[str, Any]) -> tuple[Any, ...]:
    """The NumPy index equivalent to a strided slice of a tensor of `shape`; InvalidArgumentError if bad."""
    if not len(begin) == len(end) == len(strides):
        raise InvalidArgumentError(None, None, f"Expected begin, end, and strides to be 1D equal size tensors, "
                                               f"but got shapes [{len(begin)}], [{len(end)}], [{len(strides)}]")
    try:
        spec = _dense_spec(len(begin), attrs, len(shape))
    except ValueError as e:
        raise InvalidArgumentError(None, None, str(e)) from None
    bm, em = attrs["begin_mask"], attrs["end_mask"]
    idx: list[Any] = []
    for kind, i, dim in spec:
        if kind == "full":
            idx.append(_pyslice(None))
        elif kind == "new":
            idx.append(None)
        else:
            s = strides[i]
            if s == 0:
                raise InvalidArgumentError(None, None, f"strides[{i}] must be non-zero")
            if kind == "shrink":
                d, b = shape[dim], begin[i]
                if not -d <= b < d:
                    raise InvalidArgumentError(None, None, f"slice index {b} of dimension {dim} out of bounds.")
                idx.append(b % d)
            else:
                idx.append(_pyslice(None if (bm >> i) & 1 else begin[i], None if (em >> i) & 1 else end[i], s))
    return tuple(idx)


def _strided_slice_infer(op: Operation) -> list:
    x, b, e, s = op.inputs
    dims = _dims(x)
    bd = _dims(b)
    if dims is None or bd is None or not bd or bd[0] is None:
        return [(x.dtype, TensorShape(None))]
    n = bd[0]
    begin, end, strides = _ints(b), _ints(e), _ints(s)
    spec = _dense_spec(n, op.attrs, len(dims))
    bm, em = op.attrs["begin_mask"], op.attrs["end_mask"]
    res: list[int | None] = []
    for kind, i, dim in spec:
        if kind == "new":
            res.append(1)
            continue
        d = dims[dim]
        if kind == "full":
            res.append(d)
            continue
        if strides is not None and strides[i] == 0:
            raise ValueError(f"strides[{i}] must be non-zero for '{op.name}' (op: 'StridedSlice')")
        if kind == "shrink":
            if d is not None and begin is not None and not -d <= begin[i] < d:
                raise ValueError(f"slice index {begin[i]} of dimension {dim} out of bounds. for '{op.name}' "
                                 f"(op: 'StridedSlice') with input shapes: {shape_str(dims)}")
            continue
        if d is None or strides is None or ((begin is None) and not (bm >> i) & 1) or \
                ((end is None) and not (em >> i) & 1):
            res.append(None)
            continue
        sl = _pyslice(None if (bm >> i) & 1 else begin[i],  # type: ignore[index]
                      None if (em >> i) & 1 else end[i], strides[i])  # type: ignore[index]
        res.append(len(builtins_range(*sl.indices(d))))
    return [(x.dtype, TensorShape(res))]


def _strided_slice_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, b, e, s = ins
    idx = _strided_index(x.shape, [int(v) for v in b], [int(v) for v in e], [int(v) for v in s], op.attrs)
    return np.asarray(x[idx])


def _strided_slice_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    shp, b, e, s, dy = ins
    z = np.zeros([int(d) for d in shp], dtype=op.outputs[0].dtype.np)
    idx = _strided_index(z.shape, [int(v) for v in b], [int(v) for v in e], [int(v) for v in s], op.attrs)
    z[idx] = dy
    return z


def _ssg_infer(op: Operation) -> list:
    v = _ints(op.inputs[0])
    return [(op.inputs[4].dtype, TensorShape(v) if v is not None else TensorShape(None))]


registry.register_op("StridedSlice", _strided_slice_infer, _strided_slice_kernel, registry.OPAQUE)
registry.register_op("StridedSliceGrad", _ssg_infer, _strided_slice_grad_kernel, registry.OPAQUE)


def strided_slice(input_: Any, begin: Any, end: Any, strides: Any = None, begin_mask: int = 0, end_mask: int = 0,
                  ellipsis_mask: int = 0, new_axis_mask: int = 0, shrink_axis_mask: int = 0, var: Any = None,
                  name: str | None = None) -> Tensor:
    """Strided slice of `input_` as NumPy's basic indexing, described by begin/end/strides and bit masks."""
    x = convert_to_tensor(input_)
    b = _int_input(begin, "begin")
    e = _int_input(end, "end")
    if strides is None:
        bd = _dims(b)
        if bd is None or len(bd) != 1 or bd[0] is None:
            raise ValueError("strided_slice: strides must be given when the length of begin is unknown")
        strides = [1] * bd[0]
    s = _int_input(strides, "strides")
    for t, nm in ((e, "end"), (s, "strides")):
        if t.dtype is not b.dtype:
            raise TypeError(f"Input '{nm}' of 'StridedSlice' Op has type {t.dtype.name} that does not match type "
                            f"{b.dtype.name} of argument 'begin'.")
    attrs: dict[str, Any] = {"begin_mask": int(begin_mask), "end_mask": int(end_mask),
                             "ellipsis_mask": int(ellipsis_mask), "new_axis_mask": int(new_axis_mask),
                             "shrink_axis_mask": int(shrink_axis_mask), "T": x.dtype, "Index": b.dtype}
    return out(make_op("StridedSlice", [x, b, e, s], attrs, name=name or "StridedSlice"))


def _index_value(v: Any) -> Any:
    """A scalar slice bound: a Python int or a scalar int tensor."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    t = convert_to_tensor(v) if isinstance(v, Tensor) or hasattr(v, "_as_tensor") else None
    if t is not None and t.dtype in (dtypes.int32, dtypes.int64) and (t.shape.ndims in (None, 0)):
        return t
    raise TypeError("Only integers, slices (`:`), ellipsis (`...`), tf.newaxis (`None`) and scalar "
                    f"tf.int32/tf.int64 tensors are valid indices, got {v!r}")


def _pack_indices(vals: list[Any]) -> Tensor:
    if all(isinstance(v, int) for v in vals):
        return _int_input(vals, "begin")
    dt = dtypes.int64 if any(isinstance(v, Tensor) and v.dtype is dtypes.int64 for v in vals) else dtypes.int32
    from jitflow.ops.math_ops import cast

    return stack([cast(v, dt) if isinstance(v, Tensor) else v for v in vals])


def _slice_helper(tensor: Tensor, key: Any) -> Tensor:
    """`tensor[key]`: ints, slices (with steps), negative indices, None/newaxis, Ellipsis, scalar int tensors."""
    if not isinstance(key, tuple):
        key = (key,)
    begin: list[Any] = []
    end: list[Any] = []
    strides: list[Any] = []
    masks = dict.fromkeys(_SS_MASKS, 0)
    for i, k in enumerate(key):
        if isinstance(k, _pyslice):
            step = 1 if k.step is None else _index_value(k.step)
            if isinstance(step, int) and step == 0:
                raise ValueError("slice step cannot be zero")
            if k.start is None:
                masks["begin_mask"] |= 1 << i
                begin.append(0)
            else:
                begin.append(_index_value(k.start))
            if k.stop is None:
                masks["end_mask"] |= 1 << i
                end.append(0)
            else:
                end.append(_index_value(k.stop))
            strides.append(step)
        elif k is Ellipsis:
            masks["ellipsis_mask"] |= 1 << i
            begin.append(0)
            end.append(0)
            strides.append(1)
        elif k is None:
            masks["new_axis_mask"] |= 1 << i
            begin.append(0)
            end.append(0)
            strides.append(1)
        else:
            v = _index_value(k)
            masks["shrink_axis_mask"] |= 1 << i
            begin.append(v)
            if isinstance(v, int):
                end.append(v + 1 if v != -1 else 0)
            else:
                from jitflow.ops.math_ops import add

                end.append(add(v, 1))
            strides.append(1)
    with _name_scope(None, "strided_slice") as scope:
        b, e, s = _pack_indices(begin), _pack_indices(end), _pack_indices(strides)
        if len({b.dtype, e.dtype, s.dtype}) > 1:
            from jitflow.ops.math_ops import cast

            b, e, s = (cast(t, dtypes.int64) for t in (b, e, s))
        return strided_slice(tensor, b, e, s, name=scope, **masks)


# -- gather ----------------------------------------------------------------------------------------------------


def _gather_infer(op: Operation) -> list:
    p, i, a = op.inputs
    pd, idd = _dims(p), _dims(i)
    ax = _ints(a)
    if pd is None or idd is None or ax is None:
        return [(p.dtype, TensorShape(None))]
    if len(pd) == 0:
        raise ValueError(f"Shape must be at least rank 1 but is rank 0 for '{op.name}' (op: 'GatherV2')")
    k = _norm_axis(ax[0], len(pd), op.name)
    return [(p.dtype, TensorShape(list(pd[:k]) + list(idd) + list(pd[k + 1:])))]


def _check_indices(idx: np.ndarray, n: int, what: str = "indices") -> None:
    bad = (idx < 0) | (idx >= n)
    if np.any(bad):
        pos = tuple(int(j) for j in np.argwhere(bad)[0])
        raise InvalidArgumentError(None, None, f"{what}[{','.join(map(str, pos))}] = {int(idx[pos])} is not in "
                                               f"[0, {n})")


def _gather_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    p, idx, a = ins
    k = _check_axis_rt(_scalar_axis(a), p.ndim, "axis")
    _check_indices(np.asarray(idx), p.shape[k])
    return np.take(p, idx, axis=k)


registry.register_op("GatherV2", _gather_infer, _gather_kernel, registry.OPAQUE)


def gather(params: Any, indices: Any, validate_indices: Any = None, name: str | None = None, axis: Any = None,
           batch_dims: int = 0) -> Tensor:
    """Slices of `params` along `axis` at `indices` (out-of-range indices are an error)."""
    if batch_dims != 0:
        raise ValueError("gather: only batch_dims=0 is supported")
    p = convert_to_tensor(params)
    i = _int_input(indices, "indices")
    a = _int_input(0 if axis is None else axis, "axis")
    return out(make_op("GatherV2", [p, i, a], {"Tparams": p.dtype, "Tindices": i.dtype, "Taxis": a.dtype,
                                               "batch_dims": 0}, name=name or "GatherV2"))


def _segment_sum_infer(op: Operation) -> list:
    d, ids, n = op.inputs
    dd, idd = _dims(d), _dims(ids)
    nv = _ints(n)
    if dd is None or idd is None:
        return [(d.dtype, TensorShape(None))]
    return [(d.dtype, TensorShape([nv[0] if nv else None] + list(dd[len(idd):])))]


def _segment_sum_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    data, ids, n = ins
    n = int(np.asarray(n).reshape(-1)[0])
    ids = np.asarray(ids)
    if data.shape[:ids.ndim] != ids.shape:
        raise InvalidArgumentError(None, None, f"data.shape = {shape_str(data.shape)} does not start with "
                                               f"segment_ids.shape = {shape_str(ids.shape)}")
    if np.any(ids >= n):
        _check_indices(np.where(ids < 0, 0, ids), n, "segment_ids")
    res = np.zeros((n,) + data.shape[ids.ndim:], dtype=data.dtype)
    keep = ids.reshape(-1) >= 0  # negative ids are dropped, as in TF
    np.add.at(res, ids.reshape(-1)[keep], data.reshape((-1,) + data.shape[ids.ndim:])[keep])
    return res


registry.register_op("UnsortedSegmentSum", _segment_sum_infer, _segment_sum_kernel, registry.OPAQUE,
                     library="segments")


def unsorted_segment_sum(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """Sums the slices of `data` into `num_segments` rows by `segment_ids`."""
    d = convert_to_tensor(data)
    ids = _int_input(segment_ids, "segment_ids")
    n = _int_input(num_segments, "num_segments")
    return out(make_op("UnsortedSegmentSum", [d, ids, n], {"T": d.dtype, "Tindices": ids.dtype,
                                                           "Tnumsegments": n.dtype},
                       name=name or "UnsortedSegmentSum"))


# -- tile / pad / broadcast_to -------------------------------------------------------------------------------


def _tile_infer(op: Operation) -> list:
    x, m = op.inputs
    dims, mult = _dims(x), _ints(m)
    if dims is None:
        md = _dims(m)
        return [(x.dtype, TensorShape(None if md is None or md[0] is None else [None] * md[0]))]
    if mult is None:
        return [(x.dtype, TensorShape([None] * len(dims)))]
    if len(mult) != len(dims):
        raise ValueError(f"Shape must be rank {len(dims)} but is rank {len(mult)} for '{op.name}' (op: 'Tile') "
                         f"with input shapes: {shape_str(dims)}, [{len(mult)}]: multiples must have one entry "
                         "per dimension")
    if any(k < 0 for k in mult):
        raise ValueError(f"Expected multiples to be non-negative, got {mult} for '{op.name}'")
    return [(x.dtype, TensorShape([None if d is None else d * k for d, k in zip(dims, mult)]))]


def _tile_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, m = ins
    mult = [int(k) for k in np.asarray(m).reshape(-1)]
    if len(mult) != x.ndim or any(k < 0 for k in mult):
        raise InvalidArgumentError(None, None, f"Expected multiples argument to be a vector of length {x.ndim} "
                                               f"of non-negative values but got {mult}")
    return np.tile(x, mult) if x.ndim else np.array(x)


registry.register_op("Tile", _tile_infer, _tile_kernel, registry.OPAQUE)


def tile(input: Any, multiples: Any, name: str | None = None) -> Tensor:
    """Repeats `input` `multiples[i]` times along each dimension i."""
    x = convert_to_tensor(input)
    m = _int_input(multiples, "multiples")
    return out(make_op("Tile", [x, m], {"T": x.dtype, "Tmultiples": m.dtype}, name=name or "Tile"))


def _pad_infer(op: Operation) -> list:
    x, p = op.inputs[:2]
    dims = _dims(x)
    pv = const_value(p)
    pd = _dims(p)
    if pd is not None and (len(pd) != 2 or pd[1] not in (None, 2) or
                           (dims is not None and pd[0] not in (None, len(dims)))):
        raise ValueError(f"paddings must be a matrix with 2 columns and one row per dimension of the input: "
                         f"got shape {shape_str(pd)} for input of shape {shape_str(dims)} for '{op.name}' "
                         f"(op: '{op.type}')")
    if dims is None:
        return [(x.dtype, TensorShape(None if pd is None or pd[0] is None else [None] * pd[0]))]
    if pv is None:
        return [(x.dtype, TensorShape([None] * len(dims)))]
    pads = np.asarray(pv).reshape(-1, 2).tolist()
    mode = op.attrs.get("mode", "CONSTANT")
    for i, ((lo, hi), d) in enumerate(zip(pads, dims)):
        if lo < 0 or hi < 0:
            raise ValueError(f"Paddings must be non-negative: {lo} {hi} for '{op.name}'")
        limit = None if d is None else (d - 1 if mode == "REFLECT" else d)
        if mode != "CONSTANT" and limit is not None and (lo > limit or hi > limit):
            raise ValueError(f"paddings must be no greater than the dimension size: {lo}, {hi} greater than "
                             f"{limit} for '{op.name}' (op: 'MirrorPad') in dimension {i}")
    return [(x.dtype, TensorShape([None if d is None else d + lo + hi for (lo, hi), d in zip(pads, dims)]))]


def _pads_rt(x: np.ndarray, p: np.ndarray, mode: str) -> list[list[int]]:
    pads = np.asarray(p)
    if pads.shape != (x.ndim, 2):
        raise InvalidArgumentError(None, None, f"The first dimension of paddings must be the rank of inputs "
                                               f"[{x.ndim},2], got {shape_str(pads.shape)}")
    res = pads.astype(np.int64).tolist()
    for i, (lo, hi) in enumerate(res):
        if lo < 0 or hi < 0:
            raise InvalidArgumentError(None, None, f"Paddings must be non-negative: {lo} {hi}")
        limit = x.shape[i] - 1 if mode == "REFLECT" else x.shape[i]
        if mode != "CONSTANT" and (lo > limit or hi > limit):
            raise InvalidArgumentError(None, None, f"paddings must be no greater than the dimension size: {lo}, "
                                                   f"{hi} greater than {limit}")
    return res


def _pad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, p = ins[:2]
    cv = ins[2] if len(ins) > 2 else 0
    return np.pad(x, _pads_rt(x, p, "CONSTANT"), mode="constant", constant_values=cv)


def _mirror_pad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, p = ins
    mode = op.attrs["mode"]
    return np.pad(x, _pads_rt(x, p, mode), mode="reflect" if mode == "REFLECT" else "symmetric")


def _mirror_pad_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g, p = ins
    off = 1 if op.attrs["mode"] == "REFLECT" else 0
    arr = np.asarray(g)
    for ax, (lo, hi) in enumerate(np.asarray(p).astype(np.int64).tolist()):
        d = arr.shape[ax] - lo - hi
        core = np.take(arr, np.arange(lo, lo + d), axis=ax)
        core = np.moveaxis(core, ax, 0).copy()
        left = np.moveaxis(np.take(arr, np.arange(0, lo), axis=ax), ax, 0)
        right = np.moveaxis(np.take(arr, np.arange(lo + d, lo + d + hi), axis=ax), ax, 0)
        core[off:off + lo] += left[::-1]  # padded row lo-1-j mirrors row j+off
        core[d - off - hi:d - off] += right[::-1]
        arr = np.moveaxis(core, 0, ax)
    return np.ascontiguousarray(arr)


def _mirror_pad_grad_infer(op: Operation) -> list:
    g, p = op.inputs
    dims = _dims(g)
    pv = const_value(p)
    if dims is None or pv is None:
        return [(g.dtype, TensorShape(None if dims is None else [None] * len(dims)))]
    pads = np.asarray(pv).reshape(-1, 2).tolist()
    return [(g.dtype, TensorShape([None if d is None else d - lo - hi for (lo, hi), d in zip(pads, dims)]))]


registry.register_op("Pad", _pad_infer, _pad_kernel, registry.OPAQUE)
registry.register_op("PadV2", _pad_infer, _pad_kernel, registry.OPAQUE)
registry.register_op("MirrorPad", _pad_infer, _mirror_pad_kernel, registry.OPAQUE)
registry.register_op("MirrorPadGrad", _mirror_pad_grad_infer, _mirror_pad_grad_kernel, registry.OPAQUE)


def pad(tensor: Any, paddings: Any, mode: str = "CONSTANT", name: str | None = None,
        constant_values: Any = 0) -> Tensor:
    """Pads `tensor` by `paddings` ([rank, 2]: before/after per dim); mode CONSTANT, REFLECT or SYMMETRIC."""
    x = convert_to_tensor(tensor)
    p = _int_input(paddings, "paddings")
    m = str(mode).upper()
    if m == "CONSTANT":
        if isinstance(constant_values, (int, float)) and not isinstance(constant_values, bool) \
                and constant_values == 0:
            return out(make_op("Pad", [x, p], {"T": x.dtype, "Tpaddings": p.dtype}, name=name or "Pad"))
        cv = convert_to_tensor(constant_values, dtype=x.dtype)
        return out(make_op("PadV2", [x, p, cv], {"T": x.dtype, "Tpaddings": p.dtype}, name=name or "PadV2"))
    if m not in ("REFLECT", "SYMMETRIC"):
        raise ValueError(f"Unknown padding mode: {mode}")
    return out(make_op("MirrorPad", [x, p], {"T": x.dtype, "Tpaddings": p.dtype, "mode": m},
                       name=name or "MirrorPad"))


def _broadcast_to_infer(op: Operation) -> list:
    x, s = op.inputs
    tgt = _ints(s)
    dims = _dims(x)
    if tgt is None:
        sd = _dims(s)
        return [(x.dtype, TensorShape(None if sd is None or sd[0] is None else [None] * sd[0]))]
    if dims is not None:
        bad = len(dims) > len(tgt) or any(d is not None and d != 1 and d != t
                                          for d, t in zip(reversed(dims), reversed(tgt)))
        if bad:
            raise ValueError(f"Incompatible shapes: {shape_str(dims)} vs. {shape_str(tgt)} for '{op.name}' "
                             "(op: 'BroadcastTo')")
    return [(x.dtype, TensorShape(tgt))]


def _broadcast_to_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, s = ins
    tgt = [int(d) for d in np.asarray(s).reshape(-1)]
    try:
        return np.broadcast_to(x, tgt)
    except ValueError:
        raise InvalidArgumentError(None, None, f"Incompatible shapes: {shape_str(x.shape)} vs. "
                                               f"{shape_str(tgt)}") from None


registry.register_op("BroadcastTo", _broadcast_to_infer, _broadcast_to_kernel, registry.OPAQUE)


def broadcast_to(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """`input` broadcast (NumPy rules) to `shape`."""
    x = convert_to_tensor(input)
    s = _int_input(shape, "shape")
    return out(make_op("BroadcastTo", [x, s], {"T": x.dtype, "Tidx": s.dtype}, name=name or "BroadcastTo"))


# -- one_hot / range / linspace -------------------------------------------------------------------------------


def _one_hot_infer(op: Operation) -> list:
    idx, depth, on, off = op.inputs
    dims = _dims(idx)
    d = _ints(depth)
    dt = on.dtype
    if dims is None:
        return [(dt, TensorShape(None))]
    a = op.attrs["axis"]
    r = len(dims) + 1
    if not -1 <= a < r:
        raise ValueError(f"Expected axis to be -1 or between [0, {r}).  But received: {a} for '{op.name}'")
    a = a % r
    dd = None if d is None else d[0]
    if dd is not None and dd < 0:
        raise ValueError(f"depth must be non-negative, got: {dd} for '{op.name}'")
    return [(dt, TensorShape(list(dims[:a]) + [dd] + list(dims[a:])))]


def _one_hot_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    idx, depth, on, off = ins
    depth = int(depth)
    if depth < 0:
        raise InvalidArgumentError(None, None, f"depth must be non-negative, got: {depth}")
    idx = np.asarray(idx)
    hot = idx[..., None] == np.arange(depth, dtype=idx.dtype)  # out-of-range indices give all-off rows
    res = np.where(hot, on, off).astype(op.outputs[0].dtype.np, copy=False)
    a = op.attrs["axis"]
    return np.moveaxis(res, -1, a % res.ndim) if a != -1 else res


registry.register_op("OneHot", _one_hot_infer, _one_hot_kernel, registry.OPAQUE, not_differentiable=True)


def one_hot(indices: Any, depth: Any, on_value: Any = None, off_value: Any = None, axis: int | None = None,
            dtype: Any = None, name: str | None = None) -> Tensor:
    """One-hot vectors of length `depth` at `indices` (out-of-range indices give all `off_value`)."""
    with _name_scope(name, "one_hot") as scope:
        idx = _int_input(indices, "indices")
        if idx.dtype not in (dtypes.int32, dtypes.int64, dtypes.uint8):
            raise TypeError(f"Value passed to parameter 'indices' has DataType {idx.dtype.name} not in list of "
                            "allowed values: uint8, int32, int64")
        dt = dtypes.as_dtype(dtype) if dtype is not None else None
        for v in (on_value, off_value):
            if dt is None and v is not None and (isinstance(v, Tensor) or isinstance(v, (np.ndarray, np.generic))):
                dt = convert_to_tensor(v).dtype if isinstance(v, Tensor) else dtypes.as_dtype(np.asarray(v).dtype)
        if dt is None:
            dt = dtypes.float32 if on_value is None and off_value is None else \
                convert_to_tensor(on_value if on_value is not None else off_value).dtype
        on = convert_to_tensor(1 if on_value is None else on_value, dtype=dt, name="on_value")
        off = convert_to_tensor(0 if off_value is None else off_value, dtype=dt, name="off_value")
        dep = _int_input(depth, "depth")
        return out(make_op("OneHot", [idx, dep, on, off], {"axis": -1 if axis is None else int(axis), "T": dt,
                                                            "TI": idx.dtype}, name=scope))


def _range_infer(op: Operation) -> list:
    dt = op.attrs["Tidx"]
    vals = [const_value(t) for t in op.inputs]
    if any(v is None for v in vals):
        return [(dt, TensorShape([None]))]
    start, limit, delta = (np.asarray(v).item() for v in vals)
    if delta == 0:
        raise ValueError(f"Requires delta != 0: {delta} for '{op.name}' (op: 'Range')")
    n = int(np.ceil((limit - start) / delta))
    return [(dt, TensorShape([builtins.max(n, 0)]))]


def _range_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    start, limit, delta = (np.asarray(v).item() for v in ins)
    if delta == 0:
        raise InvalidArgumentError(None, None, f"Requires delta != 0: {delta}")
    if (delta > 0 and start > limit) or (delta < 0 and start < limit):
        raise InvalidArgumentError(None, None, f"Requires start <= limit when delta > 0: {start}/{limit}"
                                   if delta > 0 else f"Requires start >= limit when delta < 0: {start}/{limit}")
    return np.arange(start, limit, delta, dtype=op.attrs["Tidx"].np)


registry.register_op("Range", _range_infer, _range_kernel, registry.OPAQUE, not_differentiable=True)

_RANGE_ORDER = (dtypes.int32, dtypes.int64, dtypes.float32, dtypes.float64)


def range(start: Any, limit: Any = None, delta: Any = 1, dtype: Any = None,  # noqa: A001 - TF's name
          name: str = "range") -> Tensor:
    """[start, start + delta, ...) up to but excluding `limit` (`range(n)` counts from 0)."""
    if limit is None:
        start, limit = 0, start
    with _name_scope(name) as scope:
        if dtype is not None:
            dt = dtypes.as_dtype(dtype)
        else:
            kinds = []
            for v in (start, limit, delta):
                t = v if isinstance(v, Tensor) else None
                if t is None and hasattr(v, "_as_tensor"):
                    t = convert_to_tensor(v)
                kinds.append(t.dtype if t is not None else
                             (dtypes.float32 if isinstance(v, float) or np.asarray(v).dtype.kind == "f"
                              else dtypes.int32))
            dt = builtins.max(kinds, key=lambda d: _RANGE_ORDER.index(d) if d in _RANGE_ORDER else 0)
        from jitflow.ops.math_ops import cast

        ts = [cast(v, dt) if isinstance(v, Tensor) or hasattr(v, "_as_tensor") else
              convert_to_tensor(v, dtype=dt) for v in (start, limit, delta)]
        return out(make_op("Range", ts, {"Tidx": dt}, name=scope))


def _linspace_infer(op: Operation) -> list:
    n = _ints(op.inputs[2])
    if n is not None and n[0] <= 0:
        raise ValueError(f"Requires num > 0: {n[0]} for '{op.name}' (op: 'LinSpace')")
    return [(op.inputs[0].dtype, TensorShape([n[0] if n is not None else None]))]


def _linspace_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    start, stop, num = ins
    n = int(num)
    if n <= 0:
        raise InvalidArgumentError(None, None, f"Requires num > 0: {n}")
    return np.linspace(start, stop, n, dtype=op.outputs[0].dtype.np)


registry.register_op("LinSpace", _linspace_infer, _linspace_kernel, registry.OPAQUE, not_differentiable=True)


def linspace(start: Any, stop: Any, num: Any, name: str | None = None) -> Tensor:
    """`num` evenly spaced values from `start` to `stop` inclusive."""
    from jitflow.ops.op_util import FLOATS, check_dtype, same_dtype_inputs

    a, b = same_dtype_inputs("LinSpace", [start, stop], ("start", "stop"))
    check_dtype("LinSpace", a, FLOATS, "start")
    n = _int_input(num, "num")
    return out(make_op("LinSpace", [a, b, n], {"T": a.dtype, "Tidx": n.dtype}, name=name or "LinSpace"))


lin_space = linspace


# -- composites: boolean_mask, tensordot --------------------------------------------------------------------


def boolean_mask(tensor: Any, mask: Any, name: str = "boolean_mask", axis: Any = None) -> Tensor:
    """The entries of `tensor` where `mask` (a bool tensor over its leading dims) is True, flattened."""
    from jitflow.ops.math_ops import where as _where

    with _name_scope(name):
        x = convert_to_tensor(tensor)
        m = convert_to_tensor(mask)
        if m.dtype is not dtypes.bool:
            raise TypeError(f"mask must be a bool tensor, got {m.dtype.name}")
        k = m.shape.ndims
        a = 0 if axis is None else int(axis)
        dims = _dims(x)
        if k is None or dims is None:
            raise ValueError("Number of mask dimensions must be specified, even if some dimensions are None.")
        if k == 0:
            raise ValueError("mask cannot be scalar.")
        if not TensorShape(dims[a:a + k]).is_compatible_with(m.shape):
            raise ValueError(f"Shapes {TensorShape(dims[a:a + k])} and {m.shape} are incompatible")
        lead = list(dims[:a])
        rest = list(dims[a + k:])
        flat_dim: int | None = None
        if all(d is not None for d in dims[a:a + k]):
            flat_dim = int(np.prod(known_dims(dims[a:a + k])))
        if all(d is not None for d in lead + rest):
            new_shape: Any = lead + [-1 if flat_dim is None else flat_dim] + rest
        else:
            sx = shape(x)
            new_shape = concat([slice(sx, [0], [a]), [-1], slice(sx, [a + k], [-1])], 0)
        flat = reshape(x, new_shape)
        idx = squeeze(_where(reshape(m, [-1])), axis=[1])
        res = gather(flat, idx, axis=a)
        mv = const_value(m)
        if mv is not None and res.shape.ndims is not None:
            dims_r = list(res.shape.as_tuple() or ())
            dims_r[a] = int(np.count_nonzero(mv))
            res.set_shape(dims_r)
        return res


def _tensordot_axes(axes: Any, ra: int, rb: int) -> tuple[list[int], list[int]]:
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > ra or n > rb:
            raise ValueError(f"'axes' must be at most {min(ra, rb)} and non-negative, got {n}")
        return list(builtins_range(ra - n, ra)), list(builtins_range(n))
    if isinstance(axes, Tensor):
        v = const_value(axes)
        if v is None:
            raise ValueError("tensordot: axes must be known when the graph is built")
        axes = v.tolist()
    if len(axes) != 2:
        raise ValueError(f"'axes' must be an integer or have length 2, got {axes}")
    aa, bb = axes
    aa = [aa] if isinstance(aa, (int, np.integer)) else list(aa)
    bb = [bb] if isinstance(bb, (int, np.integer)) else list(bb)
    if len(aa) != len(bb):
        raise ValueError(f"Different number of contraction axes 'a' and 'b', {len(aa)} != {len(bb)}.")
    return [int(i) % ra for i in aa], [int(i) % rb for i in bb]


def tensordot(a: Any, b: Any, axes: Any, name: str | None = None) -> Tensor:
    """Contracts `a` and `b` over `axes` (an int: last n of a with first n of b; or two lists)."""
    from jitflow.ops.math_ops import matmul

    with _name_scope(name, "Tensordot"):
        x, y = convert_to_tensor(a), convert_to_tensor(b)
        dx, dy = _dims(x), _dims(y)
        if dx is None or dy is None:
            raise ValueError("tensordot needs inputs of known rank")
        ax, ay = _tensordot_axes(axes, len(dx), len(dy))
        for i, j in zip(ax, ay):
            if dx[i] is not None and dy[j] is not None and dx[i] != dy[j]:
                raise ValueError(f"Dimensions must be equal, but are {dx[i]} and {dy[j]} for 'Tensordot' "
                                 f"with input shapes: {shape_str(dx)}, {shape_str(dy)}.")
        fx = [i for i in builtins_range(len(dx)) if i not in ax]
        fy = [j for j in builtins_range(len(dy)) if j not in ay]
        xt = transpose(x, fx + ax) if fx + ax != list(builtins_range(len(dx))) else x
        yt = transpose(y, ay + fy) if ay + fy != list(builtins_range(len(dy))) else y
        k = [dx[i] if dx[i] is not None else dy[j] for i, j in zip(ax, ay)]
        kk = int(np.prod(known_dims(k))) if all(d is not None for d in k) else -1
        free_x = [dx[i] for i in fx]
        free_y = [dy[j] for j in fy]
        x2 = reshape(xt, [-1, kk] if kk != -1 or None in free_x else [int(np.prod(known_dims(free_x))), -1])
        if kk == -1 and None in free_x:
            raise ValueError("tensordot needs either the contracted or the free dimensions of 'a' to be known")
        y2 = reshape(yt, [kk if kk != -1 else -1, -1 if None in free_y else int(np.prod(known_dims(free_y)))])
        prod = matmul(x2, y2)
        if None not in free_x + free_y:
            return reshape(prod, free_x + free_y)
        sx, sy = shape(x), shape(y)
        parts = [gather(sx, fx), gather(sy, fy)]
        return reshape(prod, concat(parts, 0))


# -- reverse / gather_nd / scatter_nd / sequence_mask ------------------------------------------------------------


def _reverse_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, a = ins
    axes = [int(v) for v in np.asarray(a).reshape(-1)]
    if any(not -x.ndim <= v < x.ndim for v in axes) or len({v % max(x.ndim, 1) for v in axes}) != len(axes):
        raise InvalidArgumentError(None, None, f"'axis' must be distinct and in [{-x.ndim}, {x.ndim}), got {axes}")
    return np.flip(x, axis=tuple(axes)) if axes else x


def _reverse_infer(op: Operation) -> list:
    x = op.inputs[0]
    axes, r = _ints(op.inputs[1]), x.shape.ndims
    if axes is not None and r is not None:
        for v in axes:
            _norm_axis(v, r, op.name)
        if len({v % max(r, 1) for v in axes}) != len(axes):
            raise ValueError(f"'axis' must not have duplicates, got {axes} for '{op.name}' (op: 'ReverseV2')")
    return [(x.dtype, x.shape)]


registry.register_op("ReverseV2", _reverse_infer, _reverse_kernel, registry.OPAQUE)


def reverse(tensor: Any, axis: Any, name: str | None = None) -> Tensor:
    """`tensor` with the order of elements along each of `axis` reversed."""
    x = convert_to_tensor(tensor)
    a = _int_input([axis] if isinstance(axis, (int, np.integer)) else axis, "axis")
    return out(make_op("ReverseV2", [x, a], {"T": x.dtype, "Tidx": a.dtype}, name=name or "ReverseV2"))


reverse_v2 = reverse


def _nd_index(idx: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The NumPy index tuple of a [..., k] index array into the first k dims of `shape`; checked."""
    k = idx.shape[-1]
    if k > len(shape):
        raise InvalidArgumentError(None, None, f"index innermost dimension length must be <= params rank; saw: "
                                               f"{k} vs. {len(shape)}")
    bad = np.zeros(idx.shape[:-1], dtype=bool)
    for j in builtins_range(k):
        bad |= (idx[..., j] < 0) | (idx[..., j] >= shape[j])
    if np.any(bad):
        pos = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InvalidArgumentError(None, None, f"indices{list(pos)} = {idx[pos].tolist()} does not index into "
                                               f"param shape {shape_str(shape)}")
    return tuple(idx[..., j] for j in builtins_range(k))


def _gather_nd_infer(op: Operation) -> list:
    p, i = op.inputs
    pd, idd = _dims(p), _dims(i)
    if pd is None or idd is None or idd[-1] is None:
        return [(p.dtype, TensorShape(None))]
    k = idd[-1]
    if k > len(pd):
        raise ValueError(f"indices.shape[-1] must be <= params.rank, but saw indices shape: {shape_str(idd)} and "
                         f"params shape: {shape_str(pd)} for '{op.name}' (op: 'GatherNd')")
    return [(p.dtype, TensorShape(list(idd[:-1]) + list(pd[k:])))]


registry.register_op("GatherNd", _gather_nd_infer,
                     lambda ctx, op, ins: np.asarray(ins[0][_nd_index(np.asarray(ins[1]), ins[0].shape)]),
                     registry.OPAQUE)


def gather_nd(params: Any, indices: Any, name: str | None = None, batch_dims: int = 0) -> Tensor:
    """Slices of `params` at the index vectors in the last dimension of `indices`."""
    if batch_dims != 0:
        raise ValueError("gather_nd: only batch_dims=0 is supported")
    p = convert_to_tensor(params)
    i = _int_input(indices, "indices")
    return out(make_op("GatherNd", [p, i], {"Tparams": p.dtype, "Tindices": i.dtype}, name=name or "GatherNd"))


def _scatter_nd_infer(op: Operation) -> list:
    tgt = _ints(op.inputs[2])
    return [(op.inputs[1].dtype, TensorShape(tgt) if tgt is not None else TensorShape(None))]


def _scatter_nd_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    idx, upd, shp = ins
    res = np.zeros([int(d) for d in np.asarray(shp).reshape(-1)], dtype=op.outputs[0].dtype.np)
    idx = np.asarray(idx)
    want = idx.shape[:-1] + res.shape[idx.shape[-1]:]
    if np.shape(upd) != want:
        raise InvalidArgumentError(None, None, f"updates must have shape {shape_str(want)}, got "
                                               f"{shape_str(np.shape(upd))}")
    np.add.at(res, _nd_index(idx, res.shape), upd)  # repeated indices add up, as in TF
    return res


registry.register_op("ScatterNd", _scatter_nd_infer, _scatter_nd_kernel, registry.OPAQUE)


def scatter_nd(indices: Any, updates: Any, shape: Any, name: str | None = None) -> Tensor:
    """A zero tensor of `shape` with `updates` added at `indices` (duplicates accumulate)."""
    i = _int_input(indices, "indices")
    u = convert_to_tensor(updates)
    s = _int_input(shape, "shape")
    return out(make_op("ScatterNd", [i, u, s], {"T": u.dtype, "Tindices": i.dtype}, name=name or "ScatterNd"))


def sequence_mask(lengths: Any, maxlen: Any = None, dtype: Any = dtypes.bool, name: str | None = None) -> Tensor:
    """mask[..., j] = j < lengths[...] for j in [0, maxlen) (maxlen defaults to max(lengths))."""
    from jitflow.ops import math_ops as M

    with _name_scope(name, "SequenceMask"):
        n = _int_input(lengths, "lengths")
        m = M.reduce_max(n) if maxlen is None else M.cast(convert_to_tensor(maxlen), n.dtype)
        mask = M.less(range(0, m, 1, dtype=n.dtype), expand_dims(n, -1))
        return mask if dtypes.as_dtype(dtype) is dtypes.bool else M.cast(mask, dtype)
