"""Image ops with TensorFlow's names and numerics: resizing (bilinear, nearest) and colour spaces.

Resize geometry follows TF's kernels: the scale is in/out (or (in-1)/(out-1) with `align_corners`), in
float32; a legacy output pixel samples input coordinate `i * scale`, a half-pixel-centred one
`(i + 0.5) * scale - 0.5` (bilinear) or `(i + 0.5) * scale` (nearest). The Python API on top of these is
`jitflow/image.py`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor
from jitflow.framework.tensor_shape import TensorShape, shape_str
from jitflow.ops.op_util import const_value as constant_value
from jitflow.ops.op_util import make_op, out

_RESIZE_DTYPES = (dtypes.float16, dtypes.float32, dtypes.float64, dtypes.uint8, dtypes.int8, dtypes.int16,
                  dtypes.uint16, dtypes.int32, dtypes.int64)


def _scale(in_size: int, out_size: int, align_corners: bool) -> np.float32:
    """TF's CalculateResizeScale, in float32 as TF computes it."""
    if align_corners and out_size > 1:
        return np.float32(in_size - 1) / np.float32(out_size - 1)
    return np.float32(in_size) / np.float32(out_size)


def _linear_weights(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> tuple:
    """(lower, upper, lerp) input indices and weights of each output row or column."""
    scale = _scale(in_size, out_size, align_corners)
    i = np.arange(out_size, dtype=np.float32)
    src = (i + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel else i * scale
    lo_f = np.floor(src)
    lower = np.maximum(lo_f.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lower, upper, (src - lo_f).astype(np.float32)


def _nearest_index(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """The input index each output row or column copies (TF rounds half away from zero)."""
    scale = _scale(in_size, out_size, align_corners)
    i = np.arange(out_size, dtype=np.float32)
    src = (i + np.float32(0.5)) * scale if half_pixel else i * scale
    idx = (np.floor(src + np.float32(0.5)) if align_corners else np.floor(src)).astype(np.int64)
    idx = np.minimum(idx, in_size - 1)
    return np.maximum(idx, 0) if half_pixel else idx


def _check_resize_inputs(images: np.ndarray, size: np.ndarray, op: Operation) -> tuple[int, int]:
    if images.ndim != 4:
        raise InvalidArgumentError(op, None, f"input must be 4-dimensional {shape_str(images.shape)}")
    size = np.asarray(size)
    if size.shape != (2,):
        raise InvalidArgumentError(op, None, f"shape_t must be 1-dimensional with 2 elements: {size.shape}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise InvalidArgumentError(op, None, f"output dimensions must be positive, got [{h}, {w}]")
    if op.attrs.get("align_corners") and op.attrs.get("half_pixel_centers"):
        raise InvalidArgumentError(op, None, "If half_pixel_centers is True, align_corners must be False.")
    return h, w


def _bilinear_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = np.asarray(ins[0])
    h, w = _check_resize_inputs(x, ins[1], op)
    ac, hp = bool(op.attrs.get("align_corners")), bool(op.attrs.get("half_pixel_centers"))
    ylo, yhi, yl = _linear_weights(x.shape[1], h, ac, hp)
    xlo, xhi, xl = _linear_weights(x.shape[2], w, ac, hp)
    f = x.astype(np.float32)
    xl4 = xl[None, None, :, None]
    top = f[:, ylo][:, :, xlo] + (f[:, ylo][:, :, xhi] - f[:, ylo][:, :, xlo]) * xl4
    bottom = f[:, yhi][:, :, xlo] + (f[:, yhi][:, :, xhi] - f[:, yhi][:, :, xlo]) * xl4
    return (top + (bottom - top) * yl[None, :, None, None]).astype(np.float32)


def _spread(index_weights: list[tuple[np.ndarray, np.ndarray]], in_size: int, dtype: Any) -> np.ndarray:
    """The (in_size, out_size) matrix sending each output position's gradient to the inputs it read."""
    out_size = len(index_weights[0][0])
    m = np.zeros((in_size, out_size), dtype)
    cols = np.arange(out_size)
    for idx, wt in index_weights:
        np.add.at(m, (idx, cols), wt)
    return m


def _bilinear_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g, orig = np.asarray(ins[0], np.float32), np.asarray(ins[1])
    ac, hp = bool(op.attrs.get("align_corners")), bool(op.attrs.get("half_pixel_centers"))
    ih, iw = orig.shape[1], orig.shape[2]
    ylo, yhi, yl = _linear_weights(ih, g.shape[1], ac, hp)
    xlo, xhi, xl = _linear_weights(iw, g.shape[2], ac, hp)
    wy = _spread([(ylo, 1 - yl), (yhi, yl)], ih, np.float32)
    wx = _spread([(xlo, 1 - xl), (xhi, xl)], iw, np.float32)
    return np.einsum("yk,xl,nklc->nyxc", wy, wx, g, optimize=True).astype(orig.dtype)


def _nearest_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = np.asarray(ins[0])
    h, w = _check_resize_inputs(x, ins[1], op)
    ac, hp = bool(op.attrs.get("align_corners")), bool(op.attrs.get("half_pixel_centers"))
    return x[:, _nearest_index(x.shape[1], h, ac, hp)][:, :, _nearest_index(x.shape[2], w, ac, hp)]


def _nearest_grad_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    g = np.asarray(ins[0])
    h, w = (int(v) for v in np.asarray(ins[1]))
    ac, hp = bool(op.attrs.get("align_corners")), bool(op.attrs.get("half_pixel_centers"))
    one_y = np.ones(g.shape[1], g.dtype)
    one_x = np.ones(g.shape[2], g.dtype)
    wy = _spread([(_nearest_index(h, g.shape[1], ac, hp), one_y)], h, g.dtype)
    wx = _spread([(_nearest_index(w, g.shape[2], ac, hp), one_x)], w, g.dtype)
    return np.einsum("yk,xl,nklc->nyxc", wy, wx, g, optimize=True).astype(g.dtype)


def _resize_infer(out_dtype: dtypes.DType | None) -> Any:
    def infer(op: Operation) -> list:
        x = op.inputs[0].shape.as_tuple()
        if x is not None and len(x) != 4:
            raise ValueError(f"Shape must be rank 4 but is rank {len(x)} for '{op.name}' (op: '{op.type}') with "
                             f"input shapes: {shape_str(x)}, {shape_str(op.inputs[1].shape.as_tuple())}.")
        size = constant_value(op.inputs[1])
        hw = [None, None] if size is None else [int(v) for v in np.asarray(size).ravel()]
        return [(out_dtype or op.inputs[0].dtype,
                 TensorShape([None if x is None else x[0], hw[0], hw[1], None if x is None else x[3]]))]

    return infer


def _grad_shape_infer(op: Operation) -> list:
    ref = op.inputs[1]
    if ref.dtype.is_integer:  # ResizeNearestNeighborGrad: the size
        size = constant_value(ref)
        g = op.inputs[0].shape.as_tuple()
        hw = [None, None] if size is None else [int(v) for v in np.asarray(size).ravel()]
        return [(op.inputs[0].dtype, TensorShape([None if g is None else g[0], hw[0], hw[1],
                                                   None if g is None else g[3]]))]
    return [(ref.dtype, ref.shape)]


registry.register_op("ResizeBilinear", _resize_infer(dtypes.float32), _bilinear_kernel)
registry.register_op("ResizeBilinearGrad", _grad_shape_infer, _bilinear_grad_kernel)
registry.register_op("ResizeNearestNeighbor", _resize_infer(None), _nearest_kernel)
registry.register_op("ResizeNearestNeighborGrad", _grad_shape_infer, _nearest_grad_kernel)


def _resize_attrs(images: Tensor, align_corners: bool, half_pixel_centers: bool) -> dict[str, Any]:
    return {"T": images.dtype, "align_corners": bool(align_corners), "half_pixel_centers": bool(half_pixel_centers)}


def resize(op_type: str, images: Tensor, size: Tensor, align_corners: bool, half_pixel_centers: bool,
           name: str | None) -> Tensor:
    """A ResizeBilinear or ResizeNearestNeighbor op on NHWC `images` (int32 `size` = [height, width])."""
    if images.dtype not in _RESIZE_DTYPES:
        raise TypeError(f"Value passed to parameter 'images' has DataType {images.dtype.name} not in list of "
                        f"allowed values: {', '.join(d.name for d in _RESIZE_DTYPES)}")
    return out(make_op(op_type, [images, size], _resize_attrs(images, align_corners, half_pixel_centers),
                       name=name or op_type))


@registry.register_gradient("ResizeBilinear")
def _bilinear_grad(op: Operation, g: Tensor) -> list:
    a = op.attrs
    return [out(make_op("ResizeBilinearGrad", [g, op.inputs[0]],
                        {"T": op.inputs[0].dtype, "align_corners": a.get("align_corners", False),
                         "half_pixel_centers": a.get("half_pixel_centers", False)})), None]


@registry.register_gradient("ResizeNearestNeighbor")
def _nearest_grad(op: Operation, g: Tensor) -> list:
    from jitflow.ops import array_ops

    size = array_ops.strided_slice(array_ops.shape(op.inputs[0]), [1], [3])
    a = op.attrs
    return [out(make_op("ResizeNearestNeighborGrad", [g, size],
                        {"T": g.dtype, "align_corners": a.get("align_corners", False),
                         "half_pixel_centers": a.get("half_pixel_centers", False)})), None]


# -- colour spaces ----------------------------------------------------------------------------------------------


def rgb_to_hsv_array(rgb: np.ndarray) -> np.ndarray:
    """TF's RGBToHSV on the last axis (hue in [0, 1))."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    rng = v - rgb.min(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(v > 0, rng / v, 0)
        norm = 1 / (6 * rng)
        h = np.where(r == v, norm * (g - b), np.where(g == v, norm * (b - r) + 2 / 6, norm * (r - g) + 4 / 6))
    h = np.where(rng > 0, h, 0)
    h = np.where(h < 0, h + 1, h)
    return np.stack([h, s, v], axis=-1).astype(rgb.dtype)


def hsv_to_rgb_array(hsv: np.ndarray) -> np.ndarray:
    """TF's HSVToRGB on the last axis."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    dh = h * 6
    dr = np.clip(np.abs(dh - 3) - 1, 0, 1)
    dg = np.clip(2 - np.abs(dh - 2), 0, 1)
    db = np.clip(2 - np.abs(dh - 4), 0, 1)
    one_s = 1 - s
    return np.stack([(one_s + s * c) * v for c in (dr, dg, db)], axis=-1).astype(hsv.dtype)


def _last_dim_3(name: str) -> Any:
    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        x = np.asarray(ins[0])
        if x.ndim < 1 or x.shape[-1] != 3:
            raise InvalidArgumentError(op, None, f"input must have 3 channels but input only has "
                                                 f"{x.shape[-1] if x.ndim else 0} channels.")
        return rgb_to_hsv_array(x) if name == "RGBToHSV" else hsv_to_rgb_array(x)

    return kernel


def _same_shape(op: Operation) -> list:
    return [(op.inputs[0].dtype, op.inputs[0].shape)]


registry.register_op("RGBToHSV", _same_shape, _last_dim_3("RGBToHSV"))
registry.register_op("HSVToRGB", _same_shape, _last_dim_3("HSVToRGB"))


def _adjust_hsv_kernel(which: int) -> Any:
    """AdjustHue (which=0: hue + delta, wrapped) or AdjustSaturation (which=1: saturation * scale, clipped)."""

    def kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
        x = np.asarray(ins[0])
        if x.ndim < 3 or x.shape[-1] != 3:
            raise InvalidArgumentError(op, None, f"input must be at least 3-D with 3 channels, got "
                                                 f"{shape_str(x.shape)}")
        hsv = rgb_to_hsv_array(x.astype(np.float32))
        k = np.float32(np.asarray(ins[1]))
        if which == 0:
            hsv[..., 0] = np.mod(hsv[..., 0] + k, np.float32(1))
        else:
            hsv[..., 1] = np.clip(hsv[..., 1] * k, 0, 1)
        return hsv_to_rgb_array(hsv).astype(x.dtype)

    return kernel


def _adjust_contrast_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    x = np.asarray(ins[0])
    if x.ndim < 3:
        raise InvalidArgumentError(op, None, f"input must be at least 3-D, got shape{shape_str(x.shape)}")
    mean = x.mean(axis=(-3, -2), keepdims=True, dtype=np.float32 if x.dtype != np.float64 else np.float64)
    return ((x - mean) * np.asarray(ins[1], x.dtype) + mean).astype(x.dtype)


registry.register_op("AdjustHue", _same_shape, _adjust_hsv_kernel(0))
registry.register_op("AdjustSaturation", _same_shape, _adjust_hsv_kernel(1))
registry.register_op("AdjustContrastv2", _same_shape, _adjust_contrast_kernel)
# As in TF: these are not differentiable; AdjustHue, AdjustSaturation, AdjustContrastv2 and RGBToHSV have no
# gradient at all (tf.gradients raises LookupError).
for _t in ("HSVToRGB", "ResizeBilinearGrad", "ResizeNearestNeighborGrad"):
    registry.not_differentiable(_t)


def unary(op_type: str, x: Tensor, name: str | None, *more: Tensor) -> Tensor:
    """An op of `op_type` on `x` (and scalar operands `more`), output like `x`."""
    return out(make_op(op_type, [x, *more], {"T": x.dtype}, name=name or op_type))
