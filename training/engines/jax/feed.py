"""The JAX engine's input: the same tf.data train/eval streams as the TensorFlow engine, on the devices.

Each JAX process is one input pipeline (tf.distribute's InputContext with the process index), reading
its share of every global batch exactly as a tf.distribute worker does, so the stream stays a pure
function of (seed, epoch, position) and a resumed run reads the batches it stopped at. Batches are
put on the devices ahead of the step; an undecodable-data error from tf.data surfaces as the
one-line DataError, so the trainer that reads the batches needs no TensorFlow. TensorFlow is used for input only and must not see the
accelerators (`hide_accelerators_from_tensorflow`), so their memory stays with JAX.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from keras_regnet.errors import ConfigError
from training.core.batch_fit import check_steps_per_epoch
from training.core.config import TrainConfig
from training.data.mix import MixConfig
from training.data.pipeline import FeedSettings, Source, data_errors, eval_dataset, image_dtype_of, train_dataset
from training.engines.jax.devices import DeviceLayout, JaxRuntime, check_batch, prefetch_to_devices


def hide_accelerators_from_tensorflow() -> None:
    """Make TensorFlow CPU-only in this process (call before TensorFlow runs any op).

    ConfigError in one line when TensorFlow was initialised first and still sees a GPU or TPU: its
    allocator would then take the accelerator memory the JAX step needs.
    """
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):  # already initialised, or no such device type
            pass
        try:
            seen = tf.config.get_visible_devices(kind)
        except (RuntimeError, ValueError):  # no such device type in this TensorFlow build
            seen = []
        if seen:
            raise ConfigError(f"TensorFlow was initialised before the JAX engine could hide the {kind}s from it "
                              f"and still sees {len(seen)} ({seen[0].name}); start the JAX engine before any "
                              f"TensorFlow op runs in this process (python -m training.main --engine=jax does)")


@dataclass(frozen=True)
class JaxFeed(FeedSettings):
    """Global batches of `source` as arrays split over the layout's devices."""

    layout: DeviceLayout = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.global_batch % self.layout.devices:
            raise ConfigError(f"--batch_size={self.global_batch} is not divisible by the {self.layout.devices} "
                              f"devices; use a multiple of {self.layout.devices}")

    def _context(self) -> tf.distribute.InputContext:
        count = self.layout.process_count
        return tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=self.layout.process_index,
                                          num_replicas_in_sync=count)

    @property
    def local_batch(self) -> int:
        """This process's share of each global batch."""
        return self.global_batch // self.layout.process_count

    def train(self, epoch: int, start: int, count: int) -> Iterator[Any]:
        """`count` global batches of epoch `epoch` from batch `start` on, already on the devices."""
        service = self.source.data_service  # --data_service: the train transform runs on its workers
        if service is not None:
            ds = service.train_dataset(self.source, self._context(), self.local_batch, epoch, start, count,
                                       self.image_size, self.seed, self.mix, self.image_dtype)
        else:
            ds = train_dataset(self.source, self._context(), self.local_batch, epoch, start, count, self.image_size,
                               self.seed, self.deterministic, self.mix, self.image_dtype)
        return _translating_errors(prefetch_to_devices(ds.as_numpy_iterator(), self.layout))

    def eval(self) -> Iterator[Any]:
        """The whole eval split in `eval_steps` global batches (padding labelled apart), on the devices."""
        return _translating_errors(prefetch_to_devices(self._eval_dataset.as_numpy_iterator(), self.layout))

    @functools.cached_property
    def _eval_dataset(self) -> tf.data.Dataset:
        """The eval pipeline, built at the first evaluation and iterated afresh by every later one."""
        return eval_dataset(self.source, self._context(), self.local_batch, self.eval_steps, self.eval_size,
                            self.image_dtype)


def _translating_errors(batches: Iterator[Any]) -> Iterator[Any]:
    """`batches`, with tf.data's data errors re-raised as one-line DataErrors (training.data.pipeline)."""
    with data_errors():
        yield from batches


def make_feed(cfg: TrainConfig, runtime: JaxRuntime, source: Source) -> JaxFeed:
    """The run's JaxFeed over the runtime's devices; ConfigError when the batch does not split over the
    devices or exceeds the training examples."""
    check_batch(cfg.batch_size, runtime.layout)
    mix = MixConfig(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob)
    feed = JaxFeed(source, cfg.batch_size, cfg.image_size, cfg.seed, cfg.deterministic, mix,
                   image_dtype=image_dtype_of(runtime.policy), eval_image_size=getattr(cfg, "eval_image_size", None),
                   layout=runtime.layout)
    check_steps_per_epoch(cfg, feed, source.num_train)
    return feed
