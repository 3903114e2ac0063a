"""Gradients of the nn ops: activations, softmax, bias_add, conv2d, pooling, losses."""
from __future__ import annotations

from typing import Any

from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops import nn_ops as N
from jitflow.ops.op_util import make_op, out

_GradList = list[Any]


def _grad_op(op_type: str, inputs: list[Tensor], attrs: dict[str, Any] | None = None) -> Tensor:
    return out(make_op(op_type, inputs, {"T": inputs[0].dtype, **(attrs or {})}, name=op_type))


@registry.register_gradient("Softmax")
def _softmax_grad(op: Operation, g: Tensor) -> _GradList:
    y = op.outputs[0]
    dot = M.reduce_sum(M.multiply(g, y), -1, keepdims=True)
    return [M.multiply(M.subtract(g, dot), y)]


@registry.register_gradient("LogSoftmax")
def _log_softmax_grad(op: Operation, g: Tensor) -> _GradList:
    y = op.outputs[0]
    return [M.subtract(g, M.multiply(M.reduce_sum(g, -1, keepdims=True), M.exp(y)))]


@registry.register_gradient("BiasAdd")
def _bias_add_grad(op: Operation, g: Tensor) -> _GradList:
    r = g.shape.ndims
    if r is None:
        raise LookupError(f"Gradient of BiasAdd '{op.name}' needs an input of known rank")
    return [g, M.reduce_sum(g, list(range(r - 1)))]


@registry.register_gradient("Conv2D")
def _conv2d_grad(op: Operation, g: Tensor) -> _GradList:
    x, f = op.inputs
    kw = N.conv_grad_kwargs(op)
    xs = A._int_input(x.shape.as_list(), "input_sizes") if x.shape.is_fully_defined() else A.shape(x)
    fs = A._int_input(f.shape.as_list(), "filter_sizes") if f.shape.is_fully_defined() else A.shape(f)
    dx = N.conv2d_backprop_input(xs, f, g, **kw)
    dx.set_shape(x.shape)
    df = N.conv2d_backprop_filter(x, fs, g, **kw)
    df.set_shape(f.shape)
    return [dx, df]


@registry.register_gradient("Conv2DBackpropInput")
def _conv2d_backprop_input_grad(op: Operation, g: Tensor) -> _GradList:
    sizes, f, dy = op.inputs
    kw = N.conv_grad_kwargs(op)
    fs = A._int_input(f.shape.as_list(), "filter_sizes") if f.shape.is_fully_defined() else A.shape(f)
    return [None, N.conv2d_backprop_filter(g, fs, dy, **kw), N.conv2d(g, f, **kw)]


@registry.register_gradient("MaxPool")
def _max_pool_grad(op: Operation, g: Tensor) -> _GradList:
    attrs = {k: op.attrs[k] for k in ("ksize", "strides", "padding", "data_format")}
    return [_grad_op("MaxPoolGrad", [op.inputs[0], op.outputs[0], g], attrs)]


@registry.register_gradient("AvgPool")
def _avg_pool_grad(op: Operation, g: Tensor) -> _GradList:
    x = op.inputs[0]
    attrs = {k: op.attrs[k] for k in ("ksize", "strides", "padding", "data_format")}
    xs = A._int_input(x.shape.as_list(), "orig_input_shape") if x.shape.is_fully_defined() else A.shape(x)
    res = out(make_op("AvgPoolGrad", [xs, g], {"T": g.dtype, **attrs}, name="AvgPoolGrad"))
    res.set_shape(x.shape)
    return [res]


@registry.register_gradient("L2Loss")
def _l2_loss_grad(op: Operation, g: Tensor) -> _GradList:
    return [M.multiply(op.inputs[0], g)]


def _through_backprop(logits: Tensor, g_backprop: Tensor) -> Tensor | None:
    """The logits gradient that flows through the backprop output (softmax - labels), if any flows."""
    if g_backprop.op.type == "ZerosLike":  # the usual case: only the loss is differentiated
        return None
    sm = N.softmax(logits)
    return M.multiply(M.subtract(g_backprop, M.reduce_sum(M.multiply(g_backprop, sm), -1, keepdims=True)), sm)


@registry.register_gradient("SoftmaxCrossEntropyWithLogits")
def _xent_grad(op: Operation, g_loss: Tensor, g_backprop: Tensor) -> _GradList:
    backprop = op.outputs[1]
    f = op.inputs[0]
    g = A.expand_dims(g_loss, -1)
    dlogits = M.multiply(g, backprop)
    dlabels = M.multiply(g, M.negative(N.log_softmax(f)))
    extra = _through_backprop(f, g_backprop)
    if extra is not None:
        dlogits = M.add(dlogits, extra)
        dlabels = M.subtract(dlabels, g_backprop)
    return [dlogits, dlabels]


@registry.register_gradient("SparseSoftmaxCrossEntropyWithLogits")
def _sparse_xent_grad(op: Operation, g_loss: Tensor, g_backprop: Tensor) -> _GradList:
    dlogits = M.multiply(A.expand_dims(g_loss, -1), op.outputs[1])
    extra = _through_backprop(op.inputs[0], g_backprop)
    return [dlogits if extra is None else M.add(dlogits, extra), None]


@registry.register_gradient("TopKV2")
def _top_k_grad(op: Operation, g_values: Tensor, g_indices: Tensor) -> _GradList:
    x = op.inputs[0]
    idx = op.outputs[1]
    n = A.gather(A.shape(x), A.rank(x) - 1)
    k = A.gather(A.shape(idx), A.rank(idx) - 1)
    rows = A.shape(x)[0] if x.shape.ndims == 2 else M.floordiv(A.size(x), n)
    offsets = A.expand_dims(M.multiply(A.range(rows), n), -1)
    flat = A.reshape(M.add(A.reshape(idx, A.stack([rows, k])), offsets), [-1])
    dx = A.unsorted_segment_sum(A.reshape(g_values, [-1]), flat, M.multiply(rows, n))
    res = A.reshape(dx, A.shape(x))
    res.set_shape(x.shape)
    return [res, None]
