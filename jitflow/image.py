"""`tf.image`: resizing, flips and rotations, crops and pads, colour adjustments and dtype conversion.

Built like TF 1.x's `image_ops`: resizing and colour-space conversions are ops (`ops/image_ops.py`),
the rest is composed from array and math ops, so gradients and compilation come with them. Functions
take a 3-D image [height, width, channels] or a 4-D batch [batch, height, width, channels].
Not provided: image decoding and encoding (`decode_jpeg`, `decode_png`, ...), bicubic and area resizing,
bounding-box sampling and non-max suppression.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework.graph import Tensor, name_scope
from jitflow.ops import array_ops as A
from jitflow.ops import image_ops as I
from jitflow.ops import math_ops as M
from jitflow.ops import random_ops as R
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import const_value as constant_value


class ResizeMethod:
    """`tf.image.ResizeMethod` (TF 1.x integer values)."""

    BILINEAR = 0
    NEAREST_NEIGHBOR = 1
    BICUBIC = 2
    AREA = 3


def _image(image: Any, name: str = "image") -> Tensor:
    x = convert_to_tensor(image, name=name)
    rank = x.shape.ndims
    if rank is not None and rank not in (3, 4):
        raise ValueError(f"'{name}' must be either 3 or 4-dimensional, got shape {x.shape}.")
    return x


def _batched(x: Tensor) -> bool:
    if x.shape.ndims is None:
        raise ValueError(f"'image' ({x.name}) must have a known rank (3 or 4)")
    return x.shape.ndims == 4


def _hw(x: Tensor) -> tuple[Any, Any]:
    """Height and width: static ints where known, else scalar tensors."""
    dims = x.shape.as_list()
    shape = A.shape(x)
    h, w = dims[-3], dims[-2]
    rank = len(dims)
    return (h if h is not None else shape[rank - 3]), (w if w is not None else shape[rank - 2])


# -- resizing ---------------------------------------------------------------------------------------------------


def _resize(op_type: str, images: Any, size: Any, align_corners: bool, half_pixel_centers: bool,
            name: str | None) -> Tensor:
    x = _image(images, "images")
    single = not _batched(x)
    if single:
        x = A.expand_dims(x, 0)
    y = I.resize(op_type, x, convert_to_tensor(size, dtype=dtypes.int32, name="size"), align_corners,
                 half_pixel_centers, name)
    return A.squeeze(y, [0]) if single else y


def resize_bilinear(images: Any, size: Any, align_corners: bool = False, name: str | None = None,
                    half_pixel_centers: bool = False) -> Tensor:
    """`tf.image.resize_bilinear`: float32 output of shape [batch, size[0], size[1], channels]."""
    return _resize("ResizeBilinear", images, size, align_corners, half_pixel_centers, name)


def resize_nearest_neighbor(images: Any, size: Any, align_corners: bool = False, name: str | None = None,
                            half_pixel_centers: bool = False) -> Tensor:
    """`tf.image.resize_nearest_neighbor`: each output pixel copies its nearest input pixel."""
    return _resize("ResizeNearestNeighbor", images, size, align_corners, half_pixel_centers, name)


def resize_images(images: Any, size: Any, method: int = ResizeMethod.BILINEAR, align_corners: bool = False,
                  preserve_aspect_ratio: bool = False, name: str | None = None) -> Tensor:
    """`tf.image.resize_images` (TF 1.x): bilinear (float32) or nearest-neighbour (same dtype) resizing."""
    with name_scope(name, "resize", [images, size]):
        x = _image(images, "images")
        size_c = constant_value(convert_to_tensor(size, dtype=dtypes.int32, name="size"))
        if size_c is not None and preserve_aspect_ratio:
            size = _aspect_size(x, size_c)
            size_c = np.asarray(size)
        h, w = _hw(x)
        if size_c is not None and (int(size_c[0]), int(size_c[1])) == (h, w):
            return x  # TF returns the images unchanged when the size is statically the same
        if method == ResizeMethod.BILINEAR:
            return resize_bilinear(x, size, align_corners=align_corners)
        if method == ResizeMethod.NEAREST_NEIGHBOR:
            return resize_nearest_neighbor(x, size, align_corners=align_corners)
        raise NotImplementedError(f"resize method {method} (bicubic, area) is not supported; use BILINEAR or "
                                  "NEAREST_NEIGHBOR")


def _aspect_size(x: Tensor, size: np.ndarray) -> list[int]:
    h, w = _hw(x)
    if not isinstance(h, int) or not isinstance(w, int):
        raise ValueError("preserve_aspect_ratio needs the image's height and width to be known statically")
    scale = min(float(size[0]) / h, float(size[1]) / w)
    return [max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)]


resize = resize_images


# -- flips, rotations, crops, pads -----------------------------------------------------------------------------


def _axis(x: Tensor, a: int) -> int:
    """Axis `a` of a 3-D image in `x` (shifted by one for a batch)."""
    return a + 1 if _batched(x) else a


def flip_left_right(image: Any) -> Tensor:
    """`tf.image.flip_left_right`: reverses the width axis."""
    x = _image(image)
    return A.reverse(x, [_axis(x, 1)])


def flip_up_down(image: Any) -> Tensor:
    """`tf.image.flip_up_down`: reverses the height axis."""
    x = _image(image)
    return A.reverse(x, [_axis(x, 0)])


def transpose_image(image: Any) -> Tensor:
    """`tf.image.transpose_image`: swaps height and width."""
    x = _image(image)
    return A.transpose(x, [0, 2, 1, 3] if _batched(x) else [1, 0, 2])


transpose = transpose_image


def rot90(image: Any, k: int = 1, name: str | None = None) -> Tensor:
    """`tf.image.rot90`: rotates counter-clockwise by k * 90 degrees (k a Python int or a constant)."""
    x = _image(image)
    kc = constant_value(convert_to_tensor(k)) if isinstance(k, Tensor) else k
    if kc is None:
        raise NotImplementedError("rot90 with a k computed at run time is not supported; pass a Python int")
    turns = int(kc) % 4
    h, w = _axis(x, 0), _axis(x, 1)
    if turns == 1:
        return transpose_image(A.reverse(x, [w]))
    if turns == 2:
        return A.reverse(x, [h, w])
    if turns == 3:
        return A.reverse(transpose_image(x), [w])
    return x


def crop_to_bounding_box(image: Any, offset_height: Any, offset_width: Any, target_height: Any,
                         target_width: Any) -> Tensor:
    """`tf.image.crop_to_bounding_box`: the [target_height, target_width] window at the offsets."""
    x = _image(image)
    h, w = _hw(x)
    _check_box(offset_height, offset_width, target_height, target_width, h, w, "crop")
    if _batched(x):
        return A.slice(x, A.stack([0, offset_height, offset_width, 0]), A.stack([-1, target_height, target_width,
                                                                                  -1]))
    return A.slice(x, A.stack([offset_height, offset_width, 0]), A.stack([target_height, target_width, -1]))


def pad_to_bounding_box(image: Any, offset_height: Any, offset_width: Any, target_height: Any,
                        target_width: Any) -> Tensor:
    """`tf.image.pad_to_bounding_box`: zero-pads to [target_height, target_width], image at the offsets."""
    x = _image(image)
    h, w = _hw(x)
    _check_box(offset_height, offset_width, target_height, target_width, h, w, "pad")
    rows = [offset_height, target_height - offset_height - h]
    cols = [offset_width, target_width - offset_width - w]
    pads = [rows, cols, [0, 0]]
    return A.pad(x, [[0, 0]] + pads if _batched(x) else pads)


def _check_box(oh: Any, ow: Any, th: Any, tw: Any, h: Any, w: Any, kind: str) -> None:
    """TF's static ValueErrors for boxes whose numbers are known when the graph is built."""
    if not all(isinstance(v, (int, np.integer)) for v in (oh, ow, th, tw, h, w)):
        return
    if oh < 0 or ow < 0:
        raise ValueError("offset_height must be >= 0" if oh < 0 else "offset_width must be >= 0")
    if kind == "crop":
        if th <= 0 or tw <= 0:
            raise ValueError("target_height must be > 0." if th <= 0 else "target_width must be > 0.")
        if oh + th > h or ow + tw > w:
            raise ValueError("height must be >= target + offset." if oh + th > h else
                             "width must be >= target + offset.")
    elif th - oh - h < 0 or tw - ow - w < 0:
        raise ValueError("height must be <= target - offset" if th - oh - h < 0 else
                         "width must be <= target - offset")


def resize_image_with_crop_or_pad(image: Any, target_height: int, target_width: int) -> Tensor:
    """`tf.image.resize_image_with_crop_or_pad`: centre-crops and/or zero-pads to the target size."""
    x = _image(image)
    h, w = _hw(x)
    if not isinstance(h, int) or not isinstance(w, int):
        raise NotImplementedError("resize_image_with_crop_or_pad needs the image's height and width statically")
    dh, dw = target_height - h, target_width - w
    cropped = crop_to_bounding_box(x, max(-dh // 2, 0), max(-dw // 2, 0), min(target_height, h),
                                   min(target_width, w))
    return pad_to_bounding_box(cropped, max(dh // 2, 0), max(dw // 2, 0), target_height, target_width)


resize_with_crop_or_pad = resize_image_with_crop_or_pad


def central_crop(image: Any, central_fraction: float) -> Tensor:
    """`tf.image.central_crop`: the central `central_fraction` of height and width."""
    if central_fraction <= 0.0 or central_fraction > 1.0:
        raise ValueError("central_fraction must be within (0, 1]")
    x = _image(image)
    if central_fraction == 1.0:
        return x
    h, w = _hw(x)
    if not isinstance(h, int) or not isinstance(w, int):
        raise NotImplementedError("central_crop needs the image's height and width statically")
    top = int((h - h * central_fraction) / 2)
    left = int((w - w * central_fraction) / 2)
    return crop_to_bounding_box(x, top, left, h - 2 * top, w - 2 * left)


def random_crop(value: Any, size: Any, seed: int | None = None, name: str | None = None) -> Tensor:
    """`tf.image.random_crop` / `tf.random_crop`: a window of `size` at a uniformly random offset."""
    with name_scope(name, "random_crop", [value, size]):
        x = convert_to_tensor(value, name="value")
        sz = convert_to_tensor(size, dtype=dtypes.int32, name="size")
        shape = A.shape(x)
        limit = shape - sz + 1
        offset = R.random_uniform(A.shape(shape), dtype=dtypes.int32, maxval=np.iinfo(np.int32).max,
                                  seed=seed) % limit
        return A.slice(x, offset, sz)


def _random_flip(image: Any, axis: int, seed: int | None, name: str) -> Tensor:
    with name_scope(None, name, [image]):
        x = _image(image)
        if not _batched(x):
            coin = M.less(R.random_uniform([], 0, 1.0, seed=seed), 0.5)
            return _select(coin, A.reverse(x, [axis]), x)
        n = A.shape(x)[0]
        flips = M.round(A.reshape(R.random_uniform(A.expand_dims(n, 0), 0, 1.0, seed=seed), [-1, 1, 1, 1]))
        flips = M.cast(flips, x.dtype)
        return flips * A.reverse(x, [axis + 1]) + (1 - flips) * x


def _select(pred: Tensor, a: Tensor, b: Tensor) -> Tensor:
    from jitflow.ops.control_flow_ops import cond

    return cond(pred, lambda: a, lambda: b)


def random_flip_left_right(image: Any, seed: int | None = None) -> Tensor:
    """`tf.image.random_flip_left_right`: each image mirrored with probability 1/2."""
    return _random_flip(image, 1, seed, "random_flip_left_right")


def random_flip_up_down(image: Any, seed: int | None = None) -> Tensor:
    """`tf.image.random_flip_up_down`: each image flipped vertically with probability 1/2."""
    return _random_flip(image, 0, seed, "random_flip_up_down")


# -- dtype and colour ------------------------------------------------------------------------------------------


def convert_image_dtype(image: Any, dtype: Any, saturate: bool = False, name: str | None = None) -> Tensor:
    """`tf.image.convert_image_dtype`: rescales between integer ranges and floats in [0, 1]."""
    x = convert_to_tensor(image, name="image")
    to = dtypes.as_dtype(dtype)
    if to == x.dtype:
        return A.identity(x, name=name)
    src = x.dtype
    with name_scope(name, "convert_image", [x]):
        if src.is_integer and to.is_integer:
            smax, dmax = np.iinfo(src.np).max, np.iinfo(to.np).max
            if smax > dmax:
                return M.cast(M.floordiv(x, M.cast((smax + 1) // (dmax + 1), src)), to)
            y = M.cast(x, to)
            return y * M.cast((dmax + 1) // (smax + 1), to)
        if src.is_floating and to.is_floating:
            return M.cast(x, to)
        if src.is_integer:  # int -> float: [0, MAX] -> [0, 1]
            return M.cast(x, to) * M.cast(1.0 / np.iinfo(src.np).max, to)
        scaled = x * M.cast(np.iinfo(to.np).max + 0.5, src)
        return saturate_cast(scaled, to) if saturate else M.cast(scaled, to)


def saturate_cast(value: Any, dtype: Any, name: str | None = None) -> Tensor:
    """`tf.saturate_cast`: clamps to the target dtype's range before casting."""
    x = convert_to_tensor(value, name="value")
    to = dtypes.as_dtype(dtype)
    if to.is_integer and (x.dtype.is_floating or np.iinfo(x.dtype.np).max > np.iinfo(to.np).max
                          or np.iinfo(x.dtype.np).min < np.iinfo(to.np).min):
        info = np.iinfo(to.np)
        x = M.minimum(M.maximum(x, M.cast(info.min, x.dtype)), M.cast(info.max, x.dtype))
    return M.cast(x, to, name=name)


def _in_float(image: Any, fn: Any) -> Tensor:
    """Applies `fn` to the image as float32 (or its own float dtype) and converts back, saturating."""
    x = convert_to_tensor(image, name="image")
    f = x if x.dtype.is_floating else convert_image_dtype(x, dtypes.float32)
    return convert_image_dtype(fn(f), x.dtype, saturate=True)


def adjust_brightness(image: Any, delta: Any) -> Tensor:
    """`tf.image.adjust_brightness`: adds `delta` (in the [0, 1] float scale)."""
    return _in_float(image, lambda f: f + M.cast(delta, f.dtype))


def adjust_contrast(images: Any, contrast_factor: Any) -> Tensor:
    """`tf.image.adjust_contrast`: (x - mean) * factor + mean, per image and channel (AdjustContrastv2)."""
    def fn(f: Tensor) -> Tensor:
        return I.unary("AdjustContrastv2", f, None, convert_to_tensor(contrast_factor, dtype=dtypes.float32))

    return _in_float(images, fn)


def adjust_hue(image: Any, delta: Any, name: str | None = None) -> Tensor:
    """`tf.image.adjust_hue`: rotates the hue by `delta` (in [-1, 1])."""
    return _in_float(image, lambda f: I.unary("AdjustHue", f, name,
                                              convert_to_tensor(delta, dtype=dtypes.float32)))


def adjust_saturation(image: Any, saturation_factor: Any, name: str | None = None) -> Tensor:
    """`tf.image.adjust_saturation`: scales the saturation, clipped to [0, 1]."""
    return _in_float(image, lambda f: I.unary("AdjustSaturation", f, name,
                                              convert_to_tensor(saturation_factor, dtype=dtypes.float32)))


def random_brightness(image: Any, max_delta: float, seed: int | None = None) -> Tensor:
    """`tf.image.random_brightness`: a delta uniform in [-max_delta, max_delta)."""
    if max_delta < 0:
        raise ValueError("max_delta must be non-negative.")
    return adjust_brightness(image, R.random_uniform([], -max_delta, max_delta, seed=seed))


def random_contrast(image: Any, lower: float, upper: float, seed: int | None = None) -> Tensor:
    """`tf.image.random_contrast`: a factor uniform in [lower, upper)."""
    _check_range(lower, upper)
    return adjust_contrast(image, R.random_uniform([], lower, upper, seed=seed))


def random_saturation(image: Any, lower: float, upper: float, seed: int | None = None) -> Tensor:
    """`tf.image.random_saturation`: a factor uniform in [lower, upper)."""
    _check_range(lower, upper)
    return adjust_saturation(image, R.random_uniform([], lower, upper, seed=seed))


def _check_range(lower: float, upper: float) -> None:
    if upper <= lower:
        raise ValueError("upper must be > lower.")
    if lower < 0:
        raise ValueError("lower must be non-negative.")


def random_hue(image: Any, max_delta: float, seed: int | None = None) -> Tensor:
    """`tf.image.random_hue`: a hue delta uniform in [-max_delta, max_delta), max_delta <= 0.5."""
    if max_delta > 0.5:
        raise ValueError("max_delta must be <= 0.5.")
    if max_delta < 0:
        raise ValueError("max_delta must be non-negative.")
    return adjust_hue(image, R.random_uniform([], -max_delta, max_delta, seed=seed))


def rgb_to_hsv(images: Any, name: str | None = None) -> Tensor:
    """`tf.image.rgb_to_hsv` (float images in [0, 1]; hue in [0, 1))."""
    return I.unary("RGBToHSV", convert_to_tensor(images, name="images"), name)


def hsv_to_rgb(images: Any, name: str | None = None) -> Tensor:
    """`tf.image.hsv_to_rgb`."""
    return I.unary("HSVToRGB", convert_to_tensor(images, name="images"), name)


def rgb_to_grayscale(images: Any, name: str | None = None) -> Tensor:
    """`tf.image.rgb_to_grayscale`: ITU-R 601 luma, with a last axis of 1."""
    with name_scope(name, "rgb_to_grayscale", [images]):
        x = convert_to_tensor(images, name="images")
        f = convert_image_dtype(x, dtypes.float32)
        gray = A.expand_dims(A.tensordot(f, np.array([0.2989, 0.5870, 0.1140], np.float32), [[-1], [-1]]), -1)
        return convert_image_dtype(gray, x.dtype)


def grayscale_to_rgb(images: Any, name: str | None = None) -> Tensor:
    """`tf.image.grayscale_to_rgb`: the single channel repeated three times."""
    x = convert_to_tensor(images, name="images")
    return A.concat([x, x, x], -1, name=name or "grayscale_to_rgb")


def per_image_standardization(image: Any) -> Tensor:
    """`tf.image.per_image_standardization`: (x - mean) / max(stddev, 1/sqrt(pixels)), per image."""
    with name_scope(None, "per_image_standardization", [image]):
        x = _image(image)
        f = M.cast(x, dtypes.float32) if not x.dtype.is_floating else x
        axes = [-1, -2, -3]
        n = M.cast(M.reduce_prod(A.shape(f)[-3:]), f.dtype)
        mean = M.reduce_mean(f, axis=axes, keepdims=True)
        var = M.reduce_mean(M.square(f - mean), axis=axes, keepdims=True)
        adjusted = M.maximum(M.sqrt(var), M.rsqrt(n))
        return (f - mean) / adjusted


def total_variation(images: Any, name: str | None = None) -> Tensor:
    """`tf.image.total_variation`: sum of absolute differences of neighbouring pixels, per image."""
    with name_scope(name, "total_variation", [images]):
        x = _image(images, "images")
        if _batched(x):
            d1 = x[:, 1:, :, :] - x[:, :-1, :, :]
            d2 = x[:, :, 1:, :] - x[:, :, :-1, :]
            axes: Any = [1, 2, 3]
        else:
            d1 = x[1:, :, :] - x[:-1, :, :]
            d2 = x[:, 1:, :] - x[:, :-1, :]
            axes = None
        return M.reduce_sum(M.abs(d1), axis=axes) + M.reduce_sum(M.abs(d2), axis=axes)
