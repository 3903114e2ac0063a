"""tf.image against TensorFlow's own results (tests/data/image_ops/expected.npz, from record_tf.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import jitflow as tf
from tests.gradcheck import numeric_grad

E = np.load(os.path.join(os.path.dirname(__file__), "..", "data", "image_ops", "expected.npz"))
IMG = E["img"]


def _run(t, jit=True):
    with tf.Session(config=tf.ConfigProto(jit=jit)) as s:
        return s.run(t)


@pytest.mark.parametrize("kind", ["bilinear", "nearest"])
@pytest.mark.parametrize("tag,size", [("up", [8, 11]), ("down", [3, 4])])
@pytest.mark.parametrize("ac,hp", [(False, False), (True, False), (False, True)])
def test_resize_matches_tf(kind, tag, size, ac, hp):
    key = f"{kind}_{tag}_ac{int(ac)}_hp{int(hp)}"
    fn = tf.image.resize_bilinear if kind == "bilinear" else tf.image.resize_nearest_neighbor
    x = tf.constant(IMG)
    y = fn(x, size, align_corners=ac, half_pixel_centers=hp)
    assert y.shape.as_list() == list(E[key].shape)
    np.testing.assert_allclose(_run(y), E[key], rtol=1e-6, atol=1e-6)


def _weights(tag):
    # record_tf.py draws its weights after img and u8 from RandomState(0)
    rng = np.random.RandomState(0)
    rng.rand(2, 5, 7, 3)
    rng.rand(4, 6, 3)
    up = rng.rand(2, 8, 11, 3).astype(np.float32)
    down = rng.rand(2, 3, 4, 3).astype(np.float32)
    return up if tag == "up" else down


@pytest.mark.parametrize("kind", ["bilinear", "nearest"])
@pytest.mark.parametrize("tag,size", [("up", [8, 11]), ("down", [3, 4])])
@pytest.mark.parametrize("ac,hp", [(False, False), (True, False), (False, True)])
def test_resize_gradients_match_tf(kind, tag, size, ac, hp):
    key = f"{kind}_{tag}_ac{int(ac)}_hp{int(hp)}"
    fn = tf.image.resize_bilinear if kind == "bilinear" else tf.image.resize_nearest_neighbor
    x = tf.constant(IMG)
    g = tf.gradients(tf.reduce_sum(fn(x, size, align_corners=ac, half_pixel_centers=hp) * _weights(tag)), x)[0]
    np.testing.assert_allclose(_run(g), E[key + "_grad"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tag,size", [("up", [8, 11]), ("down", [3, 4])])
def test_resize_images_matches_tf(tag, size):
    x = tf.constant(IMG)
    np.testing.assert_allclose(_run(tf.image.resize_images(x, size)), E["resize_images_" + tag], rtol=1e-6)
    nn = tf.image.resize_images(x, size, tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    np.testing.assert_array_equal(_run(nn), E["resize_images_nn_" + tag])
    single = tf.image.resize_images(tf.constant(IMG[0]), size)
    assert single.shape.as_list() == size + [3]
    np.testing.assert_allclose(_run(single), E["resize_images_" + tag][0], rtol=1e-6)


def test_bilinear_gradient_matches_finite_differences():
    v = np.random.RandomState(1).rand(1, 4, 5, 2)
    w = np.random.RandomState(2).rand(1, 7, 3, 2)
    x = tf.placeholder(tf.float64, v.shape)
    loss = tf.reduce_sum(tf.cast(tf.image.resize_bilinear(x, [7, 3], half_pixel_centers=True), tf.float64) * w)
    g = tf.gradients(loss, x)[0]
    with tf.Session() as s:
        np.testing.assert_allclose(s.run(g, {x: v}), numeric_grad(s, loss, [x], [v], 0, h=1e-3), rtol=1e-3,
                                   atol=1e-4)


def _ops():
    x = tf.constant(IMG)
    single = tf.constant(IMG[0])
    u8 = tf.constant(E["u8"])
    im = tf.image
    return {
        "flip_lr": im.flip_left_right(x), "flip_ud": im.flip_up_down(x), "transpose": im.transpose_image(x),
        "rot90_1": im.rot90(x), "rot90_3": im.rot90(x, 3),
        "standardize": im.per_image_standardization(single), "standardize_batch": im.per_image_standardization(x),
        "brightness": im.adjust_brightness(x, 0.2), "contrast": im.adjust_contrast(x, 1.7),
        "gray": im.rgb_to_grayscale(x), "gray_rgb": im.grayscale_to_rgb(im.rgb_to_grayscale(x)),
        "central_crop": im.central_crop(single, 0.5), "crop_box": im.crop_to_bounding_box(x, 1, 2, 3, 4),
        "pad_box": im.pad_to_bounding_box(x, 1, 2, 8, 10), "crop_or_pad": im.resize_image_with_crop_or_pad(x, 4, 9),
        "u8_to_float": im.convert_image_dtype(u8, tf.float32),
        "float_to_u8": im.convert_image_dtype(single, tf.uint8, saturate=True),
        "total_variation": im.total_variation(x), "hsv": im.rgb_to_hsv(x),
        "rgb_back": im.hsv_to_rgb(im.rgb_to_hsv(x)), "saturation": im.adjust_saturation(x, 0.6),
        "hue": im.adjust_hue(x, 0.3), "u8_brightness": im.adjust_brightness(u8, 0.1),
    }


@pytest.mark.parametrize("jit", [True, False])
def test_image_functions_match_tf(jit):
    ops = _ops()
    got = dict(zip(ops, _run(list(ops.values()), jit)))
    for k, v in got.items():
        want = E[k]
        assert v.dtype == want.dtype and v.shape == want.shape, k
        np.testing.assert_allclose(v.astype(np.float64), want.astype(np.float64), rtol=2e-5, atol=2e-5,
                                   err_msg=k)


def test_random_ops_are_flips_and_windows():
    x = tf.constant(IMG)
    flips = tf.image.random_flip_left_right(x, seed=3)
    one = tf.image.random_flip_up_down(tf.constant(IMG[0]), seed=4)
    crop = tf.random_crop(x, [2, 3, 4, 3], seed=5)
    bright = tf.image.random_brightness(x, 0.3, seed=6)
    with tf.Session() as s:
        for _ in range(5):
            f, o, c, b = s.run([flips, one, crop, bright])
            for i in range(2):
                assert np.array_equal(f[i], IMG[i]) or np.array_equal(f[i], IMG[i][:, ::-1])
            assert np.array_equal(o, IMG[0]) or np.array_equal(o, IMG[0][::-1])
            found = [(a, e) for a in range(3) for e in range(4) if np.array_equal(c, IMG[:, a:a + 3, e:e + 4])]
            assert found
            delta = b - IMG
            assert np.allclose(delta, delta.flat[0], atol=1e-6) and abs(delta.flat[0]) <= 0.3


def test_bad_input_errors():
    x = tf.constant(IMG)
    with pytest.raises(ValueError, match="3 or 4-dimensional"):
        tf.image.flip_left_right(tf.constant([1.0, 2.0]))
    with pytest.raises(ValueError, match="width must be >= target"):
        tf.image.crop_to_bounding_box(x, 0, 5, 2, 4)
    with pytest.raises(ValueError, match="central_fraction"):
        tf.image.central_crop(x, 0.0)
    with pytest.raises(TypeError, match="images"):
        tf.image.resize_bilinear(tf.constant([[[[True]]]]), [2, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="align_corners"):
        _run(tf.image.resize_bilinear(x, [3, 3], align_corners=True, half_pixel_centers=True))
    size = tf.placeholder(tf.int32, [2])
    with tf.Session() as s, pytest.raises(tf.errors.InvalidArgumentError, match="positive"):
        s.run(tf.image.resize_bilinear(x, size), {size: [0, 3]})
