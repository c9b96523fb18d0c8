"""The image operations of RandAugment, TrivialAugment and AugMix, with PIL's 8-bit semantics, in TensorFlow.

Every op takes and returns a float32 [H, W, 3] image holding whole numbers in 0-255 (an 8-bit image in a
float tensor) and a scalar argument, so the ops run inside a tf.data map and are chosen per image with
`tf.switch_case`. The arithmetic follows what timm's ops call in Pillow (`timm/data/auto_augment.py` in
huggingface/pytorch-image-models: ImageOps.autocontrast/equalize/solarize/posterize, ImageEnhance.*, and
`Image.transform(AFFINE)` for the geometric ops), so a policy written against timm's ranges means the same
thing here; tests/training/test_augment_policies.py compares each op with Pillow.
"""

from __future__ import annotations

import math

import tensorflow as tf

# timm's fill for the geometric ops: the ImageNet mean as 8-bit RGB (create_transform's img_mean,
# round(255 * (0.485, 0.456, 0.406))).
FILL = (124.0, 116.0, 104.0)


def to_8bit(image: tf.Tensor) -> tf.Tensor:
    """An image on the 0-255 scale rounded and clipped to whole 8-bit values (float32)."""
    return tf.clip_by_value(tf.round(tf.cast(image, tf.float32)), 0.0, 255.0)


def _truncate(values: tf.Tensor) -> tf.Tensor:
    """Pillow's float -> uint8 store in blends: clip to 0-255, drop the fraction."""
    return tf.floor(tf.clip_by_value(values, 0.0, 255.0))


def identity(image: tf.Tensor, _arg: tf.Tensor) -> tf.Tensor:
    return image


def invert(image: tf.Tensor, _arg: tf.Tensor) -> tf.Tensor:
    """ImageOps.invert: 255 - x."""
    return 255.0 - image


def solarize(image: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """ImageOps.solarize: values >= threshold become 255 - x."""
    return tf.where(image >= tf.cast(threshold, tf.float32), 255.0 - image, image)


def solarize_add(image: tf.Tensor, add: tf.Tensor, threshold: float = 128.0) -> tf.Tensor:
    """timm's solarize_add: values below `threshold` get `add` (capped at 255), the rest are kept."""
    return tf.where(image < threshold, tf.minimum(255.0, image + tf.cast(add, tf.float32)), image)


def posterize(image: tf.Tensor, bits: tf.Tensor) -> tf.Tensor:
    """ImageOps.posterize: keep the `bits` most significant bits (8 or more: unchanged; 0: black)."""
    bits = tf.cast(bits, tf.int32)
    shift = tf.clip_by_value(8 - bits, 0, 8)
    step = tf.cast(tf.bitwise.left_shift(1, shift), tf.float32)
    return tf.floor(image / step) * step


def auto_contrast(image: tf.Tensor, _arg: tf.Tensor) -> tf.Tensor:
    """ImageOps.autocontrast (no cutoff): each channel's [min, max] stretched to [0, 255], int() of the map."""
    lo = tf.cast(tf.reduce_min(image, axis=[0, 1], keepdims=True), tf.float64)
    hi = tf.cast(tf.reduce_max(image, axis=[0, 1], keepdims=True), tf.float64)
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    stretched = tf.clip_by_value(tf.floor(tf.cast(image, tf.float64) * scale - lo * scale), 0.0, 255.0)
    return tf.where(hi > lo, tf.cast(stretched, tf.float32), image)


def _equalize_channel(channel: tf.Tensor) -> tf.Tensor:
    values = tf.cast(channel, tf.int32)
    hist = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    last = tf.gather(hist, tf.reduce_max(tf.where(hist > 0)))
    step = (tf.reduce_sum(hist) - last) // 255
    lut = (step // 2 + tf.cumsum(hist, exclusive=True)) // tf.maximum(step, 1)
    lut = tf.cast(tf.minimum(lut, 255), tf.float32)
    return tf.where(step > 0, tf.gather(lut, values), channel)


def equalize(image: tf.Tensor, _arg: tf.Tensor) -> tf.Tensor:
    """ImageOps.equalize: per channel, Pillow's cumulative-histogram lookup table."""
    return tf.stack([_equalize_channel(image[..., c]) for c in range(3)], axis=-1)


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """Pillow's convert("L"): (R*19595 + G*38470 + B*7471 + 2^15) >> 16, as [H, W, 1]."""
    weighted = tf.reduce_sum(image * tf.constant([19595.0, 38470.0, 7471.0]), axis=-1, keepdims=True)
    return tf.floor((weighted + 32768.0) / 65536.0)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Image.blend(degenerate, image, factor), which ImageEnhance uses."""
    return _truncate(degenerate + tf.cast(factor, tf.float32) * (image - degenerate))


def color(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """ImageEnhance.Color: blend with the image's grayscale."""
    return _blend(tf.broadcast_to(grayscale(image), tf.shape(image)), image, factor)


def contrast(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """ImageEnhance.Contrast: blend with a flat image at the grayscale's mean (int(mean + 0.5))."""
    mean = tf.floor(tf.reduce_mean(tf.cast(grayscale(image), tf.float64)) + 0.5)
    return _blend(tf.fill(tf.shape(image), tf.cast(mean, tf.float32)), image, factor)


def brightness(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """ImageEnhance.Brightness: blend with black."""
    return _blend(tf.zeros_like(image), image, factor)


def smooth(image: tf.Tensor) -> tf.Tensor:
    """ImageFilter.SMOOTH: 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 rounded; the 1-pixel border kept."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    inner = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
    inner = tf.clip_by_value(tf.floor(inner + 0.5), 0.0, 255.0)
    return tf.concat([image[:1], tf.concat([image[1:-1, :1], inner, image[1:-1, -1:]], axis=1), image[-1:]],
                     axis=0)


def sharpness(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image."""
    return _blend(smooth(image), image, factor)


def affine(image: tf.Tensor, matrix: tf.Tensor, fill: tuple[float, float, float] = FILL) -> tf.Tensor:
    """Image.transform(AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor=fill).

    Pillow samples the input at (a*x + b*y + c, d*x + e*y + f) for the output pixel centre (x, y), with
    pixel i centred at i + 0.5; TensorFlow's projective transform centres pixel i at i, hence the shift.
    As Pillow, a sample that falls inside the image reads the edge pixels past the last centre, one that
    falls outside takes the fill colour.
    """
    a, b, c, d, e, f = tf.unstack(tf.cast(matrix, tf.float32))
    tx, ty = c + 0.5 * (a + b - 1.0), f + 0.5 * (d + e - 1.0)
    shape = tf.shape(image)[:2]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=tf.stack([a, b, tx, d, e, ty, 0.0, 0.0])[None], output_shape=shape,
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")[0]
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    y, x = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    source_x, source_y = a * x + b * y + tx, d * x + e * y + ty
    inside = (source_x >= -0.5) & (source_x < width - 0.5) & (source_y >= -0.5) & (source_y < height - 0.5)
    # Pillow stores the interpolated value truncated; 1e-3 absorbs float32 error on whole values.
    return tf.where(inside[..., None], _truncate(out + 1e-3), tf.constant(fill, tf.float32))


def shear_x(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """timm's shear_x: AFFINE (1, factor, 0, 0, 1, 0)."""
    return affine(image, tf.stack([1.0, factor, 0.0, 0.0, 1.0, 0.0]))


def shear_y(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """timm's shear_y: AFFINE (1, 0, 0, factor, 1, 0)."""
    return affine(image, tf.stack([1.0, 0.0, 0.0, factor, 1.0, 0.0]))


def translate_x(image: tf.Tensor, pixels: tf.Tensor) -> tf.Tensor:
    """AFFINE (1, 0, pixels, 0, 1, 0): the content moves left by `pixels`."""
    return affine(image, tf.stack([1.0, 0.0, pixels, 0.0, 1.0, 0.0]))


def translate_y(image: tf.Tensor, pixels: tf.Tensor) -> tf.Tensor:
    """AFFINE (1, 0, 0, 0, 1, pixels): the content moves up by `pixels`."""
    return affine(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, pixels]))


def rotate(image: tf.Tensor, degrees: tf.Tensor) -> tf.Tensor:
    """Image.rotate(degrees) without expand: counter-clockwise about the centre (w/2, h/2)."""
    shape = tf.cast(tf.shape(image), tf.float32)
    cx, cy = shape[1] / 2.0, shape[0] / 2.0
    angle = -tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    a, b, d, e = tf.cos(angle), tf.sin(angle), -tf.sin(angle), tf.cos(angle)
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy
    return affine(image, tf.stack([a, b, c, d, e, f]))
