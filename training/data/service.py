"""The train transform on tf.data service workers: one function wires a dataset to the service.

Policy (docs/training.md, "tf.data service"): `ShardingPolicy.DYNAMIC`. The dispatcher hands each
worker the next file of one pass over the epoch's records (this input pipeline's shard, shuffled
by the epoch seed), so within a job every record is read at most once, and exactly once while no
worker dies; a worker's failures and a dead worker's unfinished files come back as placeholders
with label -1, which the train step masks out and counts as skipped. Workers batch their own
stream; the trainer re-batches to whole batches, so only the pass's last partial batch is dropped.
Images travel as float16 (SERVED_DTYPE) and are cast back to float32 on the trainer.
What changes against the local Feed: the order of an epoch depends on which worker is faster (same
images, other order), and each image's augmentation is seeded by (seed, epoch, a fingerprint of
its bytes) instead of its position; a resumed run starts a new job that reads a new pass of the
same epoch and takes the batches still owed, so images read before the interruption may be read
again and as many others skipped in that epoch. Job names carry the run, the input pipeline, the
epoch, the start batch, the global batch and a per-process suffix, so a restarted trainer never
attaches to a stale job. Eval never uses the service.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import tensorflow as tf

from keras_regnet.errors import ConfigError
from training.data.mix import MixConfig
from training.data.pipeline import (
    AUTOTUNE,
    INVALID_LABEL,
    Source,
    epoch_seed_of,
    mixed_batches,
    pipeline_index,
)
from training.core.service_address import check_reachable, service_url

FLAG = "data_service"
# Images cross the network as float16: half the bytes of float32 (0.3 MB per 224 image), within 1/16
# of a grey level below 256 and 1/8 up to the lighting's ~290 (11-bit significand): PSNR > 70 dB.
SERVED_DTYPE = tf.float16
_FINGERPRINT_BUCKETS = 2**62


def apply_data_service(dataset: tf.data.Dataset, address: str, job_name: str) -> tf.data.Dataset:
    """`dataset` computed on the service's workers (dynamic sharding over its source's files).

    The one place either engine hands a dataset to the service: checks the dispatcher answers
    (a one-line DataError within seconds otherwise), then `tf.data.experimental.service.distribute`.
    """
    check_reachable(FLAG, address)
    service = tf.data.experimental.service
    return dataset.apply(service.distribute(processing_mode=service.ShardingPolicy.DYNAMIC,
                                            service=service_url(FLAG, address), job_name=job_name))


@dataclass(frozen=True)
class DataService:
    """Where a run's train transform runs: the dispatcher's address and the run's job-name prefix."""

    address: str
    run: str
    suffix: str = field(default_factory=lambda: os.urandom(4).hex())  # this trainer process
    _calls: Iterator[int] = field(default_factory=itertools.count, repr=False, compare=False)

    def job_name(self, ctx: tf.distribute.InputContext | None, epoch: int, start_batch: int,
                 global_batch: int) -> str:
        """A name no earlier trainer and no earlier call of this one used (a job is read once)."""
        index, count = pipeline_index(ctx)
        return (f"{self.run}-p{index}of{count}-e{epoch}-s{start_batch}-b{global_batch}-{self.suffix}"
                f"-{next(self._calls)}")

    def train_dataset(self, source: Source, ctx: tf.distribute.InputContext | None, batch_size: int,
                      epoch: int, start_batch: int, num_batches: int, image_size: int, seed: int,
                      mix: MixConfig | None = None) -> tf.data.Dataset:
        """`num_batches` train batches of epoch `epoch` from the service (see the module docstring)."""
        epoch_seed = epoch_seed_of(seed, epoch, ctx)
        global_batch = batch_size * (ctx.num_replicas_in_sync if ctx is not None else 1)
        name = self.job_name(ctx, epoch, start_batch, global_batch)
        served = apply_data_service(worker_dataset(source, ctx, batch_size, epoch_seed, image_size),
                                    self.address, name)
        ds = served.rebatch(batch_size, drop_remainder=True).map(_to_float32, num_parallel_calls=AUTOTUNE)
        ds = ds.concatenate(_placeholder_batches(batch_size, image_size)).take(num_batches)
        if mix is not None and mix.enabled:
            ds = mixed_batches(ds, mix, source.num_classes, epoch_seed, start_batch, num_batches)
        return ds.prefetch(AUTOTUNE)


def worker_dataset(source: Source, ctx: tf.distribute.InputContext | None, batch_size: int,
                   epoch_seed: int, image_size: int) -> tf.data.Dataset:
    """What each worker runs: one pass over the records, augmented and batched; undecodable dropped."""
    records = source.train_records(ctx, epoch_seed)
    if records.element_spec[0].dtype != tf.string:
        raise ConfigError(f"--{FLAG} serves encoded images (imagenet2012, tfrecord, folder); "
                          f"--dataset={source.name} holds decoded pixels: train it without --{FLAG}")

    def augment(payload: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        key = tf.strings.to_hash_bucket_fast(payload, _FINGERPRINT_BUCKETS)
        element_seed = tf.stack([tf.constant(epoch_seed, tf.int64), key])
        image = source.train_map(payload, element_seed, image_size)
        return tf.cast(image, SERVED_DTYPE), tf.cast(label, tf.int64)

    ds = records.map(augment, num_parallel_calls=AUTOTUNE, deterministic=False).ignore_errors()
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def _to_float32(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Served float16 batches back to the float32 the train step takes (on the trainer)."""
    return tf.cast(images, tf.float32), labels


def _placeholder_batches(batch_size: int, image_size: int) -> tf.data.Dataset:
    """Endless (zeros, -1) batches: what stands for records the pass did not deliver."""
    images = tf.zeros([batch_size, image_size, image_size, 3], tf.float32)
    labels = tf.fill([batch_size], tf.constant(INVALID_LABEL, tf.int64))
    return tf.data.Dataset.from_tensors((images, labels)).repeat()
