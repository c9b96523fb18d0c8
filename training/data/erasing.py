"""Random erasing (Zhong et al. 2017) as timm applies it, keyed by the per-image seed.

timm's `RandomErasing` (`timm/data/random_erasing.py` in huggingface/pytorch-image-models), with the
settings its train script uses (`--reprob p --remode pixel --recount 1`): with probability p, up to 10
tries of a box of area uniform in [2%, 1/3] of the image and aspect exp(uniform(log 0.3, log 1/0.3)),
h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)); the first box with h < H and w < W is
placed at a uniform top-left corner and filled with per-pixel normal noise in the normalized space (timm
erases after normalizing), i.e. mean + std * N(0, 1) per channel on our 0-255 scale.
"""

from __future__ import annotations

import math

import tensorflow as tf

from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

MIN_AREA, MAX_AREA = 0.02, 1.0 / 3.0
LOG_ASPECT = (math.log(0.3), math.log(1.0 / 0.3))
ATTEMPTS = 10


def erase_box(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """[top, left, h, w] of timm's first fitting box (h = w = 0 when none of the tries fits)."""
    k = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    area = tf.cast(height * width, tf.float32)
    target = tf.random.stateless_uniform([ATTEMPTS], k[0], MIN_AREA, MAX_AREA) * area
    aspect = tf.exp(tf.random.stateless_uniform([ATTEMPTS], k[1], *LOG_ASPECT))
    h = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
    w = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
    fits = (h < height) & (w < width)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    ok = tf.reduce_any(fits)
    h, w = tf.where(ok, h[first], 0), tf.where(ok, w[first], 0)
    top = tf.random.stateless_uniform([], k[2], 0, height - h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], k[3], 0, width - w + 1, dtype=tf.int32)
    return tf.stack([top, left, h, w])


def random_erase(image: tf.Tensor, seed: tf.Tensor, probability: float) -> tf.Tensor:
    """With `probability`, one box of `image` (float32 [H, W, 3], 0-255 scale) replaced by pixel noise."""
    k = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    shape = tf.shape(image)
    top, left, h, w = tf.unstack(erase_box(k[0], shape[0], shape[1]))
    rows, cols = tf.range(shape[0])[:, None], tf.range(shape[1])[None, :]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    erase = tf.random.stateless_uniform([], k[1]) < probability

    def erased() -> tf.Tensor:  # the noise is drawn only for the images that are erased
        noise = (tf.constant(IMAGENET_MEAN_RGB * 255.0) + tf.constant(IMAGENET_STD_RGB * 255.0)
                 * tf.random.stateless_normal(shape, k[2]))
        return tf.where(inside[..., None], noise, image)

    return tf.cond(erase, erased, lambda: image)
