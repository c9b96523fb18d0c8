"""Assembly for the JAX engine: a resolved TrainConfig -> devices, feed, models, optimizer, checkpoint.

The counterpart of training.engines.tensorflow.assembly.build_parts; the same recipe objects (WarmupCosine, the Nesterov
SGD of make_optimizer, the model builder) are made here and handed to JaxTrainer. BatchNorm
statistics are per device by default, as the TensorFlow engine's per-replica BN: the step's model
then normalises each device's share of the batch on its own (ghost BN with one group per device),
while model.keras is built as the TensorFlow engine builds it.
"""

from __future__ import annotations

from typing import Any

from keras_regnet.errors import ConfigError
from training.core.batch_fit import fit_to_data
from training.engines.tensorflow.checkpoint import run_identity
from training.core.config import TrainConfig
from training.data.mix import MixConfig
from training.data.pipeline import Source
from training.engines.jax.checkpoint import StateCheckpoint
from training.engines.jax.devices import DeviceLayout, check_batch
from training.engines.jax.feed import JaxFeed
from training.engines.jax.precision import dtype_policy
from training.engines.jax.step import ema_slots
from training.engines.jax.trainer import JaxParts, JaxRuntime, JaxTrainer
from training.core.models import build_model
from training.core.parts import bn_images
from training.core.recipe import WarmupCosine, make_optimizer


def step_bn_batch(cfg: TrainConfig, devices: int) -> int | None:
    """Images per BN group in the step's model: --bn_batch, else each device's share (several devices,
    no --sync_bn), else None (one group: the whole batch)."""
    if cfg.bn_batch is not None:
        return cfg.bn_batch
    if devices > 1 and not cfg.sync_bn:
        return cfg.batch_size // devices
    return None


def build_jax_parts(cfg: TrainConfig, runtime: JaxRuntime, source: Source, spec: Any, weights: Any = None,
                    new_head: bool = False) -> JaxParts:
    """Check the batch against the devices and data, then build every part of a JAX run per `cfg`."""
    layout = runtime.layout
    check_batch(cfg.batch_size, layout)
    mix = MixConfig(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob)
    feed = JaxFeed(source, cfg.batch_size, cfg.image_size, cfg.seed, cfg.deterministic, mix, layout=layout)
    if feed.steps_per_epoch < 1:
        raise ConfigError(f"--batch_size={cfg.batch_size} exceeds the {source.num_train} "
                          f"training examples of --dataset={cfg.dataset}")
    images = bn_images(cfg, layout.devices)

    def log(message: str) -> None:
        if cfg.verbose and layout.is_chief:
            print(message, flush=True)

    with dtype_policy(runtime.policy):
        # Built as the TensorFlow engine builds it (what model.keras holds; weight files load into it). No
        # sync flag: on JAX the step's arrays span every device, so whole-batch BN is synchronised BN ...
        export_model = build_model(spec, cfg.image_size, source.num_classes, weights=weights, new_head=new_head,
                                   zero_init_final_gamma=cfg.zero_init_final_gamma,
                                   bn_batch=cfg.bn_batch, freeze=cfg.freeze, log=log)
        model, groups = export_model, step_bn_batch(cfg, layout.devices)
        if groups != cfg.bn_batch:  # ... and with one BN group per device to train
            model = build_model(spec, cfg.image_size, source.num_classes, bn_batch=groups,
                                freeze=cfg.freeze, log=lambda _: None)
            model.set_weights(export_model.get_weights())
        warmup = round(cfg.warmup_epochs * feed.steps_per_epoch)
        schedule = WarmupCosine(cfg.lr, feed.steps_per_epoch * cfg.epochs, warmup, cfg.warmup_factor)
        optimizer = make_optimizer(schedule, cfg.momentum, True)
        optimizer.build(model.trainable_variables)
    checkpoint = StateCheckpoint(cfg, run_identity(cfg, spec, source.num_classes), layout.is_chief)
    return JaxParts(model, export_model, optimizer, schedule, feed, checkpoint,
                    ema_slots(model) if cfg.ema_decay else None, images)


def start_jax(cfg: TrainConfig, spec: Any, weights: Any = None,
              lr_follows_batch: bool = False) -> tuple[JaxTrainer, Source]:
    """Processes, devices, input and parts of a JAX run; the trainer (its cfg holding the batch fitted to
    the data, training.core.batch_fit) and its data source."""
    from training.engines.jax.feed import hide_accelerators_from_tensorflow

    hide_accelerators_from_tensorflow()
    from training.data import make_source
    from training.engines.jax.devices import initialize_processes, make_layout
    from training.engines.jax.precision import resolve_policy

    initialize_processes(cfg.coordinator_address, cfg.num_processes, cfg.process_id)
    layout: DeviceLayout = make_layout(cfg.strategy)
    runtime = JaxRuntime(layout, resolve_policy(cfg.mixed_precision, layout))
    source = make_source(cfg)
    cfg, fitted = fit_to_data(cfg, source.num_train, layout.devices, lr_follows_batch)
    if fitted and cfg.verbose and layout.is_chief:
        print(fitted, flush=True)
    import keras

    keras.utils.set_random_seed(cfg.seed)
    finetuning = weights is None and cfg.weights is not None
    parts = build_jax_parts(cfg, runtime, source, spec, weights=cfg.weights if finetuning else weights,
                            new_head=finetuning)
    return JaxTrainer(cfg, runtime, parts), source
