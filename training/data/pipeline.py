"""tf.data pipelines shared by every dataset: sharding, per-element seeds, skip-and-count decode.

A `Source` yields (payload, label) records (encoded bytes, file paths or in-memory pixels) and knows
how to turn one into an image. `train_dataset` / `eval_dataset` add what every source needs:
per-worker sharding (from tf.distribute's InputContext), a deterministic per-epoch order, resuming
at a batch position, parallel decode with prefetching, and the corrupt-image path: a record that
fails to decode becomes a placeholder with label -1, which the train/eval steps mask out and count
(in place for eval; at the end of the requested train stream, see `skip_failures`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import tensorflow as tf

from keras_regnet.errors import ConfigError, DataError
from training.data.mix import MixConfig, mix_batch
from training.core.objective import INVALID_LABEL, PADDING_LABEL

AUTOTUNE = tf.data.AUTOTUNE
# Labels leave tf.data as int32 (4 bytes; class ids, INVALID_LABEL and PADDING_LABEL all fit); soft labels
# (mixup/CutMix) stay float32.
LABEL_DTYPE = tf.int32
# Images leave tf.data in the dtype the model computes in: its first op (ImageNetNormalization, Keras'
# autocast) casts them to that dtype anyway, so casting in tf.data instead changes no value the model sees
# and halves the bytes sent to the devices under a mixed policy.
_IMAGE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
# Data problems that must stop the run (not skip a record) are tf.debugging.Assert messages that
# start with this marker; the loop turns them into a one-line ValueError (see data_error_message).
DATA_ERROR_MARKER = "[training data] "


@dataclass
class Source:
    """A dataset: record readers (already sharded per input pipeline) and per-record decoders."""

    name: str
    num_classes: int
    num_train: int
    num_eval: int
    train_records: Callable[[tf.distribute.InputContext | None, int], tf.data.Dataset]
    eval_records: Callable[[tf.distribute.InputContext | None], tf.data.Dataset]
    train_map: Callable[[tf.Tensor, tf.Tensor, int], tf.Tensor]  # (payload, seed, size) -> image
    eval_map: Callable[[tf.Tensor, int], tf.Tensor]  # (payload, size) -> image
    may_fail: bool = True  # decoding can fail (files): use the skip-and-count path
    class_names: list[str] | None = None  # written beside model.keras as class_names.json
    split: dict[str, Any] | None = None  # which file went where (folder data): model_dir/split.json
    data_service: Any = None  # a training.data.service.DataService: train batches come from its workers


def data_error_message(error: tf.errors.OpError) -> str | None:
    """The user-facing text of a DATA_ERROR_MARKER assertion inside `error`, else None.

    tf.debugging.Assert reports `assertion failed: [<message>] [<value>]`; the result is the
    message followed by the value, e.g. "... found image/class/label=1000".
    """
    text = error.message
    start = text.find(DATA_ERROR_MARKER)
    if start < 0:
        return None
    body = text[start + len(DATA_ERROR_MARKER):].split("\n", 1)[0]
    message, _, value = body.partition("] [")
    value = value.split("]", 1)[0]
    return f"{message}{value}" if value else message.rstrip("]")


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Re-raise a DATA_ERROR_MARKER assertion from the input pipeline as a one-line ValueError."""
    try:
        yield
    except tf.errors.OpError as e:
        message = data_error_message(e)
        if message is None:
            raise
        raise DataError(message) from e


def image_dtype_of(policy: str) -> str:
    """The dtype images leave tf.data in under a Keras dtype policy: its compute dtype."""
    if policy not in _IMAGE_DTYPES:
        raise ConfigError(f"dtype policy {policy!r} has no input dtype; use one of {sorted(_IMAGE_DTYPES)}")
    return _IMAGE_DTYPES[policy]


def to_output_dtypes(ds: tf.data.Dataset, image_dtype: str) -> tf.data.Dataset:
    """The pipeline's last map: images to `image_dtype`, integer labels to int32 (soft labels as they are)."""
    dtype = tf.as_dtype(image_dtype)

    def cast(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(images, dtype), tf.cast(labels, LABEL_DTYPE) if labels.dtype.is_integer else labels

    return ds.map(cast, num_parallel_calls=AUTOTUNE)


def pipeline_index(ctx: tf.distribute.InputContext | None) -> tuple[int, int]:
    """(this input pipeline's index, the number of pipelines); (0, 1) without a context."""
    if ctx is None:
        return 0, 1
    return ctx.input_pipeline_id, ctx.num_input_pipelines


def shard(ds: tf.data.Dataset, ctx: tf.distribute.InputContext | None) -> tf.data.Dataset:
    """Record-level sharding for this input pipeline (a no-op with one pipeline)."""
    index, count = pipeline_index(ctx)
    return ds.shard(count, index) if count > 1 else ds


def robust_map(ds: tf.data.Dataset, fn: Callable, size: int, deterministic: bool) -> tf.data.Dataset:
    """Map `fn` over (x, label); a failing record yields (zeros, -1) instead of an error, in place."""
    placeholder = (tf.zeros([size, size, 3], tf.float32), tf.constant(INVALID_LABEL, tf.int64))

    def one(*record: tf.Tensor) -> tf.data.Dataset:
        good = tf.data.Dataset.from_tensors(record).map(fn).ignore_errors()
        return good.concatenate(tf.data.Dataset.from_tensors(placeholder)).take(1)

    return ds.interleave(one, cycle_length=8, block_length=1, num_parallel_calls=AUTOTUNE,
                         deterministic=deterministic)


def skip_failures(ds: tf.data.Dataset, fn: Callable, size: int, count: int,
                  deterministic: bool) -> tf.data.Dataset:
    """Exactly `count` elements of `fn` over `ds`: a failing record is dropped and a (zeros, -1)
    placeholder appended at the end instead, so every failure is still counted once.

    The train path's corrupt-image handling: one parallel map and `ignore_errors`, where
    `robust_map` builds three small datasets per record (measured: ~0.3 CPU ms of a ~1.3 ms image).
    Records after a failure move up one place, so batch boundaries shift by one per failure before
    them; the images and their augmentation draws (seeded by position before the map) do not.
    """
    placeholder = (tf.zeros([size, size, 3], tf.float32), tf.constant(INVALID_LABEL, tf.int64))
    good = ds.map(fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic).ignore_errors()
    return good.concatenate(tf.data.Dataset.from_tensors(placeholder).repeat()).take(count)


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_optimization.map_parallelization = True
    return options


def epoch_seed_of(seed: int, epoch: int, ctx: tf.distribute.InputContext | None) -> int:
    """The seed of one input pipeline's epoch: its record order and augmentation draws."""
    index, _ = pipeline_index(ctx)
    return (seed * 1_000_003 + epoch * 1009 + index) % (2**31 - 1)


def train_dataset(source: Source, ctx: tf.distribute.InputContext | None, batch_size: int,
                  epoch: int, start_batch: int, num_batches: int, image_size: int, seed: int,
                  deterministic: bool = False, mix: MixConfig | None = None,
                  image_dtype: str = "float32") -> tf.data.Dataset:
    """`num_batches` batches of epoch `epoch` from batch `start_batch` on, for one input pipeline.

    The record order and every augmentation draw depend only on (seed, epoch, pipeline, position),
    so resuming at `start_batch` continues the same stream. The stream repeats if a shard is
    shorter than an epoch, so every pipeline yields exactly `num_batches` (multi-worker safe).
    With `mix` enabled, each batch is mixed (mixup/CutMix) and labels are soft [batch, classes].
    Images come out as `image_dtype` (cast last, after mixing), integer labels as int32.
    """
    epoch_seed = epoch_seed_of(seed, epoch, ctx)
    records = source.train_records(ctx, epoch_seed).repeat()
    first = start_batch * batch_size
    ds = records.skip(first).take(num_batches * batch_size)
    ds = tf.data.Dataset.zip((tf.data.Dataset.range(first, first + num_batches * batch_size), ds))

    def augment(position: tf.Tensor, record: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        payload, label = record
        element_seed = tf.stack([tf.constant(epoch_seed, tf.int64), position])
        return source.train_map(payload, element_seed, image_size), tf.cast(label, tf.int64)

    if source.may_fail:
        ds = skip_failures(ds, augment, image_size, num_batches * batch_size, deterministic)
    else:
        ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=True)
    if mix is not None and mix.enabled:
        ds = mixed_batches(ds, mix, source.num_classes, epoch_seed, start_batch, num_batches)
    ds = to_output_dtypes(ds, image_dtype)
    return ds.prefetch(AUTOTUNE).with_options(_options(deterministic))


def mixed_batches(ds: tf.data.Dataset, mix: MixConfig, num_classes: int, epoch_seed: int,
           start_batch: int, num_batches: int) -> tf.data.Dataset:
    """Mix every batch; batch b's seed is (epoch_seed, -1 - b), disjoint from the per-image seeds."""
    positions = tf.data.Dataset.range(start_batch, start_batch + num_batches)

    def one(batch: tuple[tf.Tensor, tf.Tensor], position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        seed = tf.stack([tf.constant(epoch_seed, tf.int64), -1 - position])
        return mix_batch(batch[0], batch[1], seed, num_classes, mix)

    return tf.data.Dataset.zip((ds, positions)).map(one, num_parallel_calls=AUTOTUNE)


def eval_batches(num_eval: int, global_batch: int) -> int:
    """Eval steps so that every example is seen once (the last batches padded with label -1)."""
    return max(1, math.ceil(num_eval / global_batch))


@dataclass(frozen=True)
class FeedSettings:
    """What both engines' feeds read: the source, global batch, crop size, seed and mixing of a run;
    with the epoch's step counts that follow from them."""

    source: Source
    global_batch: int
    image_size: int
    seed: int = 0
    deterministic: bool = False
    mix: MixConfig | None = None
    image_dtype: str = "float32"  # what images leave tf.data as: the model's compute dtype (image_dtype_of)
    eval_image_size: int | None = None  # None: image_size

    @property
    def bytes_per_image(self) -> int:
        """Bytes of one image and its label as sent to the devices (soft labels with mixing: 4 per class)."""
        label = 4 * self.source.num_classes if self.mix is not None and self.mix.enabled else 4
        return self.image_size * self.image_size * 3 * tf.as_dtype(self.image_dtype).size + label

    @property
    def eval_size(self) -> int:
        """The eval batches' image side (--eval_image_size, else the training size)."""
        return self.eval_image_size or self.image_size

    @property
    def steps_per_epoch(self) -> int:
        """Whole global batches in one pass over the training split."""
        return self.source.num_train // self.global_batch

    @property
    def eval_steps(self) -> int:
        """Global batches covering the eval split once (the last padded)."""
        return eval_batches(self.source.num_eval, self.global_batch)


def eval_dataset(source: Source, ctx: tf.distribute.InputContext | None, batch_size: int,
                 num_batches: int, image_size: int, image_dtype: str = "float32") -> tf.data.Dataset:
    """Each pipeline's shard of the eval split, padded to exactly `num_batches` batches (images as `image_dtype`).

    Padding carries PADDING_LABEL, so it is told apart from undecodable records (INVALID_LABEL)
    even when the split holds fewer records than the Source's num_eval.
    """
    records = shard(source.eval_records(ctx), ctx)

    def prepare(payload: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return source.eval_map(payload, image_size), tf.cast(label, tf.int64)

    if source.may_fail:
        ds = robust_map(records, prepare, image_size, deterministic=True)
    else:
        ds = records.map(prepare, num_parallel_calls=AUTOTUNE)
    pad = tf.data.Dataset.from_tensors(
        (tf.zeros([image_size, image_size, 3], tf.float32), tf.constant(PADDING_LABEL, tf.int64))
    ).repeat()
    ds = ds.concatenate(pad).take(num_batches * batch_size)
    ds = to_output_dtypes(ds.batch(batch_size, drop_remainder=True), image_dtype)
    return ds.prefetch(AUTOTUNE).with_options(_options(True))
