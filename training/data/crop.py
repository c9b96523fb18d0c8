"""Random-resized-crop windows [y, x, h, w], stateless: the reference's sampler and TF's.

`pycls` (default) is the reference's `random_sized_crop` (pycls/datasets/transforms.py): up to 10
tries of an area uniform in [0.08, 1] of the image and an aspect (w/h) uniform in [3/4, 4/3],
sides rounded half-to-even, w and h swapped with probability 1/2, a try kept only if it fits, its
offset uniform over [0, H - h) (the reference's `randint` excludes the last offset); when no try
fits, the centred square of the shorter side (the reference scales the shorter side to the crop
size and centre-crops, the same window up to sub-pixel resampling). Every draw comes from one
stateless uniform tensor, so a seed gives the same window on every run, device and resume.

`tf_inception` is `tf.image.stateless_sample_distorted_bounding_box` (Inception/TF Model Garden):
it draws the crop's side rather than its area, clamps instead of rejecting and never swaps, so its
crops are smaller on average; kept as a named option.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from keras_regnet.errors import ConfigError

AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)
MAX_TRIES = 10
# One row of uniforms per try: area, aspect, swap, row offset, column offset.
DRAWS_PER_TRY = 5


def pycls_window_from_uniforms(height: tf.Tensor, width: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """The reference's window from uniforms u [..., tries, 5] in [0, 1); int32 [..., 4] = y, x, h, w.

    Vectorised over leading axes (a test draws 10,000 windows in one call).
    """
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    area = (AREA_RANGE[0] + (AREA_RANGE[1] - AREA_RANGE[0]) * u[..., 0]) * h * w
    aspect = ASPECT_RANGE[0] + (ASPECT_RANGE[1] - ASPECT_RANGE[0]) * u[..., 1]
    w_crop = tf.round(tf.sqrt(area * aspect))  # tf.round is half-to-even, as Python's round
    h_crop = tf.round(tf.sqrt(area / aspect))
    swap = u[..., 2] < 0.5
    w_crop, h_crop = tf.where(swap, h_crop, w_crop), tf.where(swap, w_crop, h_crop)
    w_crop, h_crop = tf.maximum(w_crop, 1.0), tf.maximum(h_crop, 1.0)
    fits = (h_crop <= h) & (w_crop <= w)
    y = tf.floor(u[..., 3] * (h - h_crop))  # randint(0, H - h): 0 .. H - h - 1, and 0 when h == H
    x = tf.floor(u[..., 4] * (w - w_crop))
    tries = tf.stack([y, x, h_crop, w_crop], axis=-1)  # [..., tries, 4]
    first = tf.argmax(tf.cast(fits, tf.int32), axis=-1)  # the first try that fits (0 if none)
    chosen = tf.gather(tries, first, axis=-2, batch_dims=len(u.shape) - 2)
    side = tf.minimum(h, w)
    fallback = tf.stack([tf.math.ceil((h - side) / 2), tf.math.ceil((w - side) / 2), side, side])
    any_fit = tf.reduce_any(fits, axis=-1, keepdims=True)
    return tf.cast(tf.where(any_fit, chosen, fallback), tf.int32)


def pycls_window(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """[y, x, h, w] of the reference's random-sized crop of an image of `shape` [H, W, C]."""
    u = tf.random.stateless_uniform([MAX_TRIES, DRAWS_PER_TRY], seed)
    return pycls_window_from_uniforms(shape[0], shape[1], u)


def tf_inception_window(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """[y, x, h, w] from TF's sampled distorted bounding box (area 8-100%, aspect 3/4-4/3)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=AREA_RANGE[0],
        aspect_ratio_range=ASPECT_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_TRIES,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


SAMPLERS: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "pycls": pycls_window,
    "tf_inception": tf_inception_window,
}
DEFAULT_SAMPLER = "pycls"


def window_sampler(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The window function named by --crop; ValueError naming the allowed ones."""
    if name not in SAMPLERS:
        raise ConfigError(f"--crop={name!r} is not allowed; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]

