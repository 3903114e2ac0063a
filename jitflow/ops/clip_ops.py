"""`tf.clip_by_global_norm`, `tf.global_norm`, `tf.clip_by_norm`: gradient clipping as TF1 computes it."""
from __future__ import annotations

from typing import Any

from jitflow.framework.graph import Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops import array_ops, math_ops
from jitflow.ops.constant_op import convert_to_tensor


def global_norm(t_list: Any, name: str | None = None) -> Tensor:
    """sqrt(sum of the squares of every element of every tensor in `t_list`) (None entries ignored)."""
    if not isinstance(t_list, (list, tuple)):
        raise TypeError("t_list should be a sequence")
    ts = [convert_to_tensor(t) for t in t_list if t is not None]
    if not ts:
        raise ValueError("global_norm needs at least one tensor")
    with _name_scope(name, "global_norm"):
        half_sq = [math_ops.reduce_sum(t * t) * 0.5 for t in ts]  # TF sums l2_loss(t) = sum(t^2) / 2
        return math_ops.sqrt(math_ops.add_n(half_sq) * 2.0, name="global_norm")


def clip_by_global_norm(t_list: Any, clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list[Any], Tensor]:
    """Scales every tensor by clip_norm / max(global_norm, clip_norm); returns (clipped list, global norm)."""
    if not isinstance(t_list, (list, tuple)):
        raise TypeError("t_list should be a sequence")
    with _name_scope(name, "clip_by_global_norm"):
        norm = global_norm(t_list) if use_norm is None else convert_to_tensor(use_norm)
        ts = [convert_to_tensor(t) if t is not None else None for t in t_list]
        dt = next(t.dtype for t in ts if t is not None)
        c = convert_to_tensor(clip_norm, dtype=dt)
        # A non-finite norm gives NaN everywhere, as in TF.
        scale = c * math_ops.minimum(1.0 / norm, 1.0 / c)
        out = [array_ops.identity(t * scale, name=f"clip_by_global_norm_{i}") if t is not None else None
               for i, t in enumerate(ts)]
        return out, norm


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Tensor:
    """`t` scaled so that its L2 norm (over `axes`) is at most `clip_norm`."""
    with _name_scope(name, "clip_by_norm"):
        x = convert_to_tensor(t)
        c = convert_to_tensor(clip_norm, dtype=x.dtype)
        l2sum = math_ops.reduce_sum(x * x, axes, keepdims=True)
        pos = math_ops.greater(l2sum, 0.0)
        safe = math_ops.where(pos, l2sum, array_ops.ones_like(l2sum))
        l2norm = math_ops.where(pos, math_ops.sqrt(safe), l2sum)
        return array_ops.identity(x * c / math_ops.maximum(l2norm, c))
