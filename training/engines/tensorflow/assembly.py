"""The TensorFlow engine's assembly: the parts its trainer is handed (model, schedule, optimizer, EMA, data,
checkpoint), from a config.

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

from training.core.config import TrainConfig, model_input_size
from training.core.models import build_model
from training.core.parts import bn_images
from training.core.prelude import chief_log
from training.core.recipe import WarmupCosine, make_optimizer, optimizer_options
from training.core.run_identity import run_identity
from training.data.pipeline import Source
from training.engines.tensorflow.checkpoint import RunCheckpoint
from training.engines.tensorflow.devices import TensorFlowRuntime
from training.engines.tensorflow.ema import WeightEMA, averaged_weights
from training.engines.tensorflow.feed import Feed, make_feed
from training.engines.tensorflow.loss_scale import ReplicaAgreedLossScaleOptimizer
from training.engines.tensorflow.trainer import TensorFlowParts, TensorFlowTrainer


@contextlib.contextmanager
def variables_scope(runtime: TensorFlowRuntime) -> Iterator[None]:
    """Create variables under the runtime's strategy and dtype policy (the global policy restored after)."""
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(runtime.policy)
    try:
        with runtime.strategy.scope():
            yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_parts(cfg: TrainConfig, runtime: TensorFlowRuntime, feed: Feed, spec: Any, weights: Any = None,
                new_head: bool = False, log: Callable[[str], None] | None = None) -> TensorFlowParts:
    """Every part of a run per `cfg` around its `feed` (training.engines.tensorflow.feed.make_feed)."""
    source = feed.source
    images = bn_images(cfg, runtime.strategy.num_replicas_in_sync)

    with variables_scope(runtime):
        model = build_model(spec, model_input_size(cfg), source.num_classes, weights=weights,
                            zero_init_final_gamma=cfg.zero_init_final_gamma, sync_bn=cfg.sync_bn,
                            bn_batch=cfg.bn_batch, new_head=new_head, freeze=cfg.freeze,
                            log=log or chief_log(cfg, runtime.is_chief), drop_path_rate=cfg.drop_path_rate)
        warmup = int(round(cfg.warmup_epochs * feed.steps_per_epoch))
        schedule = WarmupCosine(cfg.lr, feed.steps_per_epoch * cfg.epochs, warmup, cfg.warmup_factor)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        optimizer = make_optimizer(schedule, cfg.momentum, True, step=step, **optimizer_options(cfg, model))
        if runtime.policy == "mixed_float16":  # dynamic loss scaling, its skip decision agreed by all replicas
            optimizer = ReplicaAgreedLossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        ema = WeightEMA(averaged_weights(model), cfg.ema_decay) if cfg.ema_decay else None
    tracked = {"ema": ema.state} if ema is not None else {}
    checkpoint = RunCheckpoint(cfg, runtime, run_identity(cfg, spec, source.num_classes), model=model,
                               optimizer=optimizer, step=step, epoch=epoch, **tracked)
    return TensorFlowParts(model=model, optimizer=optimizer, schedule=schedule, feed=feed, checkpoint=checkpoint,
                           ema=ema, bn_images=images, step=step, epoch=epoch)


def make_trainer(cfg: TrainConfig, runtime: TensorFlowRuntime, source: Source, spec: Any, weights: Any = None,
                 new_head: bool = False) -> TensorFlowTrainer:
    """A TensorFlowTrainer handed the parts build_parts makes from `cfg`."""
    return TensorFlowTrainer(cfg, runtime, build_parts(cfg, runtime, make_feed(cfg, runtime, source), spec,
                                                       weights, new_head))
