"""`tf.layers`' class API (`Dense`, `Conv2D`, ..., `BatchNormalization`) and the 1-D layers.

A layer object keeps its arguments; its first call builds the functional layer of `jitflow.layers` (same
variable names: `dense/kernel`, `dense_1/bias`, ...) and remembers the variables it created and its
variable scope; later calls reuse those variables. `conv1d` and the 1-D poolings run the 2-D ops on a
height-1 image, as TF does.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jitflow.framework.graph import GraphKeys, Tensor, get_default_graph
from jitflow.layers_norm import batch_normalization_layer
from jitflow.ops import array_ops, nn_ops
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.variables import Variable, get_variable, get_variable_scope


class Layer:
    """Base of the layer classes: `__call__`/`apply` builds once, then reuses the variables."""

    _fn: Callable[..., Tensor]

    def __init__(self, name: str | None = None, trainable: bool = True, **kwargs: Any) -> None:
        self._name = name
        self.trainable = trainable
        self._kwargs = kwargs
        self._scope_name: str | None = None
        self._variables: list[Variable] = []
        self.built = False

    @property
    def name(self) -> str | None:
        return self._scope_name or self._name

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Tensor:
        g = get_default_graph()
        before = len(g.get_collection(GraphKeys.GLOBAL_VARIABLES))
        if self.built and self._scope_name is not None:
            out = self._call(inputs, *args, name=self._scope_name, reuse=True, **kwargs)
        else:
            out = self._call(inputs, *args, name=self._name, **kwargs)
            self._variables = list(g.get_collection(GraphKeys.GLOBAL_VARIABLES)[before:])
            if self._variables:  # the layer's scope, relative to the caller's variable scope
                outer = get_variable_scope().name
                full = self._variables[0].op.name.rsplit("/", 1)[0]
                self._scope_name = full[len(outer) + 1:] if outer and full.startswith(outer + "/") else full
            self.built = True
        return out

    apply = __call__

    def _call(self, inputs: Any, *args: Any, name: str | None = None, reuse: Any = None, **kwargs: Any) -> Tensor:
        extra = {} if reuse is None else {"reuse": reuse}
        return type(self)._fn(inputs, *args, name=name, trainable=self.trainable, **self._kwargs, **kwargs, **extra)

    # -- the variables --------------------------------------------------------------------------------------
    @property
    def variables(self) -> list[Variable]:
        return list(self._variables)

    weights = variables

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for v in self._variables if v.trainable]

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [v for v in self._variables if not v.trainable]

    non_trainable_variables = non_trainable_weights

    def _var(self, short: str) -> Variable | None:
        return next((v for v in self._variables if v.op.name.rsplit("/", 1)[-1] == short), None)

    @property
    def kernel(self) -> Variable | None:
        return self._var("kernel")

    @property
    def bias(self) -> Variable | None:
        return self._var("bias")


class _Stateless(Layer):
    """A layer without variables (pooling, flatten, dropout): `trainable` is not passed on."""

    def _call(self, inputs: Any, *args: Any, name: str | None = None, reuse: Any = None, **kwargs: Any) -> Tensor:
        return type(self)._fn(inputs, *args, name=name, **self._kwargs, **kwargs)


def _layer_class(class_name: str, fn: Callable[..., Tensor], positional: tuple[str, ...],
                 base: type[Layer] = Layer) -> type[Layer]:
    """A Layer class whose constructor takes `positional` (then keywords) and whose call runs `fn`."""
    def __init__(self: Layer, *args: Any, name: str | None = None, trainable: bool = True,  # noqa: N807
                 **kwargs: Any) -> None:
        if len(args) > len(positional):
            raise TypeError(f"{class_name} takes at most {len(positional)} positional arguments")
        kwargs.update(zip(positional, args))
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)

    return type(class_name, (base,), {"__init__": __init__, "_fn": staticmethod(fn),
                                      "__doc__": f"`tf.layers.{class_name}`: `{fn.__name__}` as a reusable layer."})


# -- 1-D layers on the 2-D ops --------------------------------------------------------------------------


def _single(v: Any, what: str) -> int:
    if isinstance(v, int):
        return v
    t = tuple(v)
    if len(t) != 1:
        raise ValueError(f"The `{what}` argument must be a tuple of 1 integer. Received: {v}")
    return int(t[0])


def conv1d(inputs: Any, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
           kernel_initializer: Any = None, bias_initializer: Any = None, kernel_regularizer: Any = None,
           bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
           bias_constraint: Any = None, trainable: bool = True, name: str | None = None, reuse: Any = None) -> Tensor:
    """1-D convolution over [batch, width, channels] with a [k, in, filters] kernel (`conv1d/kernel`)."""
    from jitflow import layers as L
    from jitflow.ops import init_ops

    if data_format != "channels_last":
        raise ValueError("jitflow supports data_format='channels_last' (NWC) only")
    x = convert_to_tensor(inputs)
    if x.shape.ndims != 3 or x.shape[-1].value is None:
        raise ValueError(f"Input 0 of layer conv1d is incompatible with the layer: expected ndim=3 with a known "
                         f"channel dimension, found shape {x.shape}")
    k, s, d = _single(kernel_size, "kernel_size"), _single(strides, "strides"), _single(dilation_rate, "dilation_rate")
    with L._scope(name, "conv1d", reuse):
        kernel = get_variable("kernel", [k, x.shape[-1].value, filters], dtype=x.dtype,
                              initializer=kernel_initializer, regularizer=kernel_regularizer, trainable=trainable)
        y = nn_ops.conv2d(array_ops.expand_dims(x, 1), array_ops.expand_dims(kernel, 0), strides=[1, 1, s, 1],
                          padding=L._padding(padding), dilations=[1, 1, d, 1], name="conv1d")
        y = array_ops.squeeze(y, [1])
        if use_bias:
            bias = get_variable("bias", [filters], dtype=x.dtype, initializer=bias_initializer or init_ops.Zeros(),
                                regularizer=bias_regularizer, trainable=trainable)
            y = nn_ops.bias_add(y, bias, name="BiasAdd")
        return L._activate(y, activation)


def _pool1d(fn: Callable[..., Tensor], base: str, inputs: Any, pool_size: Any, strides: Any, padding: str,
            data_format: str, name: str | None) -> Tensor:
    from jitflow import layers as L

    if data_format != "channels_last":
        raise ValueError("jitflow supports data_format='channels_last' (NWC) only")
    p, s = _single(pool_size, "pool_size"), _single(strides, "strides")
    lname = name if name is not None else L._layer_name(get_default_graph(), base)
    y = fn(array_ops.expand_dims(convert_to_tensor(inputs), 1), ksize=[1, 1, p, 1], strides=[1, 1, s, 1],
           padding=L._padding(padding), name=lname)
    return array_ops.squeeze(y, [1])


def max_pooling1d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """Max pooling over [batch, width, channels]."""
    return _pool1d(nn_ops.max_pool, "max_pooling1d", inputs, pool_size, strides, padding, data_format, name)


def average_pooling1d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """Average pooling over [batch, width, channels]."""
    return _pool1d(nn_ops.avg_pool, "average_pooling1d", inputs, pool_size, strides, padding, data_format, name)


def _classes() -> dict[str, type[Layer]]:
    from jitflow import layers as L

    conv = ("filters", "kernel_size")
    pool = ("pool_size", "strides")
    return {
        "Dense": _layer_class("Dense", L.dense, ("units",)),
        "Conv1D": _layer_class("Conv1D", conv1d, conv),
        "Conv2D": _layer_class("Conv2D", L.conv2d, conv),
        "Conv2DTranspose": _layer_class("Conv2DTranspose", L.conv2d_transpose, conv),
        "BatchNormalization": _layer_class("BatchNormalization", batch_normalization_layer, ()),
        "MaxPooling1D": _layer_class("MaxPooling1D", max_pooling1d, pool, _Stateless),
        "AveragePooling1D": _layer_class("AveragePooling1D", average_pooling1d, pool, _Stateless),
        "MaxPooling2D": _layer_class("MaxPooling2D", L.max_pooling2d, pool, _Stateless),
        "AveragePooling2D": _layer_class("AveragePooling2D", L.average_pooling2d, pool, _Stateless),
        "Flatten": _layer_class("Flatten", L.flatten, (), _Stateless),
        "Dropout": _layer_class("Dropout", L.dropout, ("rate",), _Stateless),
    }


_CLASSES = _classes()
Dense = _CLASSES["Dense"]
Conv1D = _CLASSES["Conv1D"]
Conv2D = _CLASSES["Conv2D"]
Conv2DTranspose = _CLASSES["Conv2DTranspose"]
BatchNormalization = _CLASSES["BatchNormalization"]
MaxPooling1D = _CLASSES["MaxPooling1D"]
AveragePooling1D = _CLASSES["AveragePooling1D"]
MaxPooling2D = _CLASSES["MaxPooling2D"]
AveragePooling2D = _CLASSES["AveragePooling2D"]
Flatten = _CLASSES["Flatten"]
Dropout = _CLASSES["Dropout"]
