"""The parts a Trainer is handed (model, optimizer, schedule, data, checkpoint, EMA) and the BN group size.

Each engine's assembly (training.engines.<engine>.assembly) builds them and extends `Parts` with what
only it has; the loop (training.core.loop) names them without importing the code that builds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keras_regnet.errors import ConfigError

if TYPE_CHECKING:
    import keras

    from training.core.config import TrainConfig
    from training.core.recipe import WarmupCosine


@dataclass
class Parts:
    """What one training run is made of, whatever the engine; the Trainer is handed these and builds none."""

    model: keras.Model  # what the train step runs
    optimizer: keras.optimizers.Optimizer
    schedule: WarmupCosine
    feed: Any  # the engine's Feed: train(epoch, start, count), eval(), global_batch, steps_per_epoch, eval_steps
    checkpoint: Any  # the engine's checkpoint: latest, restore_or_start, save
    ema: Any  # the engine's EMA state, or None without --ema_decay
    bn_images: int  # images per BatchNorm normalization in training (reported)


def bn_images(cfg: TrainConfig, replicas: int) -> int:
    """Images per BatchNorm normalization in training; ConfigError if --bn_batch does not divide.

    The global batch with --sync_bn, --bn_batch when given (ghost BN), else each replica's batch:
    the paper's 8 GPUs x 128 normalize over 128, one GPU with the same batch over 1024. With
    --accum_steps=k each of these is a micro-batch's: a k-th of it.
    """
    accum = getattr(cfg, "accum_steps", 1)
    if accum > 1 and cfg.batch_size % (replicas * accum):
        raise ConfigError(f"--accum_steps={accum} does not divide the per-replica batch of "
                          f"{cfg.batch_size / replicas:g} (--batch_size={cfg.batch_size} over {replicas} replicas); "
                          f"use a --batch_size that is a multiple of {replicas * accum}")
    per_replica = cfg.batch_size // replicas // accum
    if cfg.sync_bn:
        return cfg.batch_size // accum
    if cfg.bn_batch is None:
        return per_replica
    if per_replica % cfg.bn_batch:
        micro = f" micro-batch of {per_replica} (over --accum_steps={accum})" if accum > 1 else f" batch of {per_replica}"
        raise ConfigError(f"--bn_batch={cfg.bn_batch} does not divide the per-replica{micro} "
                          f"(--batch_size={cfg.batch_size} over {replicas} replicas); use a divisor of "
                          f"{per_replica}, e.g. {math.gcd(per_replica, cfg.bn_batch)}")
    return cfg.bn_batch
