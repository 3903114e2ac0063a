"""Records TensorFlow's tf.image results for tests/ops/test_image_ops.py (run once with TensorFlow).

    TF_USE_LEGACY_KERAS=1 python tests/data/image_ops/record_tf.py   # writes expected.npz beside it
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
rng = np.random.RandomState(0)
img = rng.rand(2, 5, 7, 3).astype(np.float32)
u8 = (rng.rand(4, 6, 3) * 255).astype(np.uint8)
w_up = rng.rand(2, 8, 11, 3).astype(np.float32)
w_dn = rng.rand(2, 3, 4, 3).astype(np.float32)
out = {"img": img, "u8": u8}
x = tf.constant(img)
cases = {}
for tag, size, w in (("up", [8, 11], w_up), ("down", [3, 4], w_dn)):
    for ac, hp in ((False, False), (True, False), (False, True)):
        k = f"{tag}_ac{int(ac)}_hp{int(hp)}"
        cases["bilinear_" + k] = (tf.image.resize_bilinear(x, size, align_corners=ac, half_pixel_centers=hp), w)
        cases["nearest_" + k] = (tf.image.resize_nearest_neighbor(x, size, align_corners=ac,
                                                                  half_pixel_centers=hp), w)
    cases["resize_images_" + tag] = (tf.image.resize_images(x, size), w)
    cases["resize_images_nn_" + tag] = (tf.image.resize_images(x, size, tf.image.ResizeMethod.NEAREST_NEIGHBOR), w)
with tf.Session() as s:
    for k, (y, w) in cases.items():
        g = tf.gradients(tf.reduce_sum(y * w), x)[0]
        out[k], out[k + "_grad"] = s.run([y, g])
    single = tf.constant(img[0])
    ops = {
        "flip_lr": tf.image.flip_left_right(x), "flip_ud": tf.image.flip_up_down(x),
        "transpose": tf.image.transpose_image(x), "rot90_1": tf.image.rot90(x), "rot90_3": tf.image.rot90(x, 3),
        "standardize": tf.image.per_image_standardization(single),
        "standardize_batch": tf.image.per_image_standardization(x),
        "brightness": tf.image.adjust_brightness(x, 0.2), "contrast": tf.image.adjust_contrast(x, 1.7),
        "gray": tf.image.rgb_to_grayscale(x), "gray_rgb": tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)),
        "central_crop": tf.image.central_crop(single, 0.5),
        "crop_box": tf.image.crop_to_bounding_box(x, 1, 2, 3, 4),
        "pad_box": tf.image.pad_to_bounding_box(x, 1, 2, 8, 10),
        "crop_or_pad": tf.image.resize_image_with_crop_or_pad(x, 4, 9),
        "u8_to_float": tf.image.convert_image_dtype(tf.constant(u8), tf.float32),
        "float_to_u8": tf.image.convert_image_dtype(single, tf.uint8, saturate=True),
        "total_variation": tf.image.total_variation(x),
        "hsv": tf.image.rgb_to_hsv(x), "rgb_back": tf.image.hsv_to_rgb(tf.image.rgb_to_hsv(x)),
        "saturation": tf.image.adjust_saturation(x, 0.6), "hue": tf.image.adjust_hue(x, 0.3),
        "u8_brightness": tf.image.adjust_brightness(tf.constant(u8), 0.1),
    }
    for k, v in ops.items():
        out[k] = s.run(v)
np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected.npz"), **out)
print("wrote", len(out), "arrays")
