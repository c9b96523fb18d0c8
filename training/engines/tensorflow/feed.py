"""A run's distributed input: train batches at any (epoch, position) and the padded eval split.

The Feed is made outside the trainer (and outside evaluation) from a Source and the strategy; the
train stream is a pure function of (seed, epoch, position), so a resumed run asks for the batches
from where its checkpoint stopped and gets the same ones. With --data_service (the Source carries a
`DataService`) the train batches come from tf.data service workers instead, with the epoch
semantics of `training.data.service`; eval always runs here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from keras_regnet.errors import ConfigError
from training.core.batch_fit import check_steps_per_epoch
from training.core.config import TrainConfig
from training.data.mix import MixConfig
from training.data.pipeline import FeedSettings, Source, eval_dataset, image_dtype_of, train_dataset


@dataclass(frozen=True)
class Feed(FeedSettings):
    """Distributed iterators over `source` in global batches of `global_batch` images."""

    strategy: tf.distribute.Strategy = field(kw_only=True)

    def __post_init__(self) -> None:
        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise ConfigError(f"--batch_size={self.global_batch} is not divisible by the {replicas} "
                              f"replicas; use a multiple of {replicas}")

    def train(self, epoch: int, start: int, count: int) -> Any:
        """Iterator over `count` global batches of epoch `epoch`, from batch `start` on."""

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = ctx.get_per_replica_batch_size(self.global_batch)
            local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            if self.source.data_service is not None:
                return self.source.data_service.train_dataset(self.source, ctx, per_replica, epoch, start * local,
                                                              count * local, self.image_size, self.seed, self.mix,
                                                              self.image_dtype)
            return train_dataset(self.source, ctx, per_replica, epoch, start * local, count * local,
                                 self.image_size, self.seed, self.deterministic, self.mix, self.image_dtype)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def eval(self) -> Any:
        """Iterator over the whole eval split: `eval_steps` global batches, padding labelled apart."""
        return iter(self._eval_dataset)

    @functools.cached_property
    def _eval_dataset(self) -> Any:
        """The distributed eval pipeline, built at the first evaluation and iterated afresh by every later one."""

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = ctx.get_per_replica_batch_size(self.global_batch)
            local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return eval_dataset(self.source, ctx, per_replica, self.eval_steps * local, self.eval_size,
                                self.image_dtype)

        return self.strategy.distribute_datasets_from_function(dataset_fn)


def make_feed(cfg: TrainConfig, runtime: Any, source: Source) -> Feed:
    """The run's Feed over the runtime's strategy; ConfigError when the batch does not split over the
    replicas or exceeds the training examples."""
    mix = MixConfig(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob)
    feed = Feed(source, cfg.batch_size, cfg.image_size, cfg.seed, cfg.deterministic, mix,
                image_dtype=image_dtype_of(runtime.policy), eval_image_size=getattr(cfg, "eval_image_size", None),
                strategy=runtime.strategy)
    check_steps_per_epoch(cfg, feed, source.num_train)
    return feed
