"""The JAX engine's assembly: the parts its trainer is handed (models, optimizer, schedule, checkpoint, EMA
slots), from a config and the run's feed.

The counterpart of training.engines.tensorflow.assembly.build_parts; the same recipe objects (WarmupCosine,
the Nesterov SGD of make_optimizer, the model builder) are made here. BatchNorm statistics are per device
by default, as the TensorFlow engine's per-replica BN: the step's model then normalises each device's
share of the batch on its own (ghost BN with one group per device), while model.keras is built as the
TensorFlow engine builds it. Imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.core.config import TrainConfig, model_input_size
from training.core.models import build_model
from training.core.parts import bn_images
from training.core.prelude import chief_log
from training.core.recipe import WarmupCosine, make_optimizer, optimizer_options
from training.core.run_identity import run_identity
from training.engines.jax.checkpoint import StateCheckpoint
from training.engines.jax.devices import JaxRuntime
from training.engines.jax.precision import dtype_policy
from training.engines.jax.step import ema_slots
from training.engines.jax.trainer import JaxParts, JaxTrainer


def step_bn_batch(cfg: TrainConfig, devices: int) -> int | None:
    """Images per BN group in the step's model: --bn_batch, else each device's share (several devices,
    no --sync_bn), else None (one group: the whole batch)."""
    if cfg.bn_batch is not None:
        return cfg.bn_batch
    if devices > 1 and not cfg.sync_bn:
        return cfg.batch_size // devices // cfg.accum_steps  # a device's share of one micro-batch
    return None


def build_parts(cfg: TrainConfig, runtime: JaxRuntime, feed: Any, spec: Any, weights: Any = None,
                new_head: bool = False, log: Callable[[str], None] | None = None) -> JaxParts:
    """Every part of a JAX run per `cfg` around its `feed` (training.engines.jax.feed.make_feed, or any
    object with the same train/eval/global_batch/steps_per_epoch/eval_steps/source)."""
    layout, classes = runtime.layout, feed.source.num_classes
    images = bn_images(cfg, layout.devices)
    log = log or chief_log(cfg, layout.is_chief)
    with dtype_policy(runtime.policy):
        # Built as the TensorFlow engine builds it (what model.keras holds; weight files load into it). No
        # sync flag: on JAX the step's arrays span every device, so whole-batch BN is synchronised BN ...
        export_model = build_model(spec, model_input_size(cfg), classes, weights=weights, new_head=new_head,
                                   zero_init_final_gamma=cfg.zero_init_final_gamma,
                                   bn_batch=cfg.bn_batch, freeze=cfg.freeze, log=log,
                                   drop_path_rate=cfg.drop_path_rate)
        model, groups = export_model, step_bn_batch(cfg, layout.devices)
        if groups != cfg.bn_batch:  # ... and with one BN group per device to train
            model = build_model(spec, model_input_size(cfg), classes, bn_batch=groups, freeze=cfg.freeze, log=lambda _: None,
                                drop_path_rate=cfg.drop_path_rate)
            model.set_weights(export_model.get_weights())
        warmup = round(cfg.warmup_epochs * feed.steps_per_epoch)
        schedule = WarmupCosine(cfg.lr, feed.steps_per_epoch * cfg.epochs, warmup, cfg.warmup_factor)
        optimizer = make_optimizer(schedule, cfg.momentum, True, **optimizer_options(cfg, model))
        optimizer.build(model.trainable_variables)
    checkpoint = StateCheckpoint(cfg, run_identity(cfg, spec, classes), layout.is_chief)
    return JaxParts(model=model, optimizer=optimizer, schedule=schedule, feed=feed, checkpoint=checkpoint,
                    ema=ema_slots(model) if cfg.ema_decay else None, bn_images=images, export_model=export_model)


def make_trainer(cfg: TrainConfig, runtime: JaxRuntime, feed: Any, spec: Any, weights: Any = None,
                 new_head: bool = False) -> JaxTrainer:
    """A JaxTrainer handed the parts build_parts makes from `cfg` and `feed`."""
    return JaxTrainer(cfg, runtime, build_parts(cfg, runtime, feed, spec, weights, new_head))
