"""TF 1.x op aliases kept for old programs: `tf.arg_max`, `tf.arg_min` (the generated-op spellings)."""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Tensor
from jitflow.ops import math_ops


def arg_max(input: Any, dimension: Any, output_type: Any = dtypes.int64, name: str | None = None) -> Tensor:
    """Index of the largest value along `dimension` (TF 1.x's `tf.arg_max`, the ArgMax op)."""
    return math_ops.argmax(input, axis=dimension, name=name, output_type=output_type)


def arg_min(input: Any, dimension: Any, output_type: Any = dtypes.int64, name: str | None = None) -> Tensor:
    """Index of the smallest value along `dimension` (TF 1.x's `tf.arg_min`, the ArgMin op)."""
    return math_ops.argmin(input, axis=dimension, name=name, output_type=output_type)
