"""Eval-time image preprocessing shared by the serving graph and the calibration readers.

The reference evaluation: resize the shorter side to size / 0.875 (256 for 224), then take the
central size x size crop. Pure TensorFlow ops, so it runs inside a SavedModel signature.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

CROP_FRACTION = 0.875


def center_crop_and_resize(image: Any, image_size: int) -> tf.Tensor:
    """HxWx3 image (any dtype, 0-255) -> float32 image_size x image_size x 3 in [0, 255]."""
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    target = tf.math.ceil(image_size / CROP_FRACTION)
    scale = target / tf.minimum(height, width)
    new_h = tf.cast(tf.math.round(height * scale), tf.int32)
    new_w = tf.cast(tf.math.round(width * scale), tf.int32)
    new_h, new_w = tf.maximum(new_h, image_size), tf.maximum(new_w, image_size)
    resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    top = (new_h - image_size) // 2
    left = (new_w - image_size) // 2
    cropped = resized[top:top + image_size, left:left + image_size, :]
    cropped = tf.ensure_shape(cropped, [image_size, image_size, 3])
    return tf.clip_by_value(cropped, 0.0, 255.0)


def decode_and_preprocess(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF string -> preprocessed float32 RGB image."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return center_crop_and_resize(image, image_size)
