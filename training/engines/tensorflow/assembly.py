"""Assembly: the parts a Trainer is handed (model, schedule, optimizer, EMA, data, checkpoint), from a config.

`build_parts` is the only place that turns a resolved TrainConfig into objects; the Trainer runs
the loop over what it is given, and evaluation builds just a model and a Feed (no optimizer, no
schedule, no model_dir). Everything holding variables is created under the strategy's scope and
the run's dtype policy.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

from keras_regnet.errors import ConfigError
from training.engines.tensorflow.checkpoint import RunCheckpoint, run_identity
from training.core.config import TrainConfig
from training.data.mix import MixConfig
from training.data.pipeline import Source
from training.engines.tensorflow.ema import WeightEMA, averaged_weights
from training.engines.tensorflow.feed import Feed
from training.engines.tensorflow.trainer import Trainer
from training.core.models import build_model
from training.core.recipe import WarmupCosine, make_optimizer
from training.engines.tensorflow.devices import Runtime
from training.core.parts import Parts, bn_images


@contextlib.contextmanager
def variables_scope(runtime: Runtime) -> Iterator[None]:
    """Create variables under the runtime's strategy and dtype policy (the global policy restored after)."""
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(runtime.policy)
    try:
        with runtime.strategy.scope():
            yield
    finally:
        keras.config.set_dtype_policy(previous)


def train_feed(cfg: TrainConfig, runtime: Runtime, source: Source) -> Feed:
    """The run's Feed; ConfigError when the batch does not split over replicas or exceeds the data."""
    mix = MixConfig(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob)
    feed = Feed(source, cfg.batch_size, cfg.image_size, cfg.seed, cfg.deterministic, mix, strategy=runtime.strategy)
    if feed.steps_per_epoch < 1:
        raise ConfigError(f"--batch_size={cfg.batch_size} exceeds the {source.num_train} "
                          f"training examples of --dataset={cfg.dataset}")
    return feed


def build_parts(cfg: TrainConfig, runtime: Runtime, source: Source, spec: Any, weights: Any = None,
                new_head: bool = False, log: Callable[[str], None] | None = None) -> Parts:
    """Validate the batch against the replicas and data, then build every part of the run per `cfg`."""
    feed = train_feed(cfg, runtime, source)
    images = bn_images(cfg, runtime.strategy.num_replicas_in_sync)

    def chief_log(message: str) -> None:
        if cfg.verbose and runtime.is_chief:
            print(message, flush=True)

    with variables_scope(runtime):
        model = build_model(spec, cfg.image_size, source.num_classes, weights=weights,
                            zero_init_final_gamma=cfg.zero_init_final_gamma, sync_bn=cfg.sync_bn,
                            bn_batch=cfg.bn_batch, new_head=new_head, freeze=cfg.freeze,
                            log=log or chief_log)
        warmup = int(round(cfg.warmup_epochs * feed.steps_per_epoch))
        schedule = WarmupCosine(cfg.lr, feed.steps_per_epoch * cfg.epochs, warmup, cfg.warmup_factor)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        optimizer = make_optimizer(schedule, cfg.momentum, True,
                                   loss_scale=runtime.policy == "mixed_float16", step=step)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        ema = WeightEMA(averaged_weights(model), cfg.ema_decay) if cfg.ema_decay else None
    tracked = {"ema": ema.state} if ema is not None else {}
    checkpoint = RunCheckpoint(cfg, runtime, run_identity(cfg, spec, source.num_classes), model=model,
                               optimizer=optimizer, step=step, epoch=epoch, **tracked)
    return Parts(model, schedule, optimizer, step, epoch, ema, feed, checkpoint, images)


def make_trainer(cfg: TrainConfig, runtime: Runtime, source: Source, spec: Any, weights: Any = None,
                 new_head: bool = False) -> Trainer:
    """A Trainer handed the parts build_parts makes from `cfg` (the usual way to start a run)."""
    return Trainer(cfg, runtime, build_parts(cfg, runtime, source, spec, weights, new_head))
