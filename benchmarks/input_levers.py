"""Candidate levers for the train stream's per-core speed (#22), and the decode ceilings they face.

Each lever is the trainer's train transform (`augment.train_image`) on the same records and
per-element seeds as `pipeline.train_dataset` (epoch 0, seed 0), restructured one way; each
ceiling keeps only the work any CPU transform must do (decode the crop; decode it and resize it)
and one pixel per image. `benchmarks/input_pipeline.py` measures them side by side with today's
stream; `tests/benchmarks/test_input_levers.py` holds them to the same pixels as the per-element transform.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from training.data import augment
from training.data.pipeline import AUTOTUNE, Source, epoch_seed_of

# name -> (source, batch, num_batches, size, deterministic) -> batched (images, labels) dataset
Builder = Callable[..., tf.data.Dataset]


def positioned_records(source: Source, count: int) -> tf.data.Dataset:
    """(position, (payload, label)) of the first `count` train records of epoch 0, as the trainer reads them."""
    records = source.train_records(None, epoch_seed_of(0, 0, None)).repeat().take(count)
    return tf.data.Dataset.zip((tf.data.Dataset.range(count), records))


def element_seed(position: tf.Tensor) -> tf.Tensor:
    """The per-element seed `train_dataset` gives the image at `position` (epoch 0, seed 0)."""
    return tf.stack([tf.constant(epoch_seed_of(0, 0, None), tf.int64), position])


def crop_flip_resize(payload: tf.Tensor, seed: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`train_image` up to the lighting: (the resized float32 image, its RGB lighting offset)."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = augment.decode_and_random_crop(payload, seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return augment.resize(image, size), augment.lighting_offset(seeds[2])


def add_lighting_batch(images: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    """images[b] + offsets[b] per channel for a [B, H, W, 3] batch: the rows-of-W*3 sum of
    `augment.add_per_channel`, one op for the whole batch (same float additions)."""
    shape = tf.shape(images)
    rows = tf.reshape(tf.cast(images, tf.float32), [shape[0], shape[1], shape[2] * 3])
    return tf.reshape(rows + tf.tile(offsets, [1, shape[2]])[:, None, :], shape)


def batched_lighting(source: Source, batch: int, num_batches: int, size: int, deterministic: bool = False,
                     to_uint8: bool = False) -> tf.data.Dataset:
    """Lever a (and b with `to_uint8`): crop, flip and resize per image; lighting per batch."""

    def per_image(position, record):
        image, offset = crop_flip_resize(record[0], element_seed(position), size)
        if to_uint8:
            image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
        return (image, offset), tf.cast(record[1], tf.int64)

    def per_batch(parts, labels):
        return add_lighting_batch(*parts), labels

    ds = positioned_records(source, batch * num_batches)
    ds = ds.map(per_image, num_parallel_calls=AUTOTUNE, deterministic=deterministic).ignore_errors()
    ds = ds.batch(batch, drop_remainder=True).map(per_batch, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def uint8_between_stages(source: Source, batch: int, num_batches: int, size: int,
                         deterministic: bool = False) -> tf.data.Dataset:
    """Lever a + b: as `batched_lighting`, the resized image rounded to uint8 before batching."""
    return batched_lighting(source, batch, num_batches, size, deterministic, to_uint8=True)


def one_graph_per_batch(source: Source, batch: int, num_batches: int, size: int,
                        deterministic: bool = False) -> tf.data.Dataset:
    """The transform over a batch of records in one graph (`tf.map_fn`): no per-image tf.data
    overhead, but one undecodable image would fail its whole batch."""
    out = tf.TensorSpec([size, size, 3], tf.float32)

    def whole(positions, records):
        images = tf.map_fn(lambda a: augment.train_image(a[1], element_seed(a[0]), size),
                           (positions, records[0]), fn_output_signature=out, parallel_iterations=1)
        return images, tf.cast(records[1], tf.int64)

    ds = positioned_records(source, batch * num_batches).batch(batch, drop_remainder=True)
    return ds.map(whole, num_parallel_calls=AUTOTUNE, deterministic=deterministic).prefetch(AUTOTUNE)


def decode_crop(payload: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
    """The trainer's crop of the image at `seed`, decoded (uint8, crop-sized)."""
    return augment.decode_and_random_crop(payload, tf.random.experimental.stateless_split(seed, 3)[0])


def decode_and_resize(payload: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
    """The least a CPU transform must do per image: decode the crop and resize it (no flip, lighting)."""
    return augment.resize(decode_crop(payload, seed, size), size)


def stage_alone(source: Source, batch: int, num_batches: int, size: int, deterministic: bool = False,
                stage: Callable = decode_crop) -> tf.data.Dataset:
    """`stage` per image in tf.data as the trainer's map runs it, one pixel kept (so batching is free)."""

    def per_image(position, record):
        pixel = stage(record[0], element_seed(position), size)[0, 0]
        return tf.cast(pixel, tf.float32), tf.cast(record[1], tf.int64)

    ds = positioned_records(source, batch * num_batches)
    ds = ds.map(per_image, num_parallel_calls=AUTOTUNE, deterministic=deterministic).ignore_errors()
    return ds.batch(batch, drop_remainder=True).prefetch(AUTOTUNE)


def decode_resize_alone(source: Source, batch: int, num_batches: int, size: int,
                        deterministic: bool = False) -> tf.data.Dataset:
    """Ceiling 2: decode + crop + resize per image in tf.data, one pixel kept."""
    return stage_alone(source, batch, num_batches, size, deterministic, stage=decode_and_resize)


def private_threads(source: Source, batch: int, num_batches: int, size: int,
                    deterministic: bool = False) -> tf.data.Dataset:
    """Lever c: the trainer's stream with a private pool of 2 threads and autotuning off."""
    from training.data.pipeline import train_dataset

    options = tf.data.Options()
    options.threading.private_threadpool_size = 2
    options.autotune.enabled = False
    ds = train_dataset(source, None, batch, 0, 0, num_batches, size, 0, deterministic=deterministic)
    return ds.with_options(options)


LEVERS: dict[str, Builder] = {
    "a. lighting per batch (float32 between stages)": batched_lighting,
    "a+b. uint8 between stages, cast + lighting per batch": uint8_between_stages,
    "one graph per batch (tf.map_fn; no per-image error path)": one_graph_per_batch,
    "c. private thread pool of 2, autotune off": private_threads,
}
CEILINGS: dict[str, Builder] = {
    "decode + crop alone (per image in tf.data)": stage_alone,
    "decode + crop + resize alone (per image in tf.data)": decode_resize_alone,
}
