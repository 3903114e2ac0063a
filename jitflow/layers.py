"""`tf.layers`: TF1's functional layers, built from get_variable and the op library.

Variables are named as TF names them (`dense/kernel`, `dense/bias`, `conv2d_1/kernel`, ...), so checkpoints of
layer-built models have TF's keys.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework.graph import Graph, Tensor, get_default_graph
from jitflow.framework.tensor_shape import known_dims
from jitflow.ops import array_ops, init_ops, math_ops, nn_ops
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.variables import get_variable, get_variable_scope, variable_scope


def _layer_name(g: Graph, base: str) -> str:
    """`base`, `base_1`, ... unique per variable scope, as TF1 names unnamed layers.

    TF1 restarts the numbering each time a scope is opened again (a `reuse=True` discriminator gets
    `conv2d` again, not `conv2d_2`), so the counts live on the scope object of this opening.
    """
    scope = get_variable_scope()
    counts: dict[tuple[str, str], int] = scope.__dict__.setdefault("_layer_name_counts", {}) \
        if scope.name else g.__dict__.setdefault("_layer_name_counts", {})
    key = (scope.name, base)
    n = counts.get(key, 0)
    counts[key] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _scope(name: str | None, base: str, reuse: Any) -> Any:
    # unnamed: TF's default-name numbering, which restarts when an enclosing named scope is reopened
    return variable_scope(name, default_name=base, reuse=reuse)


def _pair(v: Any, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(x) for x in v)
    if len(t) != 2:
        raise ValueError(f"The `{what}` argument must be a tuple of 2 integers. Received: {v}")
    return (t[0], t[1])


def _padding(padding: str) -> str:
    p = padding.upper()
    if p not in ("SAME", "VALID"):
        raise ValueError(f"The `padding` argument must be one of 'valid', 'same'. Received: {padding}")
    return p


def _activate(x: Tensor, activation: Callable[..., Tensor] | None) -> Tensor:
    return activation(x) if activation is not None else x


def dense(inputs: Any, units: int, activation: Callable[..., Tensor] | None = None, use_bias: bool = True,
          kernel_initializer: Any = None, bias_initializer: Any = None, kernel_regularizer: Any = None,
          bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
          bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
          reuse: Any = None) -> Tensor:
    """Fully connected layer: activation(inputs @ kernel + bias) over the last axis."""
    x = convert_to_tensor(inputs)
    last = x.shape[-1].value if x.shape.ndims else None
    if last is None:
        raise ValueError("The last dimension of the inputs to `Dense` should be defined. Found `None`.")
    with _scope(name, "dense", reuse):
        kernel = get_variable("kernel", [last, units], dtype=x.dtype, initializer=kernel_initializer,
                              regularizer=kernel_regularizer, trainable=trainable)
        rank = x.shape.ndims
        if rank == 2:
            y = math_ops.matmul(x, kernel, name="MatMul")
        else:
            y = array_ops.tensordot(x, kernel, [[(rank or 0) - 1], [0]], name="Tensordot")
        if use_bias:
            bias = get_variable("bias", [units], dtype=x.dtype,
                                initializer=bias_initializer or init_ops.Zeros(), regularizer=bias_regularizer,
                                trainable=trainable)
            y = nn_ops.bias_add(y, bias, name="BiasAdd")
        return _activate(y, activation)


def conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Any = (1, 1), activation: Any = None,
           use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = None,
           kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
           kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
           name: str | None = None, reuse: Any = None) -> Tensor:
    """2-D convolution layer over NHWC inputs."""
    if data_format != "channels_last":
        raise ValueError("jitflow supports data_format='channels_last' (NHWC) only")
    x = convert_to_tensor(inputs)
    cin = x.shape[-1].value if x.shape.ndims == 4 else None
    if cin is None:
        raise ValueError(f"The channel dimension of the inputs should be defined; inputs have shape {x.shape}")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(strides, "strides")
    dh, dw = _pair(dilation_rate, "dilation_rate")
    with _scope(name, "conv2d", reuse):
        kernel = get_variable("kernel", [kh, kw, cin, filters], dtype=x.dtype, initializer=kernel_initializer,
                              regularizer=kernel_regularizer, trainable=trainable)
        y = nn_ops.conv2d(x, kernel, strides=[1, sh, sw, 1], padding=_padding(padding),
                          dilations=[1, dh, dw, 1], name="Conv2D")
        if use_bias:
            bias = get_variable("bias", [filters], dtype=x.dtype,
                                initializer=bias_initializer or init_ops.Zeros(), regularizer=bias_regularizer,
                                trainable=trainable)
            y = nn_ops.bias_add(y, bias, name="BiasAdd")
        return _activate(y, activation)


def _deconv_length(n: int | None, k: int, s: int, padding: str) -> int | None:
    """Output length of a transposed conv along one dim (Keras' deconv_output_length, no output padding)."""
    if n is None:
        return None
    return n * s if padding == "SAME" else n * s + max(k - s, 0)


def conv2d_transpose(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                     data_format: str = "channels_last", activation: Any = None, use_bias: bool = True,
                     kernel_initializer: Any = None, bias_initializer: Any = None, kernel_regularizer: Any = None,
                     bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                     bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                     reuse: Any = None) -> Tensor:
    """Transposed 2-D convolution layer (a [kh, kw, filters, in] kernel) over NHWC inputs."""
    if data_format != "channels_last":
        raise ValueError("jitflow supports data_format='channels_last' (NHWC) only")
    x = convert_to_tensor(inputs)
    if x.shape.ndims != 4:
        raise ValueError(f"Input 0 of layer conv2d_transpose is incompatible with the layer: expected ndim=4, "
                         f"found ndim={x.shape.ndims}. Full shape received: {x.shape}")
    cin = x.shape[-1].value
    if cin is None:
        raise ValueError("The channel dimension of the inputs should be defined. Found `None`.")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(strides, "strides")
    pad = _padding(padding)
    with _scope(name, "conv2d_transpose", reuse):
        kernel = get_variable("kernel", [kh, kw, filters, cin], dtype=x.dtype, initializer=kernel_initializer,
                              regularizer=kernel_regularizer, trainable=trainable)
        dims = x.shape.as_list()
        oh, ow = _deconv_length(dims[1], kh, sh, pad), _deconv_length(dims[2], kw, sw, pad)
        shp = array_ops.shape(x)
        h = oh if oh is not None else _deconv_dynamic(shp[1], kh, sh, pad)
        w = ow if ow is not None else _deconv_dynamic(shp[2], kw, sw, pad)
        out_shape = array_ops.stack([shp[0], h, w, filters])
        y = nn_ops.conv2d_transpose(x, kernel, out_shape, strides=[1, sh, sw, 1], padding=pad,
                                    name="conv2d_transpose")
        y.set_shape([dims[0], oh, ow, filters])
        if use_bias:
            bias = get_variable("bias", [filters], dtype=x.dtype,
                                initializer=bias_initializer or init_ops.Zeros(), regularizer=bias_regularizer,
                                trainable=trainable)
            y = nn_ops.bias_add(y, bias, name="BiasAdd")
        return _activate(y, activation)


def _deconv_dynamic(n: Tensor, k: int, s: int, padding: str) -> Tensor:
    """`_deconv_length` of a run-time size."""
    res = math_ops.multiply(n, s)
    return res if padding == "SAME" or k <= s else math_ops.add(res, k - s)


def _pool(fn: Callable[..., Tensor], base: str, inputs: Any, pool_size: Any, strides: Any, padding: str,
          data_format: str, name: str | None) -> Tensor:
    if data_format != "channels_last":
        raise ValueError("jitflow supports data_format='channels_last' (NHWC) only")
    ph, pw = _pair(pool_size, "pool_size")
    sh, sw = _pair(strides, "strides")
    lname = name if name is not None else _layer_name(get_default_graph(), base)
    return fn(convert_to_tensor(inputs), ksize=[1, ph, pw, 1], strides=[1, sh, sw, 1], padding=_padding(padding),
              name=lname)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """Max pooling layer over NHWC inputs."""
    return _pool(nn_ops.max_pool, "max_pooling2d", inputs, pool_size, strides, padding, data_format, name)


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """Average pooling layer over NHWC inputs."""
    return _pool(nn_ops.avg_pool, "average_pooling2d", inputs, pool_size, strides, padding, data_format, name)


def flatten(inputs: Any, name: str | None = None, data_format: str = "channels_last") -> Tensor:
    """Reshapes [batch, ...] to [batch, prod(...)]."""
    x = convert_to_tensor(inputs)
    dims = x.shape.as_tuple()
    if dims is None or any(d is None for d in dims[1:]):
        raise ValueError(f"flatten needs the non-batch dimensions to be known, got {x.shape}")
    n = int(np.prod(known_dims(dims[1:]))) if len(dims) > 1 else 1
    return array_ops.reshape(x, [-1, n], name=name or _layer_name(get_default_graph(), "flatten"))


def dropout(inputs: Any, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None,
            training: Any = False, name: str | None = None) -> Tensor:
    """Drops a fraction `rate` of the inputs while `training` (a bool or a bool tensor)."""
    x = convert_to_tensor(inputs)
    lname = name if name is not None else _layer_name(get_default_graph(), "dropout")
    if isinstance(training, bool):
        if not training:
            return array_ops.identity(x, name=lname)
        return nn_ops.dropout(x, rate=rate, noise_shape=noise_shape, seed=seed, name=lname)
    from jitflow.ops.control_flow_ops import cond

    t = convert_to_tensor(training)
    if t.dtype is not dtypes.bool:
        raise TypeError(f"`training` must be a bool or a bool tensor, got {t.dtype.name}")
    return cond(t, lambda: nn_ops.dropout(x, rate=rate, noise_shape=noise_shape, seed=seed),
                lambda: array_ops.identity(x), name=lname)


from jitflow.layers_classes import (  # noqa: E402, F401 - tf.layers' classes and 1-D layers
    AveragePooling1D,
    AveragePooling2D,
    BatchNormalization,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPooling1D,
    MaxPooling2D,
    average_pooling1d,
    conv1d,
    max_pooling1d,
)
from jitflow.layers_norm import batch_normalization_layer as batch_normalization  # noqa: E402, F401 - tf.layers API
