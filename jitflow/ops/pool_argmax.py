"""`tf.nn.max_pool_with_argmax`: max pooling (NHWC) that also returns where each maximum came from.

The argmax is TF's flat index ((b * H + y) * W + x) * C + c, without the batch term unless
`include_batch_in_index`; ties go to the first element of the window in row-major order. The gradient
scatters into those positions, as TF's MaxPoolGradWithArgmax does.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops import nn_ops as N
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import FLOATS, check_dtype, make_op


def _kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    x = np.asarray(ins[0])
    g = N._pool_geom(op, x.shape)
    xp = N._pad_spatial(x, g.ph, g.pw, N._neg_fill(x.dtype))
    win = N._windows(xp, g.kh, g.kw, g.sh, g.sw, 1, 1, g.oh, g.ow)  # (N, OH, OW, KH, KW, C)
    n, oh, ow, kh, kw, c = win.shape
    flat = win.reshape(n, oh, ow, kh * kw, c)
    k = flat.argmax(axis=3)  # the first maximum in row-major window order
    best = np.take_along_axis(flat, k[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    y = np.arange(oh)[None, :, None, None] * g.sh - g.ph[0] + k // kw
    xx = np.arange(ow)[None, None, :, None] * g.sw - g.pw[0] + k % kw
    idx = (y * g.w + xx) * c + np.arange(c)[None, None, None, :]
    if op.attrs.get("include_batch_in_index", False):
        idx = idx + np.arange(n)[:, None, None, None] * (g.h * g.w * c)
    return best, idx.astype(op.attrs["Targmax"].np)


def _infer(op: Operation) -> list:
    (dt, shape), = N._pool_infer(op)
    return [(dt, shape), (op.attrs["Targmax"], TensorShape(shape))]


def _grad(op: Operation, g: Tensor, g_argmax: Tensor) -> list:
    x, idx = op.inputs[0], op.outputs[1]
    per_image = M.reduce_prod(A.shape(x)[1:])
    if not op.attrs.get("include_batch_in_index", False):  # add each image's offset
        batch = M.cast(A.range(A.shape(x)[0]) * per_image, idx.dtype)
        idx = idx + A.reshape(batch, [-1, 1, 1, 1])
    flat = A.unsorted_segment_sum(A.reshape(g, [-1]), A.reshape(idx, [-1]),
                                  M.cast(A.shape(x)[0] * per_image, idx.dtype))
    res = A.reshape(flat, A.shape(x))
    res.set_shape(x.shape)
    return [res]


registry.register_op("MaxPoolWithArgmax", _infer, _kernel, registry.OPAQUE, grad=_grad)


def max_pool_with_argmax(input: Any, ksize: Any, strides: Any, padding: str, data_format: str = "NHWC",  # noqa: A002
                         Targmax: Any = None, name: str | None = None, output_dtype: Any = None,  # noqa: N803
                         include_batch_in_index: bool = False) -> tuple[Tensor, Tensor]:
    """(max pooled output, int64 flat index of each maximum) of an NHWC tensor."""
    if data_format != "NHWC":
        raise ValueError(f"max_pool_with_argmax supports data_format='NHWC' only, got {data_format}")
    x = convert_to_tensor(input)
    check_dtype("MaxPoolWithArgmax", x, FLOATS, "input")
    arg_dt = dtypes.as_dtype(Targmax or output_dtype or dtypes.int64)
    attrs = N._pool_attrs(ksize, strides, padding, "NHWC", x.dtype, "MaxPoolWithArgmax", name)
    attrs.pop("data_format")
    attrs.update(Targmax=arg_dt, include_batch_in_index=bool(include_batch_in_index))
    op = make_op("MaxPoolWithArgmax", [x], attrs, name=name or "MaxPoolWithArgmax")
    return op.outputs[0], op.outputs[1]
