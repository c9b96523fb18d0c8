"""The reference's evaluation transform, one TensorFlow function for training's eval and serving.

pycls `scale_and_center_crop` (pycls/datasets/transforms.py) with TEST.IM_SIZE = size / 0.875
(256 for 224; the crop fraction and interpolation come from the weights' `EvalSettings`,
keras_regnet.presets): the shorter side is resized to 256 and the longer to int(longer / shorter * 256)
(truncated, as the reference), bilinearly with half-pixel centres and no antialiasing (OpenCV's
INTER_LINEAR, which the reference uses), then the size x size window at offset
ceil((side - size) / 2) is kept. Pure TensorFlow ops, so it runs inside tf.data and inside a
SavedModel's `serve_image_bytes` signature alike; served models see the pixels they were scored on.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_regnet.presets import DEFAULT, EvalSettings

EVAL_CROP_FRACTION = DEFAULT.crop_fraction  # 224 / 256


def scale_size(size: int, settings: EvalSettings = DEFAULT) -> int:
    """The shorter side before the centre crop: round(size / crop fraction), 256 for 224."""
    return settings.scale_size(size)


def scale_and_center_crop(image: Any, size: int, settings: EvalSettings = DEFAULT) -> tf.Tensor:
    """HxWxC image (any dtype, 0-255) -> float32 size x size x C, as the reference evaluates."""
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    target = scale_size(size, settings)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    portrait = w < h
    side = tf.constant(target, tf.float64)
    new_h = tf.where(portrait, tf.floor(h / w * side), side)
    new_w = tf.where(portrait, side, tf.floor(w / h * side))
    new_hw = tf.maximum(tf.cast(tf.stack([new_h, new_w]), tf.int32), size)
    image = tf.image.resize(image, new_hw, method=settings.interpolation, antialias=False)
    top = (new_hw[0] - size + 1) // 2  # ceil((h - size) / 2)
    left = (new_hw[1] - size + 1) // 2
    channels = image.shape[-1]
    image = tf.slice(image, [top, left, 0], [size, size, -1])
    image.set_shape([size, size, channels])
    return image


def decode_and_center_crop(encoded: tf.Tensor, size: int, settings: EvalSettings = DEFAULT) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF string -> the weights' eval crop, float32 RGB 0-255."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return scale_and_center_crop(image, size, settings)
