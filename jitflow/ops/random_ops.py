"""Random ops, with TensorFlow's seeds and TensorFlow's numbers.

Seeds follow TF: a graph seed and an op seed; with only a graph seed, the graph's random ops are
numbered 0, 1, 2, ... in creation order. The values come from TF's own algorithms (`ops/philox.py`),
so a seeded program draws the same numbers here as under TensorFlow. Each (session, op) keeps its own
generator state: a seeded op gives the same sequence of values in every session.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops import philox
from jitflow.ops.constant_op import convert_to_tensor, holds_tensor
from jitflow.ops.op_util import out, shape_dims

DEFAULT_GRAPH_SEED = 87654321
_MAXINT32 = 2**31 - 1


def get_seed(op_seed: int | None) -> tuple[int | None, int | None]:
    """TF's (graph seed, op seed) rule."""
    g = get_default_graph()
    if g.seed is not None:
        if op_seed is None:
            # TF numbers the graph-seeded random ops of a graph 0, 1, 2, ... in creation order.
            op_seed = g.__dict__.get("_random_seed_counter", 0)
            g.__dict__["_random_seed_counter"] = op_seed + 1
        seeds: tuple[int | None, int | None] = (g.seed % _MAXINT32, op_seed % _MAXINT32)
    elif op_seed is not None:
        seeds = (DEFAULT_GRAPH_SEED, op_seed % _MAXINT32)
    else:
        seeds = (None, None)
    if seeds == (0, 0):  # (0, 0) means "unseeded" to the kernels
        return 0, _MAXINT32
    return seeds


def philox_for(ctx: Any, op: Operation) -> philox.PhiloxState:
    """The session's Philox state of a random op, created from its seeds on first use."""
    state = ctx.rngs.get(op.name)
    if state is None:
        state = ctx.rngs.setdefault(op.name, philox.PhiloxState(op.attrs["seed"], op.attrs["seed2"]))
    return state


def generator_for(ctx: Any, op: Operation) -> np.random.Generator:
    """A NumPy generator keyed by the op's Philox state (for ops without a TF-exact algorithm here)."""
    key = op.name + "/numpy"
    gen = ctx.rngs.get(key)
    if gen is None:
        st = philox_for(ctx, op)
        gen = ctx.rngs.setdefault(key, np.random.Generator(np.random.PCG64([st.key[0], st.key[1],
                                                                            st.counter & 0xFFFFFFFF])))
    return gen


def _shape_of(ins: list) -> list[int]:
    s = [int(d) for d in np.asarray(ins[0]).reshape(-1).tolist()]  # (tolist: Python ints at C speed)
    if s and min(s) < 0:
        raise InvalidArgumentError(None, None, f"Shape must not have negative dimensions, got {s}")
    return s


def _sampler(fn: Any):  # type: ignore[no-untyped-def]
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        shape = _shape_of(ins)
        dt = op.attrs["dtype"].np
        size = math.prod(shape)
        return fn(philox_for(ctx, op), size, dt).astype(dt, copy=False).reshape(shape)

    return kernel


_normal = _sampler(philox.normal)
_uniform = _sampler(philox.uniform)
_truncated = _sampler(philox.truncated_normal)


def _random_int(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    lo, hi = int(ins[1]), int(ins[2])
    if lo >= hi:
        raise InvalidArgumentError(None, None, f"Need minval < maxval: {lo} >= {hi}")
    shape = _shape_of(ins)
    size = int(np.prod(shape, dtype=np.int64))
    return philox.uniform_int(philox_for(ctx, op), size, lo, hi, op.attrs["Tout"].np).reshape(shape)


def _random_infer(op: Operation) -> list:
    return [(op.attrs.get("dtype") or op.attrs.get("Tout"), TensorShape(shape_dims(op.inputs[0])))]


for _t, _k in {"RandomStandardNormal": _normal, "RandomUniform": _uniform, "TruncatedNormal": _truncated,
               "RandomUniformInt": _random_int}.items():
    registry.register_op(_t, _random_infer, _k, registry.STATEFUL, not_differentiable=True)


def _shape_tensor(shape: Any) -> Tensor:
    """TF's shape_tensor: a tensor shape argument, as an int32 (or int64) Const named 'shape'."""
    if isinstance(shape, Tensor):
        return shape
    if isinstance(shape, (list, tuple)) and holds_tensor(shape):
        return convert_to_tensor(shape, dtype=dtypes.int32)  # packed, as TF does
    dims = [int(d) for d in (shape.as_list() if hasattr(shape, "as_list") else np.atleast_1d(shape))] \
        if not (isinstance(shape, (list, tuple)) and len(shape) == 0) else []
    dt = dtypes.int64 if any(d > _MAXINT32 for d in dims) else dtypes.int32
    return convert_to_tensor(np.array(dims, dtype=dt.np), dtype=dt, name="shape")


def _random_op(op_type: str, shape: Tensor, dtype: dtypes.DType, seed: int | None, name: str,
               extra: list[Tensor] | None = None) -> Tensor:
    s1, s2 = get_seed(seed)
    attrs: dict[str, Any] = {"seed": s1 or 0, "seed2": s2 or 0}
    attrs["Tout" if op_type == "RandomUniformInt" else "dtype"] = dtype
    g = get_default_graph()
    return out(g.create_op(op_type, [shape] + (extra or []), attrs, name=name))


def _check_float(dtype: Any, what: str) -> dtypes.DType:
    dt = dtypes.as_dtype(dtype)
    if not dt.is_floating:
        raise ValueError(f"Invalid dtype {dt.name} for {what}: must be a floating point type")
    return dt


# The constructors create their ops (and draw graph-level op seeds) in TF's order, with TF's names.


def _normal_like(op_type: str, default_name: str, shape: Any, mean: Any, stddev: Any, dtype: Any,
                 seed: int | None, name: str | None) -> Tensor:
    from jitflow.framework.graph import name_scope
    from jitflow.ops import math_ops

    dt = _check_float(dtype, default_name)
    with name_scope(name, default_name) as scope:
        shape_t = _shape_tensor(shape)
        mean_t = convert_to_tensor(mean, dtype=dt, name="mean")
        stddev_t = convert_to_tensor(stddev, dtype=dt, name="stddev")
        rnd = _random_op(op_type, shape_t, dt, seed, op_type)
        return math_ops.add(math_ops.multiply(rnd, stddev_t, name="mul"), mean_t, name=scope or None)


def random_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = dtypes.float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Samples from N(mean, stddev²)."""
    return _normal_like("RandomStandardNormal", "random_normal", shape, mean, stddev, dtype, seed, name)


def truncated_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = dtypes.float32,
                     seed: int | None = None, name: str | None = None) -> Tensor:
    """Samples from N(mean, stddev²), redrawing values more than two stddevs from the mean."""
    return _normal_like("TruncatedNormal", "truncated_normal", shape, mean, stddev, dtype, seed, name)


def random_uniform(shape: Any, minval: Any = 0, maxval: Any = None, dtype: Any = dtypes.float32,
                   seed: int | None = None, name: str | None = None) -> Tensor:
    """Samples uniformly from [minval, maxval) (maxval defaults to 1 for floats)."""
    from jitflow.framework.graph import name_scope
    from jitflow.ops import math_ops

    dt = dtypes.as_dtype(dtype)
    if maxval is None:
        if dt.is_integer:
            raise ValueError(f"Must specify maxval for integer dtype {dt.name}")
        maxval = 1
    if not dt.is_integer:
        _check_float(dt, "random_uniform")
    with name_scope(name, "random_uniform") as scope:
        shape_t = _shape_tensor(shape)
        # TF skips the scaling ops (and their constants) for the default range [0, 1).
        lo_zero = isinstance(minval, int) and not isinstance(minval, bool) and minval == 0
        hi_one = isinstance(maxval, int) and not isinstance(maxval, bool) and maxval == 1
        if not lo_zero or not hi_one or dt.is_integer:
            lo = convert_to_tensor(minval, dtype=dt, name="min")
            hi = convert_to_tensor(maxval, dtype=dt, name="max")
        if dt.is_integer:
            return _random_op("RandomUniformInt", shape_t, dt, seed, scope or "RandomUniformInt", [lo, hi])
        rnd = _random_op("RandomUniform", shape_t, dt, seed, "RandomUniform")
        if lo_zero:
            return rnd if hi_one else math_ops.multiply(rnd, hi, name=scope or None)
        return math_ops.add(math_ops.multiply(rnd, math_ops.subtract(hi, lo)), lo, name=scope or None)


def _shuffle_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = ins[0]
    if x.ndim == 0:
        return x
    return x[generator_for(ctx, op).permutation(x.shape[0])]


registry.register_op("RandomShuffle", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)], _shuffle_kernel,
                     registry.STATEFUL, not_differentiable=True)


def random_shuffle(value: Any, seed: int | None = None, name: str | None = None) -> Tensor:
    """Shuffles `value` along its first dimension (a new permutation every run)."""
    x = convert_to_tensor(value)
    s1, s2 = get_seed(seed)
    return out(x.graph.create_op("RandomShuffle", [x], {"seed": s1 or 0, "seed2": s2 or 0, "T": x.dtype},
                                 name=name or "RandomShuffle"))
