"""The parts a Trainer is handed (model, schedule, optimizer, EMA, data, checkpoint) and the BN group size.

Kept apart from the assembly (training.engines.tensorflow.assembly) so the loop can name its parts without
importing the code that builds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keras_regnet.errors import ConfigError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from training.core.config import TrainConfig
    from training.engines.tensorflow.ema import WeightEMA
    from training.engines.tensorflow.feed import Feed
    from training.core.recipe import WarmupCosine
    from training.engines.tensorflow.checkpoint import RunCheckpoint


@dataclass
class Parts:
    """What one training run is made of; the Trainer is handed these and builds none of them."""

    model: keras.Model
    schedule: WarmupCosine
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable  # the global step: the schedule's position, the checkpoint number
    epoch: tf.Variable  # checkpointed beside the step (informational)
    ema: WeightEMA | None
    feed: Feed
    checkpoint: RunCheckpoint
    bn_images: int  # images per BatchNorm normalization in training (reported)


def bn_images(cfg: TrainConfig, replicas: int) -> int:
    """Images per BatchNorm normalization in training; ConfigError if --bn_batch does not divide.

    The global batch with --sync_bn, --bn_batch when given (ghost BN), else each replica's batch:
    the paper's 8 GPUs x 128 normalize over 128, one GPU with the same batch over 1024.
    """
    per_replica = cfg.batch_size // replicas
    if cfg.sync_bn:
        return cfg.batch_size
    if cfg.bn_batch is None:
        return per_replica
    if per_replica % cfg.bn_batch:
        raise ConfigError(f"--bn_batch={cfg.bn_batch} does not divide the per-replica batch of {per_replica} "
                          f"(--batch_size={cfg.batch_size} over {replicas} replicas); use a divisor of "
                          f"{per_replica}, e.g. {math.gcd(per_replica, cfg.bn_batch)}")
    return cfg.bn_batch
