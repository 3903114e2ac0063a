"""Neural-network ops: activations, softmax, bias_add, conv2d, pooling, dropout, losses.

Convolutions use im2col + one `np.matmul`, so the reference kernels run at BLAS speed; pooling uses
strided window views. All spatial ops are NHWC.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.framework.tensor_shape import TensorShape, shape_str
from jitflow.ir import expr as E
from jitflow.ir.formula import Elementwise
from jitflow.ops import array_ops as A
from jitflow.ops import elementwise
from jitflow.ops import math_ops as M
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import FLOATS, check_dtype, make_op, out, same_dtype_inputs

sigmoid = M.sigmoid
tanh = M.tanh

# -- activations ------------------------------------------------------------------------------------------


# Each activation is one formula (`jitflow.ops.elementwise`): the reference kernel, the CPU and CUDA
# kernels and the gradient op's kernels all derive from it.


def _relu(x: Any) -> Any:
    return E.maximum(x, 0)


def _relu6(x: Any) -> Any:
    return E.minimum(E.maximum(x, 0), 6)


def _elu(x: Any) -> Any:
    return E.where(x > 0, x, E.expm1(E.minimum(x, 0)))


def _leaky_relu(x: Any, alpha: float) -> Any:
    return E.where(x > 0, x, x * alpha)


def _same_as_first(op: Operation) -> list:
    return [(op.inputs[0].dtype, op.inputs[0].shape)]


elementwise.define("Relu", _relu, E.NUMERIC, infer=_same_as_first,
                   grad=lambda op, g: [elementwise.apply("ReluGrad", [g, op.outputs[0]])])
elementwise.define("ReluGrad", lambda g, x: E.where(x > 0, g, 0), E.NUMERIC,
                   grad=lambda op, g: [elementwise.apply("ReluGrad", [g, op.inputs[1]]),
                                       A.zeros_like(op.inputs[1])])
elementwise.define("Relu6", _relu6, E.NUMERIC, infer=_same_as_first,
                   grad=lambda op, g: [elementwise.apply("Relu6Grad", [g, op.outputs[0]])])
elementwise.define("Relu6Grad", lambda g, x: E.where((x > 0) & (x < 6), g, 0), E.NUMERIC)
elementwise.define("Elu", _elu, infer=_same_as_first,
                   grad=lambda op, g: [elementwise.apply("EluGrad", [g, op.outputs[0]])])
elementwise.define("EluGrad", lambda g, y: E.where(y > 0, g, g * (y + 1)))
elementwise.define("LeakyRelu", _leaky_relu, attrs=("alpha",), infer=_same_as_first,
                   grad=lambda op, g: [elementwise.apply("LeakyReluGrad", [g, op.inputs[0]],
                                                         {"alpha": op.attrs["alpha"]})])
elementwise.define("LeakyReluGrad", lambda g, x, alpha: E.where(x > 0, g, g * alpha), attrs=("alpha",))

# Softplus, with its gradient, end to end: log(1 + e^x) = max(x, 0) + log1p(e^-|x|), no overflow.
elementwise.define("Softplus", lambda x: E.maximum(x, 0) + E.log1p(E.exp(-abs(x))), infer=_same_as_first,
                   grad=lambda op, g: [elementwise.apply("SoftplusGrad", [g, op.inputs[0]])])
elementwise.define("SoftplusGrad", lambda g, x: g * E.sigmoid(x))


def _activation(op_type: str, x: Any, name: str | None, attrs: dict[str, Any] | None = None) -> Tensor:
    t = convert_to_tensor(x)
    check_dtype(op_type, t, FLOATS + (dtypes.int32, dtypes.int64) if op_type in ("Relu", "Relu6") else FLOATS,
                "features")
    return out(make_op(op_type, [t], {"T": t.dtype, **(attrs or {})}, name=name or op_type))


def relu(features: Any, name: str | None = None) -> Tensor:
    """max(features, 0)."""
    return _activation("Relu", features, name)


def relu6(features: Any, name: str | None = None) -> Tensor:
    """min(max(features, 0), 6)."""
    return _activation("Relu6", features, name)


def elu(features: Any, name: str | None = None) -> Tensor:
    """x if x > 0 else exp(x) - 1."""
    return _activation("Elu", features, name)


def softplus(features: Any, name: str | None = None) -> Tensor:
    """log(exp(features) + 1), computed without overflow."""
    return _activation("Softplus", features, name)


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """x if x > 0 else alpha * x."""
    return _activation("LeakyRelu", features, name, {"alpha": float(alpha)})


# -- softmax ---------------------------------------------------------------------------------------------------


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(x.dtype, copy=False)


def _softmax_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, exp(z), sum(exp(z))) with z = x - max(x) along the last axis: one exp for loss and gradient."""
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    return z, e, np.sum(e, axis=-1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - np.max(x, axis=-1, keepdims=True)
    return (z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))).astype(x.dtype, copy=False)


def _softmax_infer(op: Operation) -> list:
    x = op.inputs[0]
    if x.shape.ndims == 0:
        raise ValueError(f"Shape must be at least rank 1 but is rank 0 for '{op.name}' (op: '{op.type}')")
    return [(x.dtype, x.shape)]


def _check_rank1(x: np.ndarray) -> np.ndarray:
    if x.ndim < 1:
        raise InvalidArgumentError(None, None, "logits must have >= 1 dimension, got []")
    return x


registry.register_op("Softmax", _softmax_infer, lambda ctx, op, ins: _softmax(_check_rank1(ins[0])),
                     registry.OPAQUE, library="rows")
registry.register_op("LogSoftmax", _softmax_infer, lambda ctx, op, ins: _log_softmax(_check_rank1(ins[0])),
                     registry.OPAQUE, library="rows")


def _along_last(op_type: str, logits: Any, axis: int | None, name: str | None) -> Tensor:
    """Applies a last-axis op along `axis` by swapping that axis to the end and back."""
    x = convert_to_tensor(logits)
    check_dtype(op_type, x, FLOATS, "logits")
    r = x.shape.ndims
    a = -1 if axis is None else int(axis)
    if r is not None and r > 0:
        if not -r <= a < r:
            raise ValueError(f"axis {a} is out of range for a tensor of rank {r}")
        a %= r
    if a == -1 or (r is not None and a == r - 1):
        return out(make_op(op_type, [x], {"T": x.dtype}, name=name or op_type))
    if r is None:
        raise ValueError(f"{op_type} along axis {a} needs an input of known rank")
    perm = list(range(r))
    perm[a], perm[-1] = perm[-1], perm[a]
    with _name_scope(name, op_type):
        y = out(make_op(op_type, [A.transpose(x, perm)], {"T": x.dtype}, name=op_type))
        return A.transpose(y, perm)


def softmax(logits: Any, axis: int | None = None, name: str | None = None, dim: int | None = None) -> Tensor:
    """exp(logits) / sum(exp(logits)) along `axis` (default: the last)."""
    return _along_last("Softmax", logits, axis if axis is not None else dim, name)


def log_softmax(logits: Any, axis: int | None = None, name: str | None = None, dim: int | None = None) -> Tensor:
    """logits - log(sum(exp(logits))) along `axis` (default: the last)."""
    return _along_last("LogSoftmax", logits, axis if axis is not None else dim, name)


# -- bias_add ---------------------------------------------------------------------------------------------------


def _bias_add_infer(op: Operation) -> list:
    v, b = op.inputs
    vd, bd = v.shape.as_tuple(), b.shape.as_tuple()
    if bd is not None and len(bd) != 1:
        raise ValueError(f"Shape must be rank 1 but is rank {len(bd)} for '{op.name}' (op: 'BiasAdd') with input "
                         f"shapes: {shape_str(vd)}, {shape_str(bd)}.")
    if vd is None:
        return [(v.dtype, v.shape)]
    if len(vd) < 2:
        raise ValueError(f"Shape must be at least rank 2 but is rank {len(vd)} for '{op.name}' (op: 'BiasAdd') "
                         f"with input shapes: {shape_str(vd)}, {shape_str(bd)}.")
    last = vd[-1]
    if bd is not None and last is not None and bd[0] is not None and bd[0] != last:
        raise ValueError(f"Dimensions must be equal, but are {last} and {bd[0]} for '{op.name}' (op: 'BiasAdd') "
                         f"with input shapes: {shape_str(vd)}, {shape_str(bd)}.")
    if last is None and bd is not None:
        return [(v.dtype, TensorShape(list(vd[:-1]) + [bd[0]]))]
    return [(v.dtype, v.shape)]


def _bias_add_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    v, b = ins
    if v.ndim < 2 or b.ndim != 1 or v.shape[-1] != b.shape[0]:
        raise InvalidArgumentError(None, None, f"Must provide as many biases as the last dimension of the input "
                                               f"tensor: {shape_str(b.shape)} vs. {shape_str(v.shape)}")
    return v + b


registry.register_op("BiasAdd", _bias_add_infer, _bias_add_kernel, registry.ELEMENTWISE,
                     lowering=Elementwise(lambda x, b: x + b, E.NUMERIC,
                                          shape_check=lambda s: len(s[0]) >= 2 and len(s[1]) == 1
                                          and s[0][-1] == s[1][0]))


def bias_add(value: Any, bias: Any, data_format: str | None = None, name: str | None = None) -> Tensor:
    """value + bias, with the 1-D `bias` added along the channel (last, for NHWC) dimension."""
    v, b = same_dtype_inputs("BiasAdd", [value, bias], ("value", "bias"))
    if data_format in (None, "NHWC", "N...C"):
        return out(make_op("BiasAdd", [v, b], {"T": v.dtype, "data_format": "NHWC"}, name=name or "BiasAdd"))
    if data_format not in ("NCHW", "NC..."):
        raise ValueError(f"data_format must be NHWC or NCHW, got {data_format}")
    r = v.shape.ndims
    if r is None:
        raise ValueError("bias_add with NCHW needs an input of known rank")
    with _name_scope(name, "BiasAdd"):
        return M.add(v, A.reshape(b, [-1] + [1] * (r - 2)))


# -- convolution and pooling geometry ---------------------------------------------------------------------------


def _four(v: Any, what: str, data_format: str | None = "NHWC") -> list[int]:
    """A 4-element strides/dilations/ksize attr (in `data_format` order) from an int or 1, 2 or 4 values."""
    if isinstance(v, (int, np.integer)):
        vals = [int(v)]
    else:
        vals = [int(x) for x in v]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) == 2:
        return [1, 1, *vals] if data_format == "NCHW" else [1, *vals, 1]
    if len(vals) != 4:
        raise ValueError(f"{what} must have 1, 2 or 4 elements, got {vals}")
    return vals


def _check_format(data_format: str | None) -> str:
    if data_format in (None, "NHWC"):
        return "NHWC"
    if data_format == "NCHW":
        return "NCHW"
    raise ValueError(f"data_format must be 'NHWC' or 'NCHW', got {data_format!r}")


def _check_window_attr(vals: list[int], what: str, fmt: str, op_type: str, name: str | None) -> None:
    """TF's checks of strides/dilations/ksize: positive, and 1 on the batch and depth dimensions."""
    for v in vals:
        if v < 1:
            raise ValueError(f"{what.capitalize().rstrip('s')} must be > 0, but got {v} for '{name or op_type}' "
                             f"(op: '{op_type}')")
    c = 1 if fmt == "NCHW" else 3
    if vals[0] != 1 or vals[c] != 1:
        if op_type in ("MaxPool", "AvgPool"):
            raise ValueError("Pooling is not yet supported on the batch or depth dimensions.")
        raise ValueError(f"Current implementation does not yet support {what} in the batch and depth "
                         "dimensions.")


def _pads(n: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """(before, after) padding along one spatial dim; SAME puts the extra one after, as TF does."""
    if padding == "VALID":
        return 0, 0
    o = -(-n // s)
    total = max((o - 1) * s + k - n, 0)
    return total // 2, total - total // 2


_PADDINGS = ("SAME", "VALID", "EXPLICIT")


def _check_padding(padding: Any, op_type: str = "Conv2D") -> tuple[str, list[int]]:
    """(padding attr, explicit_paddings attr): a string, or TF's [[0, 0], [t, b], [l, r], [0, 0]] list."""
    if isinstance(padding, (list, tuple)):
        pairs = [[int(v) for v in pr] for pr in padding]
        if len(pairs) != 4 or any(len(pr) != 2 for pr in pairs) or min(v for pr in pairs for v in pr) < 0:
            raise ValueError(f"padding should be a list of 4 non-negative [before, after] pairs, got {padding}")
        return "EXPLICIT", [v for pr in pairs for v in pr]
    p = padding.decode() if isinstance(padding, bytes) else str(padding)
    if p.upper() not in _PADDINGS:
        raise ValueError(f"Attr 'padding' of '{op_type}' Op passed string '{p}' not in: \"SAME\", \"VALID\", "
                         f"\"EXPLICIT\".")
    if p.upper() == "EXPLICIT":
        raise ValueError("padding='EXPLICIT' needs the paddings themselves: pass a list of 4 [before, after] pairs")
    return p.upper(), []


def _spatial(v: list[int], data_format: str) -> tuple[int, int]:
    """The (height, width) entries of a 4-element strides/dilations/ksize attr."""
    return (v[2], v[3]) if data_format == "NCHW" else (v[1], v[2])


def _explicit_hw(attrs: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of an EXPLICIT padding attr, in the op's data format."""
    e = attrs.get("explicit_paddings") or [0] * 8
    h = 4 if attrs.get("data_format") == "NCHW" else 2
    return (e[h], e[h + 1]), (e[h + 2], e[h + 3])


def _out_dim(n: int | None, k: int | None, s: int, padding: str, pads: tuple[int, int]) -> int | None:
    """Output size along one dim of a window op (k already dilated); may be <= 0 when invalid."""
    if n is None or k is None:
        return None
    if padding == "EXPLICIT":
        return (n + pads[0] + pads[1] - k) // s + 1
    if padding == "VALID":
        return (n - k) // s + 1
    return -(-n // s)


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, oh: int,
             ow: int) -> np.ndarray:
    """A read-only strided view (N, OH, OW, KH, KW, C) of the windows of a padded NHWC input."""
    n, _, _, c = x.shape
    s0, s1, s2, s3 = x.strides
    return as_strided(x, shape=(n, oh, ow, kh, kw, c), strides=(s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3),
                      writeable=False)


def _pad_spatial(x: np.ndarray, ph: tuple[int, int], pw: tuple[int, int], value: float = 0.0) -> np.ndarray:
    if ph == (0, 0) and pw == (0, 0):
        return x
    return np.pad(x, [(0, 0), ph, pw, (0, 0)], constant_values=value)


class _Geom:
    """The geometry of one 2-D window op: kernel, strides, dilations, padding and output sizes.

    `in_shape` is NHWC; the attrs are in the op's own data format.
    """

    def __init__(self, in_shape: tuple[int, ...], kh: int, kw: int, attrs: dict[str, Any]) -> None:
        _, self.h, self.w, _ = in_shape
        self.kh, self.kw = kh, kw
        fmt = attrs.get("data_format", "NHWC")
        self.sh, self.sw = _spatial(attrs["strides"], fmt)
        self.dh, self.dw = _spatial(attrs.get("dilations", [1, 1, 1, 1]), fmt)
        ekh, ekw = (kh - 1) * self.dh + 1, (kw - 1) * self.dw + 1
        pad = attrs["padding"]
        if pad == "EXPLICIT":
            self.ph, self.pw = _explicit_hw(attrs)
        else:
            self.ph, self.pw = _pads(self.h, ekh, self.sh, pad), _pads(self.w, ekw, self.sw, pad)
        self.oh = _out_dim(self.h, ekh, self.sh, pad, self.ph) or 0
        self.ow = _out_dim(self.w, ekw, self.sw, pad, self.pw) or 0


def _to_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if data_format == "NCHW" else x


def _from_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if data_format == "NCHW" else x


def _nhwc_shape(shape: Any, data_format: str) -> tuple:
    """An NHWC shape tuple from one in the op's data format."""
    t = tuple(shape)
    return (t[0], t[2], t[3], t[1]) if data_format == "NCHW" else t


def _fmt_shape(shape: tuple, data_format: str) -> tuple:
    """The inverse of `_nhwc_shape`."""
    return (shape[0], shape[3], shape[1], shape[2]) if data_format == "NCHW" else shape


# -- conv2d -------------------------------------------------------------------------------------------------


def _conv_infer(op: Operation) -> list:
    x, f = op.inputs
    xd, fd = x.shape.as_tuple(), f.shape.as_tuple()
    fmt = op.attrs.get("data_format", "NHWC")
    for t in (xd, fd):
        if t is not None and len(t) != 4:
            raise ValueError(f"Shape must be rank 4 but is rank {len(t)} for '{op.name}' (op: 'Conv2D') with input "
                             f"shapes: {shape_str(xd)}, {shape_str(fd)}.")
    if xd is None or fd is None:
        n, o = None if xd is None else xd[0], None if fd is None else fd[3]
        return [(x.dtype, TensorShape(list(_fmt_shape((n, None, None, o), fmt))))]
    nd = _nhwc_shape(xd, fmt)
    if nd[3] is not None and fd[2] is not None and nd[3] != fd[2]:
        raise ValueError(f"Depth of input ({nd[3]}) is not a multiple of input depth of filter ({fd[2]}) for "
                         f"'{op.name}' (op: 'Conv2D') with input shapes: {shape_str(xd)}, {shape_str(fd)}.")
    dims = _window_out_dims(op, nd, fd[0], fd[1], "dilations")
    return [(x.dtype, TensorShape(list(_fmt_shape((nd[0], dims[0], dims[1], fd[3]), fmt))))]


def _window_out_dims(op: Operation, nd: tuple, kh: int | None, kw: int | None,
                     dil_attr: str | None) -> list[int | None]:
    """Output (height, width) of a window op from its NHWC input shape; TF's error when one is negative."""
    fmt = op.attrs.get("data_format", "NHWC")
    s, p = _spatial(op.attrs["strides"], fmt), op.attrs["padding"]
    d = _spatial(op.attrs[dil_attr], fmt) if dil_attr else (1, 1)
    pads = _explicit_hw(op.attrs) if p == "EXPLICIT" else ((0, 0), (0, 0))
    dims = []
    for n, k, st, dd, pd in zip(nd[1:3], (kh, kw), s, d, pads):
        ek = None if k is None else (k - 1) * dd + 1
        o = _out_dim(n, ek, st, p, pd)
        if o is not None and o <= 0:
            ins = ", ".join(shape_str(t.shape.as_tuple()) for t in op.inputs)
            raise ValueError(f"Negative dimension size caused by subtracting {ek} from {n + pd[0] + pd[1]} for "
                             f"'{op.name}' (op: '{op.type}') with input shapes: {ins}.")
        dims.append(o)
    return dims


_tls = threading.local()
_SCRATCH_MAX = 512 << 20


def _scratch(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-thread work buffer, reused across runs: fresh large allocations cost a page fault per 4 KiB."""
    n = int(np.prod(shape)) * dtype.itemsize
    if n > _SCRATCH_MAX:  # too big to keep around between runs
        return np.empty(shape, dtype)
    buf = getattr(_tls, "buf", None)
    if buf is None or buf.nbytes < n:
        buf = np.empty(max(n, 1), np.uint8)
        _tls.buf = buf
    return buf[:n].view(dtype).reshape(shape)


def _im2col(x: np.ndarray, g: _Geom) -> np.ndarray:
    """(N*OH*OW, KH*KW*C) patches, rows in output order, columns in filter order (in the scratch buffer)."""
    n, c = x.shape[0], x.shape[3]
    xp = _pad_spatial(x, g.ph, g.pw)
    cols = _scratch((n, g.oh, g.ow, g.kh, g.kw, c), x.dtype)
    for i in range(g.kh):  # one strided slab copy per filter tap
        r0 = i * g.dh
        for j in range(g.kw):
            c0 = j * g.dw
            cols[:, :, :, i, j, :] = xp[:, r0:r0 + g.sh * (g.oh - 1) + 1:g.sh, c0:c0 + g.sw * (g.ow - 1) + 1:g.sw, :]
    return cols.reshape(n * g.oh * g.ow, -1)


def _pointwise(g: _Geom) -> bool:
    """1x1, stride 1, no padding: a plain matmul over pixels."""
    return g.kh == g.kw == 1 and g.sh == g.sw == 1 and g.ph == g.pw == (0, 0)


def _check_out_size(g: _Geom, x_shape: tuple, f_shape: tuple) -> None:
    if g.oh <= 0 or g.ow <= 0:
        raise InvalidArgumentError(None, None, f"Computed output size would be negative: input "
                                               f"{shape_str(x_shape)}, filter {shape_str(f_shape)}")


def _conv_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    fmt = op.attrs.get("data_format", "NHWC")
    x, f = _to_nhwc(ins[0], fmt) if ins[0].ndim == 4 else ins[0], ins[1]
    if x.ndim != 4 or f.ndim != 4 or x.shape[3] != f.shape[2]:
        raise InvalidArgumentError(None, None, f"input depth must equal filter depth: input shape "
                                               f"{shape_str(ins[0].shape)}, filter shape {shape_str(f.shape)}")
    g = _Geom(x.shape, f.shape[0], f.shape[1], op.attrs)
    _check_out_size(g, ins[0].shape, f.shape)
    kh, kw, c, o = f.shape
    cols = x.reshape(-1, c) if _pointwise(g) else _im2col(x, g)
    res = np.matmul(cols, f.reshape(kh * kw * c, o))
    return _from_nhwc(res.reshape(x.shape[0], g.oh, g.ow, o).astype(op.outputs[0].dtype.np, copy=False), fmt)


def _check_backprop(dy: np.ndarray, want: tuple[int, ...], in_depth: int, filter_depth: int) -> None:
    if in_depth != filter_depth:
        raise InvalidArgumentError(None, None, f"input depth {in_depth} must equal filter depth {filter_depth}")
    if dy.shape != want:
        raise InvalidArgumentError(None, None, f"Conv2D backprop: out_backprop has shape {shape_str(dy.shape)}, "
                                               f"but the convolution's output shape is {shape_str(want)}")


def _conv_backprop_input_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    fmt = op.attrs.get("data_format", "NHWC")
    sizes, f, dy = ins
    shape = _nhwc_shape((int(v) for v in sizes), fmt)
    dy = _to_nhwc(dy, fmt) if dy.ndim == 4 else dy
    g = _Geom(shape, f.shape[0], f.shape[1], op.attrs)
    kh, kw, c, o = f.shape
    n = shape[0]
    _check_out_size(g, shape, f.shape)
    _check_backprop(dy, (n, g.oh, g.ow, o), shape[3], c)
    dcols = _scratch((n * g.oh * g.ow, kh * kw * c), dy.dtype)
    np.matmul(dy.reshape(-1, o), f.reshape(kh * kw * c, o).T, out=dcols)
    return _from_nhwc(_col2im(dcols.reshape(n, g.oh, g.ow, kh, kw, c), g), fmt)


def _col2im(dcols: np.ndarray, g: _Geom) -> np.ndarray:
    """(N, H, W, C) sums of (N, OH, OW, KH, KW, C) patch entries at their input positions (padding dropped)."""
    n, c = dcols.shape[0], dcols.shape[5]
    hp, wp = g.h + g.ph[0] + g.ph[1], g.w + g.pw[0] + g.pw[1]
    dxp = np.zeros((n, hp, wp, c), dtype=dcols.dtype)
    for i in range(g.kh):  # each filter tap adds its slab back at its strided positions
        r0 = i * g.dh
        for j in range(g.kw):
            c0 = j * g.dw
            dxp[:, r0:r0 + g.sh * (g.oh - 1) + 1:g.sh, c0:c0 + g.sw * (g.ow - 1) + 1:g.sw, :] += dcols[:, :, :, i, j]
    return np.ascontiguousarray(dxp[:, g.ph[0]:g.ph[0] + g.h, g.pw[0]:g.pw[0] + g.w, :])


def _conv_backprop_filter_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    fmt = op.attrs.get("data_format", "NHWC")
    x, sizes, dy = ins
    x, dy = (_to_nhwc(v, fmt) if v.ndim == 4 else v for v in (x, dy))
    kh, kw, c, o = (int(v) for v in sizes)
    g = _Geom(x.shape, kh, kw, op.attrs)
    _check_out_size(g, x.shape, (kh, kw, c, o))
    _check_backprop(dy, (x.shape[0], g.oh, g.ow, o), x.shape[3], c)
    cols = x.reshape(-1, c) if _pointwise(g) else _im2col(x, g)
    return np.matmul(cols.T, dy.reshape(-1, o)).reshape(kh, kw, c, o).astype(dy.dtype, copy=False)


def _backprop_input_infer(op: Operation) -> list:
    v = A._ints(op.inputs[0])
    return [(op.inputs[2].dtype, TensorShape(v) if v is not None else TensorShape([None] * 4))]


def _backprop_filter_infer(op: Operation) -> list:
    v = A._ints(op.inputs[1])
    return [(op.inputs[2].dtype, TensorShape(v) if v is not None else TensorShape([None] * 4))]


registry.register_op("Conv2D", _conv_infer, _conv_kernel, registry.OPAQUE)
registry.register_op("Conv2DBackpropInput", _backprop_input_infer, _conv_backprop_input_kernel, registry.OPAQUE)
registry.register_op("Conv2DBackpropFilter", _backprop_filter_infer, _conv_backprop_filter_kernel,
                     registry.OPAQUE)


def conv_grad_kwargs(op: Operation) -> dict[str, Any]:
    """strides/padding/dilations/data_format keyword arguments that rebuild `op`'s attrs (for gradients)."""
    kw = {k: op.attrs[k] for k in ("strides", "padding", "dilations")}
    kw["data_format"] = op.attrs.get("data_format", "NHWC")
    if kw["padding"] == "EXPLICIT":
        e = op.attrs["explicit_paddings"]
        kw["padding"] = [e[i:i + 2] for i in range(0, 8, 2)]
    return kw


def _conv_attrs(strides: Any, padding: Any, dilations: Any, data_format: str | None, dt: dtypes.DType,
                op_type: str = "Conv2D", name: str | None = None) -> dict[str, Any]:
    fmt = _check_format(data_format)
    s = _four(strides if strides is not None else 1, "strides", fmt)
    d = _four(dilations if dilations is not None else 1, "dilations", fmt)
    _check_window_attr(s, "strides", fmt, op_type, name)
    _check_window_attr(d, "dilations", fmt, op_type, name)
    if max(_spatial(s, fmt)) > 1 and max(_spatial(d, fmt)) > 1:
        raise ValueError("strides > 1 not supported in conjunction with dilation_rate > 1")
    pad, explicit = _check_padding(padding, op_type)
    return {"strides": s, "dilations": d, "padding": pad, "explicit_paddings": explicit, "data_format": fmt,
            "T": dt, "use_cudnn_on_gpu": True}


def conv2d(input: Any, filter: Any = None, strides: Any = None, padding: Any = None,  # noqa: A002 - TF's name
           use_cudnn_on_gpu: bool = True, data_format: str = "NHWC", dilations: Any = None,
           name: str | None = None, filters: Any = None) -> Tensor:
    """2-D convolution of NHWC `input` with an [h, w, in, out] `filter` (SAME or VALID padding)."""
    if filter is None:
        filter = filters
    if filter is None or padding is None:
        raise ValueError("conv2d needs a filter and a padding")
    x, f = same_dtype_inputs("Conv2D", [input, filter], ("input", "filter"))
    check_dtype("Conv2D", x, FLOATS, "input")
    return out(make_op("Conv2D", [x, f], _conv_attrs(strides, padding, dilations, data_format, x.dtype,
                                                     name=name), name=name or "Conv2D"))


def conv2d_backprop_input(input_sizes: Any, filter: Any, out_backprop: Any, strides: Any,  # noqa: A002
                          padding: Any, use_cudnn_on_gpu: bool = True, data_format: str = "NHWC",
                          dilations: Any = None, name: str | None = None) -> Tensor:
    """The gradient of conv2d with respect to its input."""
    f, dy = same_dtype_inputs("Conv2DBackpropInput", [filter, out_backprop], ("filter", "out_backprop"))
    s = A._int_input(input_sizes, "input_sizes")
    attrs = _conv_attrs(strides, padding, dilations, data_format, f.dtype, "Conv2DBackpropInput", name)
    return out(make_op("Conv2DBackpropInput", [s, f, dy], attrs, name=name or "Conv2DBackpropInput"))


def conv2d_backprop_filter(input: Any, filter_sizes: Any, out_backprop: Any, strides: Any,  # noqa: A002
                           padding: Any, use_cudnn_on_gpu: bool = True, data_format: str = "NHWC",
                           dilations: Any = None, name: str | None = None) -> Tensor:
    """The gradient of conv2d with respect to its filter."""
    x, dy = same_dtype_inputs("Conv2DBackpropFilter", [input, out_backprop], ("input", "out_backprop"))
    s = A._int_input(filter_sizes, "filter_sizes")
    return out(make_op("Conv2DBackpropFilter", [x, s, dy], _conv_attrs(strides, padding, dilations, data_format,
                                                                       x.dtype, "Conv2DBackpropFilter", name),
                       name=name or "Conv2DBackpropFilter"))


# -- pooling -------------------------------------------------------------------------------------------------


def _pool_infer(op: Operation) -> list:
    x = op.inputs[0]
    xd = x.shape.as_tuple()
    if xd is None:
        return [(x.dtype, TensorShape([None] * 4))]
    if len(xd) != 4:
        raise ValueError(f"Shape must be rank 4 but is rank {len(xd)} for '{op.name}' (op: '{op.type}') with "
                         f"input shapes: {shape_str(xd)}.")
    fmt = op.attrs.get("data_format", "NHWC")
    nd = _nhwc_shape(xd, fmt)
    kh, kw = _spatial(op.attrs["ksize"], fmt)
    dims = _window_out_dims(op, nd, kh, kw, None)
    return [(x.dtype, TensorShape(list(_fmt_shape((nd[0], dims[0], dims[1], nd[3]), fmt))))]


def _pool_geom(op: Operation, shape: tuple[int, ...]) -> _Geom:
    """The geometry of a pooling op over an NHWC input of `shape`."""
    if len(shape) != 4:
        raise InvalidArgumentError(None, None, f"input must be 4-dimensional, got {shape_str(shape)}")
    k = op.attrs["ksize"]
    g = _Geom(shape, *_spatial(k, op.attrs.get("data_format", "NHWC")), op.attrs)
    if g.oh <= 0 or g.ow <= 0:
        raise InvalidArgumentError(None, None, f"Computed output size would be negative for input "
                                               f"{shape_str(shape)} and ksize {k}")
    return g


def _neg_fill(dt: np.dtype) -> Any:
    return -np.inf if dt.kind == "f" else np.iinfo(dt).min


def _fmt(op: Operation) -> str:
    return op.attrs.get("data_format", "NHWC")


def _max_pool_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = _to_nhwc(ins[0], _fmt(op)) if ins[0].ndim == 4 else ins[0]
    g = _pool_geom(op, x.shape)
    xp = _pad_spatial(x, g.ph, g.pw, _neg_fill(x.dtype))
    win = _windows(xp, g.kh, g.kw, g.sh, g.sw, 1, 1, g.oh, g.ow)
    return _from_nhwc(win.max(axis=(3, 4)), _fmt(op))


def _window_counts(g: _Geom) -> np.ndarray:
    """(OH, OW) number of real (unpadded) input pixels in each window."""
    rows = np.arange(g.oh) * g.sh - g.ph[0]
    cols = np.arange(g.ow) * g.sw - g.pw[0]
    rh = np.minimum(rows + g.kh, g.h) - np.maximum(rows, 0)
    cw = np.minimum(cols + g.kw, g.w) - np.maximum(cols, 0)
    return np.outer(rh, cw)


def _avg_pool_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = _to_nhwc(ins[0], _fmt(op)) if ins[0].ndim == 4 else ins[0]
    g = _pool_geom(op, x.shape)
    xp = _pad_spatial(x, g.ph, g.pw)
    win = _windows(xp, g.kh, g.kw, g.sh, g.sw, 1, 1, g.oh, g.ow)
    s = win.sum(axis=(3, 4), dtype=x.dtype)
    return _from_nhwc((s / _window_counts(g)[None, :, :, None].astype(x.dtype)).astype(x.dtype, copy=False),
                      _fmt(op))


def _check_pool_grad(dy: np.ndarray, want: tuple[int, ...]) -> None:
    if dy.shape != want:
        raise InvalidArgumentError(None, None, f"Pooling gradient has shape {shape_str(dy.shape)}, but the pooled "
                                               f"output's shape is {shape_str(want)}")


def _max_pool_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x, _, dy = (_to_nhwc(v, _fmt(op)) if v.ndim == 4 else v for v in ins)
    g = _pool_geom(op, x.shape)
    n, _, _, c = x.shape
    _check_pool_grad(dy, (n, g.oh, g.ow, c))
    xp = _pad_spatial(x, g.ph, g.pw, _neg_fill(x.dtype))
    win = _windows(xp, g.kh, g.kw, g.sh, g.sw, 1, 1, g.oh, g.ow)
    # The first maximum of each window (row-major within the window) takes the whole gradient, as in TF.
    arg = np.moveaxis(win, 5, 3).reshape(n, g.oh, g.ow, c, g.kh * g.kw).argmax(axis=-1)
    ih = np.arange(g.oh)[None, :, None, None] * g.sh + arg // g.kw
    iw = np.arange(g.ow)[None, None, :, None] * g.sw + arg % g.kw
    hp, wp = xp.shape[1], xp.shape[2]
    flat = ((np.arange(n)[:, None, None, None] * hp + ih) * wp + iw) * c + np.arange(c)
    acc = np.bincount(flat.reshape(-1), weights=dy.reshape(-1).astype(np.float64), minlength=n * hp * wp * c)
    dxp = acc.reshape(n, hp, wp, c).astype(dy.dtype)
    return _from_nhwc(np.ascontiguousarray(dxp[:, g.ph[0]:g.ph[0] + g.h, g.pw[0]:g.pw[0] + g.w, :]), _fmt(op))


def _avg_pool_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    sizes, dy = ins
    shape = _nhwc_shape((int(v) for v in sizes), _fmt(op))
    dy = _to_nhwc(dy, _fmt(op)) if dy.ndim == 4 else dy
    g = _pool_geom(op, shape)
    n, _, _, c = shape
    _check_pool_grad(dy, (n, g.oh, g.ow, c))
    share = dy / _window_counts(g)[None, :, :, None].astype(dy.dtype)
    dxp = np.zeros((n, g.h + g.ph[0] + g.ph[1], g.w + g.pw[0] + g.pw[1], c), dtype=dy.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            dxp[:, i:i + g.sh * (g.oh - 1) + 1:g.sh, j:j + g.sw * (g.ow - 1) + 1:g.sw, :] += share
    return _from_nhwc(np.ascontiguousarray(dxp[:, g.ph[0]:g.ph[0] + g.h, g.pw[0]:g.pw[0] + g.w, :]), _fmt(op))


registry.register_op("MaxPool", _pool_infer, _max_pool_kernel, registry.OPAQUE)
registry.register_op("AvgPool", _pool_infer, _avg_pool_kernel, registry.OPAQUE)
registry.register_op("MaxPoolGrad", lambda op: [(op.inputs[0].dtype, op.inputs[0].shape)], _max_pool_grad_kernel,
                     registry.OPAQUE)
registry.register_op("AvgPoolGrad", lambda op: [(op.inputs[1].dtype, TensorShape(A._ints(op.inputs[0]))
                                                 if A._ints(op.inputs[0]) is not None else TensorShape([None] * 4))],
                     _avg_pool_grad_kernel, registry.OPAQUE)


def _pool_attrs(ksize: Any, strides: Any, padding: Any, data_format: str | None, dt: dtypes.DType,
                op_type: str = "MaxPool", name: str | None = None) -> dict[str, Any]:
    fmt = _check_format(data_format)
    k, s = _four(ksize, "ksize", fmt), _four(strides, "strides", fmt)
    _check_window_attr(s, "strides", fmt, op_type, name)
    _check_window_attr(k, "ksize", fmt, op_type, name)
    pad, _ = _check_padding(padding if isinstance(padding, (str, bytes)) else str(padding), op_type)
    return {"ksize": k, "strides": s, "padding": pad, "data_format": fmt, "T": dt}


def max_pool(value: Any, ksize: Any, strides: Any, padding: Any, data_format: str = "NHWC",
             name: str | None = None, input: Any = None) -> Tensor:  # noqa: A002 - TF's name
    """Max over `ksize` windows of an NHWC tensor."""
    x = convert_to_tensor(value if value is not None else input)
    check_dtype("MaxPool", x, FLOATS + (dtypes.int32, dtypes.int64, dtypes.uint8, dtypes.int8, dtypes.int16),
                "input")
    return out(make_op("MaxPool", [x], _pool_attrs(ksize, strides, padding, data_format, x.dtype, "MaxPool", name),
                       name=name or "MaxPool"))


def avg_pool(value: Any, ksize: Any, strides: Any, padding: Any, data_format: str = "NHWC",
             name: str | None = None, input: Any = None) -> Tensor:  # noqa: A002 - TF's name
    """Mean over `ksize` windows of an NHWC tensor (padding is not counted)."""
    x = convert_to_tensor(value if value is not None else input)
    check_dtype("AvgPool", x, FLOATS, "value")
    return out(make_op("AvgPool", [x], _pool_attrs(ksize, strides, padding, data_format, x.dtype, "AvgPool", name),
                       name=name or "AvgPool"))


# -- dropout, l2_loss, moments -------------------------------------------------------------------------------


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: int | None = None,
            name: str | None = None, rate: Any = None) -> Tensor:
    """Keeps each element with probability `keep_prob` (= 1 - rate), scaled by 1/keep_prob; zeroes the rest."""
    from jitflow.ops.random_ops import random_uniform

    if keep_prob is not None and rate is not None:
        raise ValueError("Cannot specify both 'keep_prob' and 'rate'.")
    if keep_prob is None and rate is None:
        raise ValueError("dropout needs keep_prob or rate")
    with _name_scope(name, "dropout"):
        t = convert_to_tensor(x)
        check_dtype("dropout", t, FLOATS, "x")
        if rate is not None:
            if isinstance(rate, (int, float)) and not 0 <= rate < 1:
                raise ValueError(f"rate must be a scalar tensor or a float in the range [0, 1), got {rate}")
            kp: Any = 1 - rate if isinstance(rate, (int, float)) else M.subtract(1.0, convert_to_tensor(rate,
                                                                                                 dtype=t.dtype))
        else:
            kp = keep_prob
        if isinstance(kp, (int, float)):
            if not 0 < kp <= 1:
                raise ValueError(f"keep_prob must be a scalar tensor or a float in the range (0, 1], got {kp}")
            if kp == 1:
                return t
        kpt = convert_to_tensor(kp, dtype=t.dtype, name="keep_prob")
        shape = noise_shape if noise_shape is not None else A.shape(t)
        noise = random_uniform(shape, seed=seed, dtype=t.dtype)
        mask = M.floor(M.add(kpt, noise))  # 1 with probability keep_prob, else 0
        res = M.multiply(M.divide(t, kpt), mask)
        res.set_shape(t.shape)
        return res


def _l2_loss_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = ins[0]
    return np.asarray(np.sum(np.square(x), dtype=x.dtype) / 2, dtype=x.dtype)


registry.register_op("L2Loss", lambda op: [(op.inputs[0].dtype, TensorShape([]))], _l2_loss_kernel,
                     registry.OPAQUE)


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """sum(t ** 2) / 2."""
    x = convert_to_tensor(t)
    check_dtype("L2Loss", x, FLOATS, "t")
    return out(make_op("L2Loss", [x], {"T": x.dtype}, name=name or "L2Loss"))


def moments(x: Any, axes: Any, shift: Any = None, name: str | None = None, keep_dims: Any = None,
            keepdims: Any = None) -> tuple[Tensor, Tensor]:
    """(mean, variance) of `x` over `axes`."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with _name_scope(name, "moments"):
        t = convert_to_tensor(x)
        y = M.cast(t, dtypes.float32) if t.dtype is dtypes.float16 else t
        mean = M.reduce_mean(y, axes, keepdims=True, name="mean")
        var = M.reduce_mean(M.squared_difference(y, A.stop_gradient(mean)), axes, keepdims=True, name="variance")
        if not keep:
            mean = A.squeeze(mean, list(np.atleast_1d(axes)))
            var = A.squeeze(var, list(np.atleast_1d(axes)))
        if t.dtype is dtypes.float16:
            return M.cast(mean, t.dtype), M.cast(var, t.dtype)
        return mean, var


# -- cross entropies ----------------------------------------------------------------------------------------


def _xent_infer(op: Operation) -> list:
    f, lab = op.inputs
    fd, ld = f.shape.as_tuple(), lab.shape.as_tuple()
    if fd is not None and len(fd) != 2:
        raise ValueError(f"Shape must be rank 2 but is rank {len(fd)} for '{op.name}' (op: '{op.type}')")
    shape = f.shape
    if op.type == "SoftmaxCrossEntropyWithLogits":
        if ld is not None and len(ld) != 2:
            raise ValueError(f"Shape must be rank 2 but is rank {len(ld)} for '{op.name}' (op: '{op.type}')")
        if not f.shape.is_compatible_with(lab.shape):
            raise ValueError(f"logits and labels must be broadcastable: logits_size={shape_str(fd)} "
                             f"labels_size={shape_str(ld)} for '{op.name}' (op: '{op.type}')")
        shape = f.shape.merge_with(lab.shape)
    else:
        if ld is not None and len(ld) != 1:
            raise ValueError(f"Shape must be rank 1 but is rank {len(ld)} for '{op.name}' (op: '{op.type}')")
        if fd is not None and ld is not None and fd[0] is not None and ld[0] is not None and fd[0] != ld[0]:
            raise ValueError(f"Dimensions must be equal, but are {fd[0]} and {ld[0]} for '{op.name}' "
                             f"(op: '{op.type}')")
    dims = shape.as_tuple()
    return [(f.dtype, TensorShape([None if dims is None else dims[0]])), (f.dtype, shape)]


def _xent_kernel(ctx: Any, op: Operation, ins: list) -> tuple[np.ndarray, np.ndarray]:
    f, lab = ins
    if f.ndim != 2 or lab.shape != f.shape:
        raise InvalidArgumentError(None, None, f"logits and labels must be same size: logits_size="
                                               f"{shape_str(f.shape)} labels_size={shape_str(lab.shape)}")
    z, e, s = _softmax_parts(f)
    # -sum(lab * (z - log s)) = sum(lab) * log s - sum(lab * z)
    loss = np.sum(lab, axis=1) * np.log(s[:, 0]) - np.sum(lab * z, axis=1)
    backprop = e / s - lab
    return loss.astype(f.dtype, copy=False), backprop.astype(f.dtype, copy=False)


def _sparse_xent_kernel(ctx: Any, op: Operation, ins: list) -> tuple[np.ndarray, np.ndarray]:
    f, lab = ins
    if f.ndim != 2 or lab.ndim != 1 or lab.shape[0] != f.shape[0]:
        raise InvalidArgumentError(None, None, f"logits and labels must have the same first dimension, got "
                                               f"logits shape {shape_str(f.shape)} and labels shape "
                                               f"{shape_str(lab.shape)}")
    k = f.shape[1]
    bad = (lab < 0) | (lab >= k)
    if np.any(bad):
        v = int(lab[np.argmax(bad)])
        raise InvalidArgumentError(None, None, f"Received a label value of {v} which is outside the valid range "
                                               f"of [0, {k}).  Label values: {' '.join(map(str, lab.tolist()))}")
    z, e, s = _softmax_parts(f)
    rows = np.arange(f.shape[0])
    loss = np.log(s[:, 0]) - z[rows, lab]
    backprop = e / s
    backprop[rows, lab] -= 1
    return loss.astype(f.dtype, copy=False), backprop.astype(f.dtype, copy=False)


registry.register_op("SoftmaxCrossEntropyWithLogits", _xent_infer, _xent_kernel, registry.OPAQUE)
registry.register_op("SparseSoftmaxCrossEntropyWithLogits", _xent_infer, _sparse_xent_kernel, registry.OPAQUE,
                     library="rows")


def _to_2d_last(t: Tensor, axis: int) -> tuple[Tensor, Any]:
    """`t` with `axis` moved last and the rest flattened; plus what restores the batch shape."""
    r = t.shape.ndims
    if r is None:
        raise ValueError("cross entropy needs logits of known rank")
    a = axis % r
    if a != r - 1:
        perm = list(range(r))
        perm[a], perm[-1] = perm[-1], perm[a]
        t = A.transpose(t, perm)
    if r == 2:
        return t, None
    batch_dims = t.shape.as_tuple()[:-1]  # type: ignore[index]
    restore: Any = list(batch_dims) if None not in batch_dims else A.slice(A.shape(t), [0], [r - 1])
    last = t.shape.as_tuple()[-1]  # type: ignore[index]
    return A.reshape(t, [-1, last if last is not None else -1] if r > 1 else [1, -1]), restore


def _check_named_args(fn: str, sentinel: Any, labels: Any, logits: Any) -> None:
    """TF's guard for the cross-entropy functions: labels and logits by keyword, both given."""
    if sentinel is not None:
        raise ValueError(f"Only call `{fn}` with named arguments (labels=..., logits=..., ...)")
    if labels is None or logits is None:
        raise ValueError("Both labels and logits must be provided.")


def softmax_cross_entropy_with_logits_v2(_sentinel: Any = None, labels: Any = None, logits: Any = None,
                                         axis: int = -1, name: str | None = None, dim: int | None = None) -> Tensor:
    """-sum(labels * log_softmax(logits)) along `axis`; gradients flow to labels too."""
    _check_named_args("softmax_cross_entropy_with_logits_v2", _sentinel, labels, logits)
    a = dim if dim is not None else axis
    with _name_scope(name, "softmax_cross_entropy_with_logits"):
        f = convert_to_tensor(logits)
        check_dtype("SoftmaxCrossEntropyWithLogits", f, FLOATS, "features")
        lab = M.cast(convert_to_tensor(labels), f.dtype)
        if not f.shape.is_compatible_with(lab.shape):
            raise ValueError(f"Shapes {f.shape} and {lab.shape} are incompatible")
        f2, restore = _to_2d_last(f, a)
        l2, _ = _to_2d_last(lab, a)
        loss = make_op("SoftmaxCrossEntropyWithLogits", [f2, l2], {"T": f.dtype},
                       name="SoftmaxCrossEntropyWithLogits").outputs[0]
        return A.reshape(loss, restore) if restore is not None else loss


def softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None, logits: Any = None,
                                      dim: int = -1, name: str | None = None, axis: int | None = None) -> Tensor:
    """Like the v2 version, but no gradient flows into `labels` (TF1 behaviour)."""
    _check_named_args("softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with _name_scope(name, "softmax_cross_entropy_with_logits_sg"):
        lab = A.stop_gradient(convert_to_tensor(labels), name="labels_stop_gradient")
    return softmax_cross_entropy_with_logits_v2(labels=lab, logits=logits, axis=axis if axis is not None else dim,
                                                name=name)


def sparse_softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None, logits: Any = None,
                                             name: str | None = None) -> Tensor:
    """-log_softmax(logits)[labels] per example; `labels` are class indices of rank rank(logits) - 1."""
    _check_named_args("sparse_softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with _name_scope(name, "SparseSoftmaxCrossEntropyWithLogits"):
        f = convert_to_tensor(logits)
        check_dtype("SparseSoftmaxCrossEntropyWithLogits", f, FLOATS, "features")
        lab = A._int_input(labels, "labels")
        if lab.dtype not in (dtypes.int32, dtypes.int64):
            raise TypeError(f"labels must be int32 or int64, got {lab.dtype.name}")
        lr, fr = lab.shape.ndims, f.shape.ndims
        if lr is not None and fr is not None:
            if lr != fr - 1:
                raise ValueError(f"Rank mismatch: Rank of labels (received {lr}) should equal rank of logits minus "
                                 f"1 (received {fr}).")
            if not lab.shape.is_compatible_with(f.shape[:-1]):
                raise ValueError(f"Shape mismatch: The shape of labels (received {lab.shape}) should equal the shape "
                                 f"of logits except for the last dimension (received {f.shape}).")
        if fr == 0:
            raise ValueError(f"Logits cannot be scalars - received shape {f.shape}.")
        if fr == 2 or fr is None:
            return make_op("SparseSoftmaxCrossEntropyWithLogits", [f, lab], {"T": f.dtype, "Tlabels": lab.dtype},
                           name="SparseSoftmaxCrossEntropyWithLogits").outputs[0]
        f2, restore = _to_2d_last(f, -1)
        loss = make_op("SparseSoftmaxCrossEntropyWithLogits", [f2, A.reshape(lab, [-1])],
                       {"T": f.dtype, "Tlabels": lab.dtype}, name="SparseSoftmaxCrossEntropyWithLogits").outputs[0]
        return A.reshape(loss, restore) if restore is not None else loss


def sigmoid_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None, logits: Any = None,
                                      name: str | None = None) -> Tensor:
    """max(x, 0) - x * z + log(1 + exp(-|x|)) for logits x and labels z (stable for any x)."""
    _check_named_args("sigmoid_cross_entropy_with_logits", _sentinel, labels, logits)
    with _name_scope(name, "logistic_loss"):
        x = convert_to_tensor(logits)
        z = convert_to_tensor(labels, dtype=x.dtype) if not isinstance(labels, Tensor) else labels
        if z.dtype is not x.dtype:
            raise ValueError(f"logits and labels must have the same dtype, got {x.dtype.name} and {z.dtype.name}")
        if not x.shape.is_compatible_with(z.shape):
            raise ValueError(f"logits and labels must have the same shape ({x.shape} vs {z.shape})")
        zeros = A.zeros_like(x)
        relu_logits = M.where(M.greater_equal(x, zeros), x, zeros)
        neg_abs = M.where(M.greater_equal(x, zeros), M.negative(x), x)
        return M.add(M.subtract(relu_logits, M.multiply(x, z)), M.log1p(M.exp(neg_abs)))


# -- thin conveniences -------------------------------------------------------------------------------------


def xw_plus_b(x: Any, weights: Any, biases: Any, name: str | None = None) -> Tensor:
    """matmul(x, weights) + biases."""
    with _name_scope(name, "xw_plus_b"):
        return bias_add(M.matmul(x, weights), biases)


def embedding_lookup(params: Any, ids: Any, partition_strategy: str = "mod", name: str | None = None,
                     validate_indices: bool = True, max_norm: Any = None) -> Tensor:
    """Rows of `params` (a tensor, or a one-element list) at `ids`."""
    if isinstance(params, (list, tuple)):
        if len(params) != 1:
            raise ValueError("embedding_lookup supports a single (unpartitioned) params tensor")
        params = params[0]
    with _name_scope(name, "embedding_lookup"):
        return A.gather(params, ids)


def l2_normalize(x: Any, axis: Any = None, epsilon: float = 1e-12, name: str | None = None,
                 dim: Any = None) -> Tensor:
    """x / sqrt(max(sum(x ** 2, axis), epsilon))."""
    with _name_scope(name, "l2_normalize"):
        t = convert_to_tensor(x)
        ax = axis if axis is not None else dim
        sq = M.reduce_sum(M.square(t), ax, keepdims=True)
        return M.multiply(t, M.rsqrt(M.maximum(sq, convert_to_tensor(epsilon, dtype=t.dtype))))


# -- top_k / in_top_k --------------------------------------------------------------------------------------


def _top_k_infer(op: Operation) -> list:
    x = op.inputs[0]
    dims = x.shape.as_tuple()
    k = A._ints(op.inputs[1])
    kk = None if k is None else k[0]
    if dims is None:
        return [(x.dtype, TensorShape(None)), (dtypes.int32, TensorShape(None))]
    if not dims:
        raise ValueError(f"Shape must be at least rank 1 but is rank 0 for '{op.name}' (op: 'TopKV2')")
    if kk is not None and (kk < 0 or (dims[-1] is not None and dims[-1] < kk)):
        raise ValueError(f"input must have at least k columns. Had {dims[-1]}, needed {kk} for '{op.name}' "
                         "(op: 'TopKV2')")
    shape = TensorShape(list(dims[:-1]) + [kk])
    return [(x.dtype, shape), (dtypes.int32, shape)]


def _top_k_kernel(ctx: Any, op: Operation, ins: list) -> tuple[np.ndarray, np.ndarray]:
    x, k = ins
    k = int(k)
    if k < 0 or x.shape[-1] < k:
        raise InvalidArgumentError(None, None, f"input must have at least k columns. Had {x.shape[-1]}, needed {k}")
    # Descending order with equal values keeping the lower index first (as in TF): a stable ascending
    # sort of the reversed row, read backwards. Works for every dtype (no negation overflow).
    rev = np.argsort(x[..., ::-1], axis=-1, kind="stable")[..., ::-1][..., :k]
    idx = x.shape[-1] - 1 - rev
    return np.take_along_axis(x, idx, -1), idx.astype(np.int32)


registry.register_op("TopKV2", _top_k_infer, _top_k_kernel, registry.OPAQUE)


def top_k(input: Any, k: Any = 1, sorted: bool = True, name: str | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
    """(values, indices) of the `k` largest entries along the last dimension, largest first."""
    x = convert_to_tensor(input)
    kt = A._int_input(k, "k")
    op = make_op("TopKV2", [x, kt], {"sorted": bool(sorted), "T": x.dtype}, name=name or "TopKV2")
    return op.outputs[0], op.outputs[1]


def _in_top_k_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    pred, tgt, k = ins
    k = int(k)
    n, c = pred.shape
    tgt = np.asarray(tgt)
    if tgt.shape != (n,):
        raise InvalidArgumentError(None, None, f"targets must be a vector of length {n}, got shape "
                                               f"{shape_str(tgt.shape)}")
    valid = (tgt >= 0) & (tgt < c)
    safe = np.where(valid, tgt, 0)
    mine = pred[np.arange(n), safe]
    # Ties at the boundary count as in the top k; non-finite predictions never do.
    higher = np.sum(pred > mine[:, None], axis=1)
    finite = np.isfinite(pred).all(axis=1)
    return valid & finite & (higher < k)


registry.register_op("InTopKV2", lambda op: [(dtypes.bool, TensorShape([op.inputs[0].shape.as_tuple()[0]
                                                                        if op.inputs[0].shape.ndims else None]))],
                     _in_top_k_kernel, registry.OPAQUE, not_differentiable=True)


def in_top_k(predictions: Any, targets: Any, k: Any, name: str | None = None) -> Tensor:
    """Whether each target class is among the `k` highest predictions of its row."""
    p = convert_to_tensor(predictions)
    check_dtype("InTopKV2", p, (dtypes.float32,), "predictions")
    if p.shape.ndims not in (None, 2):
        raise ValueError(f"Shape must be rank 2 but is rank {p.shape.ndims} for 'InTopKV2'")
    t = A._int_input(targets, "targets")
    kt = convert_to_tensor(k, dtype=t.dtype) if not isinstance(k, Tensor) else k
    return out(make_op("InTopKV2", [p, t, kt], {"T": t.dtype}, name=name or "in_top_k"))


def conv2d_transpose(value: Any, filter: Any = None, output_shape: Any = None, strides: Any = None,  # noqa: A002
                     padding: str = "SAME", data_format: str = "NHWC", name: str | None = None,
                     input: Any = None, filters: Any = None, dilations: Any = None) -> Tensor:
    """The transpose of conv2d (its gradient with respect to the input): an [h, w, out, in] `filter`."""
    v = value if value is not None else input
    f = filter if filter is not None else filters
    if f is None or output_shape is None or strides is None:
        raise ValueError("conv2d_transpose needs a filter, an output_shape and strides")
    with _name_scope(name, "conv2d_transpose") as scope:
        ft = convert_to_tensor(f)
        vt = convert_to_tensor(v)
        fd, vd = ft.shape.as_tuple(), vt.shape.as_tuple()
        if fd is not None and vd is not None and len(fd) == 4 and len(vd) == 4 and fd[3] is not None and \
                vd[3] is not None and fd[3] != vd[3]:
            raise ValueError(f"input channels does not match filter's input channels, {vd[3]} != {fd[3]}")
        return conv2d_backprop_input(output_shape, ft, vt, strides, padding, data_format=data_format,
                                     dilations=dilations, name=scope)
