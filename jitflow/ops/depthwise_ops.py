"""Depthwise and separable convolutions: DepthwiseConv2dNative and its two backprop ops.

A depthwise conv applies channel multiplier `m` filters to each input channel on its own:
out[n, i, j, c*M + m] = sum over the window of x[n, y, x, c] * f[a, e, c, m]. The NumPy kernels reuse
conv2d's geometry and im2col (`nn_ops`), with one small einsum per op instead of one GEMM.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape, shape_str
from jitflow.ops import array_ops as A
from jitflow.ops import nn_ops as N
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import FLOATS, check_dtype, make_op, out, same_dtype_inputs

_OP = "DepthwiseConv2dNative"


def _infer(op: Operation) -> list:
    x, f = op.inputs
    xd, fd = x.shape.as_tuple(), f.shape.as_tuple()
    fmt = op.attrs.get("data_format", "NHWC")
    for t in (xd, fd):
        if t is not None and len(t) != 4:
            raise ValueError(f"Shape must be rank 4 but is rank {len(t)} for '{op.name}' (op: '{_OP}') with input "
                             f"shapes: {shape_str(xd)}, {shape_str(fd)}.")
    if xd is None or fd is None:
        return [(x.dtype, TensorShape([None if xd is None else xd[0], None, None, None]))]
    nd = N._nhwc_shape(xd, fmt)
    if nd[3] is not None and fd[2] is not None and nd[3] != fd[2]:
        raise ValueError(f"Dimensions must be equal, but are {nd[3]} and {fd[2]} for '{op.name}' (op: '{_OP}') "
                         f"with input shapes: {shape_str(xd)}, {shape_str(fd)}.")
    dims = N._window_out_dims(op, nd, fd[0], fd[1], "dilations")
    depth = None if fd[2] is None or fd[3] is None else fd[2] * fd[3]
    return [(x.dtype, TensorShape(list(N._fmt_shape((nd[0], dims[0], dims[1], depth), fmt))))]


def _patches(x: np.ndarray, g: Any) -> np.ndarray:
    """(P, KH*KW, C) patches of an NHWC input (P = N*OH*OW)."""
    return N._im2col(x, g).reshape(-1, g.kh * g.kw, x.shape[3])


def _check(x_shape: tuple, f_shape: tuple, g: Any) -> None:
    if len(x_shape) != 4 or len(f_shape) != 4 or x_shape[3] != f_shape[2]:
        raise InvalidArgumentError(None, None, f"input and filter must have the same depth: input "
                                               f"{shape_str(x_shape)}, filter {shape_str(f_shape)}")
    N._check_out_size(g, x_shape, f_shape)


def _forward_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    fmt = op.attrs.get("data_format", "NHWC")
    x, f = (N._to_nhwc(ins[0], fmt) if ins[0].ndim == 4 else ins[0]), ins[1]
    g = N._Geom(x.shape, f.shape[0], f.shape[1], op.attrs) if x.ndim == 4 and f.ndim == 4 else None
    if g is None:
        raise InvalidArgumentError(None, None, f"input and filter must be 4-D: {shape_str(x.shape)}, "
                                               f"{shape_str(f.shape)}")
    _check(x.shape, f.shape, g)
    kh, kw, c, m = f.shape
    res = np.einsum("pkc,kcm->pcm", _patches(x, g), f.reshape(kh * kw, c, m), optimize=True)
    return N._from_nhwc(res.reshape(x.shape[0], g.oh, g.ow, c * m).astype(x.dtype, copy=False), fmt)


def _backprop_input_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    fmt = op.attrs.get("data_format", "NHWC")
    sizes, f, dy = ins
    shape = N._nhwc_shape((int(v) for v in sizes), fmt)
    dy = N._to_nhwc(dy, fmt) if dy.ndim == 4 else dy
    kh, kw, c, m = f.shape
    g = N._Geom(shape, kh, kw, op.attrs)
    _check(shape, f.shape, g)
    if dy.shape != (shape[0], g.oh, g.ow, c * m):
        raise InvalidArgumentError(None, None, f"out_backprop has shape {shape_str(dy.shape)}, but the depthwise "
                                               f"convolution's output shape is "
                                               f"{shape_str((shape[0], g.oh, g.ow, c * m))}")
    dcols = np.einsum("pcm,kcm->pkc", dy.reshape(-1, c, m), f.reshape(kh * kw, c, m), optimize=True)
    dcols = dcols.reshape(shape[0], g.oh, g.ow, kh, kw, c).astype(dy.dtype, copy=False)
    return N._from_nhwc(N._col2im(dcols, g), fmt)


def _backprop_filter_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    fmt = op.attrs.get("data_format", "NHWC")
    x, sizes, dy = ins
    x, dy = (N._to_nhwc(v, fmt) if v.ndim == 4 else v for v in (x, dy))
    kh, kw, c, m = (int(v) for v in sizes)
    g = N._Geom(x.shape, kh, kw, op.attrs)
    _check(x.shape, (kh, kw, c, m), g)
    if dy.shape != (x.shape[0], g.oh, g.ow, c * m):
        raise InvalidArgumentError(None, None, f"out_backprop has shape {shape_str(dy.shape)}, but the depthwise "
                                               f"convolution's output shape is "
                                               f"{shape_str((x.shape[0], g.oh, g.ow, c * m))}")
    res = np.einsum("pkc,pcm->kcm", _patches(x, g), dy.reshape(-1, c, m), optimize=True)
    return res.reshape(kh, kw, c, m).astype(dy.dtype, copy=False)


def _sizes_infer(index: int) -> Any:
    def infer(op: Operation) -> list:
        v = A._ints(op.inputs[index])
        return [(op.inputs[2].dtype, TensorShape(v) if v is not None else TensorShape([None] * 4))]

    return infer


registry.register_op(_OP, _infer, _forward_kernel)
registry.register_op(_OP + "BackpropInput", _sizes_infer(0), _backprop_input_kernel)
registry.register_op(_OP + "BackpropFilter", _sizes_infer(1), _backprop_filter_kernel)


def _attrs(strides: Any, padding: Any, dilations: Any, data_format: str | None, dt: Any, name: str | None) -> dict:
    a = N._conv_attrs(strides, padding, dilations, data_format, dt, _OP, name)
    del a["use_cudnn_on_gpu"]
    return a


def depthwise_conv2d_native(input: Any, filter: Any, strides: Any, padding: Any,  # noqa: A002 - TF's names
                            data_format: str = "NHWC", dilations: Any = None, name: str | None = None) -> Tensor:
    """Depthwise 2-D convolution: an [h, w, in, multiplier] `filter`, in * multiplier output channels."""
    x, f = same_dtype_inputs(_OP, [input, filter], ("input", "filter"))
    check_dtype(_OP, x, FLOATS, "input")
    return out(make_op(_OP, [x, f], _attrs(strides, padding, dilations, data_format, x.dtype, name),
                       name=name or _OP))


def depthwise_conv2d(input: Any, filter: Any, strides: Any, padding: Any, rate: Any = None,  # noqa: A002
                     name: str | None = None, data_format: str | None = None, dilations: Any = None) -> Tensor:
    """tf.nn.depthwise_conv2d: `rate` (or `dilations`) is the [h, w] dilation."""
    d = rate if rate is not None else dilations
    with _name_scope(name, "depthwise") as scope:
        return depthwise_conv2d_native(input, filter, strides, padding, data_format or "NHWC",
                                       dilations=d, name=scope)


def separable_conv2d(input: Any, depthwise_filter: Any, pointwise_filter: Any, strides: Any,  # noqa: A002
                     padding: Any, rate: Any = None, name: str | None = None, data_format: str | None = None,
                     dilations: Any = None) -> Tensor:
    """A depthwise conv followed by a 1x1 conv with `pointwise_filter` ([1, 1, in * multiplier, out])."""
    pw = convert_to_tensor(pointwise_filter)
    pd = pw.shape.as_tuple()
    if pd is not None and (len(pd) != 4 or pd[0] != 1 or pd[1] != 1):
        raise ValueError(f"Shape must be [1, 1, ?, ?] for the pointwise filter, got {shape_str(pd)}")
    with _name_scope(name, "separable_conv2d") as scope:
        dw = depthwise_conv2d(input, depthwise_filter, strides, padding, rate=rate, name="depthwise",
                              data_format=data_format, dilations=dilations)
        return N.conv2d(dw, pw, [1, 1, 1, 1], "VALID", data_format=data_format or "NHWC", name=scope)


@registry.register_gradient(_OP)
def _depthwise_grad(op: Operation, g: Tensor) -> list:
    x, f = op.inputs
    kw = N.conv_grad_kwargs(op)
    xs = A._int_input(x.shape.as_list(), "input_sizes") if x.shape.is_fully_defined() else A.shape(x)
    fs = A._int_input(f.shape.as_list(), "filter_sizes") if f.shape.is_fully_defined() else A.shape(f)
    a = _attrs(kw["strides"], kw["padding"], kw["dilations"], kw["data_format"], g.dtype, None)
    dx = out(make_op(_OP + "BackpropInput", [xs, f, g], a, name=_OP + "BackpropInput"))
    dx.set_shape(x.shape)
    df = out(make_op(_OP + "BackpropFilter", [x, fs, g], a, name=_OP + "BackpropFilter"))
    df.set_shape(f.shape)
    return [dx, df]
