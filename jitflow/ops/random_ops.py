"""Random ops. Seeds follow TF: graph seed + op seed; each (session, op) keeps its own generator,
so a seeded op gives the same sequence of values in every session and on every backend."""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import const_value, out

DEFAULT_GRAPH_SEED = 87654321


def get_seed(op_seed: int | None) -> tuple[int | None, int | None]:
    """TF's (graph seed, op seed) rule."""
    g = get_default_graph()
    if g.seed is not None:
        return g.seed, (op_seed if op_seed is not None else g._last_id)
    if op_seed is not None:
        return DEFAULT_GRAPH_SEED, op_seed
    return None, None


def generator_for(ctx: Any, op: Operation) -> np.random.Generator:
    """The session's generator of a random op, created from its seeds on first use."""
    gen = ctx.rngs.get(op.name)
    if gen is None:
        s1, s2 = op.attrs["seed"], op.attrs["seed2"]
        if s1 == 0 and s2 == 0:
            gen = np.random.default_rng()
        else:
            gen = np.random.Generator(np.random.PCG64([s1 & 0xFFFFFFFF, s2 & 0xFFFFFFFF]))
        ctx.rngs[op.name] = gen
    return gen


def _shape_of(ins: list) -> list[int]:
    s = [int(d) for d in np.asarray(ins[0]).reshape(-1)]
    if any(d < 0 for d in s):
        raise InvalidArgumentError(None, None, f"Shape must not have negative dimensions, got {s}")
    return s


def _normal(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    dt = op.attrs["dtype"].np
    return generator_for(ctx, op).standard_normal(_shape_of(ins), dtype=np.float64).astype(dt)


def _uniform(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    dt = op.attrs["dtype"].np
    return generator_for(ctx, op).random(_shape_of(ins), dtype=np.float64).astype(dt)


def _truncated(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    gen = generator_for(ctx, op)
    shape = _shape_of(ins)
    x = gen.standard_normal(shape)
    bad = np.abs(x) > 2
    while bad.any():  # resample outside two standard deviations, as TF does
        x[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return x.astype(op.attrs["dtype"].np)


def _random_int(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    lo, hi = int(ins[1]), int(ins[2])
    if lo >= hi:
        raise InvalidArgumentError(None, None, f"Need minval < maxval: {lo} >= {hi}")
    return generator_for(ctx, op).integers(lo, hi, size=_shape_of(ins)).astype(op.attrs["Tout"].np)


def _random_infer(op: Operation) -> list:
    v = const_value(op.inputs[0])
    dt = op.attrs.get("dtype") or op.attrs.get("Tout")
    if v is not None:
        return [(dt, TensorShape([int(d) for d in v.reshape(-1)]))]
    n = op.inputs[0].shape.as_tuple()
    return [(dt, TensorShape(None if not n or n[0] is None else [None] * n[0]))]


for _t, _k in {"RandomStandardNormal": _normal, "RandomUniform": _uniform, "TruncatedNormal": _truncated,
               "RandomUniformInt": _random_int}.items():
    registry.register_op(_t, _random_infer, _k, registry.STATEFUL, not_differentiable=True)


def _random_op(op_type: str, shape: Any, dtype: dtypes.DType, seed: int | None, name: str,
               extra: list[Tensor] | None = None) -> Tensor:
    s = convert_to_tensor(shape, dtype=dtypes.int32) if not isinstance(shape, Tensor) else shape
    s1, s2 = get_seed(seed)
    attrs: dict[str, Any] = {"seed": s1 or 0, "seed2": s2 or 0}
    attrs["Tout" if op_type == "RandomUniformInt" else "dtype"] = dtype
    g = get_default_graph()
    return out(g.create_op(op_type, [s] + (extra or []), attrs, name=name))


def _check_float(dtype: Any, what: str) -> dtypes.DType:
    dt = dtypes.as_dtype(dtype)
    if not dt.is_floating:
        raise ValueError(f"Invalid dtype {dt.name} for {what}: must be a floating point type")
    return dt


def random_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = dtypes.float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Samples from N(mean, stddev²)."""
    from jitflow.framework.graph import name_scope
    from jitflow.ops import math_ops

    dt = _check_float(dtype, "random_normal")
    with name_scope(name, "random_normal") as scope:
        rnd = _random_op("RandomStandardNormal", shape, dt, seed, "RandomStandardNormal")
        mul = math_ops.multiply(rnd, convert_to_tensor(stddev, dtype=dt, name="stddev"))
        return math_ops.add(mul, convert_to_tensor(mean, dtype=dt, name="mean"), name=scope[:-1] or None)


def truncated_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = dtypes.float32,
                     seed: int | None = None, name: str | None = None) -> Tensor:
    """Samples from N(mean, stddev²), resampling values more than two stddevs from the mean."""
    from jitflow.framework.graph import name_scope
    from jitflow.ops import math_ops

    dt = _check_float(dtype, "truncated_normal")
    with name_scope(name, "truncated_normal") as scope:
        rnd = _random_op("TruncatedNormal", shape, dt, seed, "TruncatedNormal")
        mul = math_ops.multiply(rnd, convert_to_tensor(stddev, dtype=dt, name="stddev"))
        return math_ops.add(mul, convert_to_tensor(mean, dtype=dt, name="mean"), name=scope[:-1] or None)


def random_uniform(shape: Any, minval: Any = 0, maxval: Any = None, dtype: Any = dtypes.float32,
                   seed: int | None = None, name: str | None = None) -> Tensor:
    """Samples uniformly from [minval, maxval) (maxval defaults to 1 for floats)."""
    from jitflow.framework.graph import name_scope
    from jitflow.ops import math_ops

    dt = dtypes.as_dtype(dtype)
    with name_scope(name, "random_uniform") as scope:
        if dt.is_integer:
            if maxval is None:
                raise ValueError(f"Must specify maxval for integer dtype {dt.name}")
            lo = convert_to_tensor(minval, dtype=dt, name="min")
            hi = convert_to_tensor(maxval, dtype=dt, name="max")
            return _random_op("RandomUniformInt", shape, dt, seed, scope[:-1] or "RandomUniformInt",
                              [lo, hi])
        _check_float(dt, "random_uniform")
        lo = convert_to_tensor(minval, dtype=dt, name="min")
        hi = convert_to_tensor(1.0 if maxval is None else maxval, dtype=dt, name="max")
        rnd = _random_op("RandomUniform", shape, dt, seed, "RandomUniform")
        return math_ops.add(math_ops.multiply(rnd, math_ops.subtract(hi, lo)), lo, name=scope[:-1] or None)


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
