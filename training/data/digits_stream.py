"""The embedded dataset: scikit-learn's 8x8 handwritten digits, upscaled to RGB, fixed split.

The split (keras_regnet.data.digits: every 5th image per class held out) is shared with the
export's readers. Images (0-255) are resized bilinearly to the training size and repeated over 3
channels. Train augmentation: random shifts of up to 1/8 of the size.
"""

from __future__ import annotations

import tensorflow as tf

from keras_regnet.data.digits import NUM_CLASSES, load_arrays
from training.data import augment
from training.data.pipeline import Source

__all__ = ["NUM_CLASSES", "load_arrays", "make_source"]


def _to_rgb(pixels: tf.Tensor, size: int) -> tf.Tensor:
    image = tf.image.resize(tf.cast(pixels, tf.float32)[..., None], [size, size], method="bilinear")
    return tf.repeat(image, 3, axis=-1)


def make_source() -> Source:
    """The digits Source: in-memory records, no decode failures possible."""
    train_x, train_y, eval_x, eval_y = load_arrays()

    def train_records(ctx: tf.distribute.InputContext | None, epoch_seed: int) -> tf.data.Dataset:
        from training.data.pipeline import shard

        ds = shard(tf.data.Dataset.from_tensor_slices((train_x, train_y)), ctx)
        return ds.shuffle(len(train_y), seed=epoch_seed, reshuffle_each_iteration=True)

    def eval_records(ctx: tf.distribute.InputContext | None) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((eval_x, eval_y))

    def train_map(pixels: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
        image = _to_rgb(pixels, size)
        return augment.random_shift(image, seed, max(1, size // 8))

    def eval_map(pixels: tf.Tensor, size: int) -> tf.Tensor:
        return _to_rgb(pixels, size)

    return Source("digits", NUM_CLASSES, len(train_y), len(eval_y), train_records, eval_records,
                  train_map, eval_map, may_fail=False)
