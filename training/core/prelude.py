"""What every engine does between making its devices and building its parts, written once.

The batch fitted to the training split (training.core.batch_fit), Keras' seeds for initialisation,
the weights to start from (fine-tuning from --weights puts a new classifier on them) and the
chief-only log line. Imports neither TensorFlow nor JAX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.core.batch_fit import fit_to_data
from training.core.config import TrainConfig


@dataclass(frozen=True)
class RunStart:
    """A run's config after fitting its batch, the weights it starts from, and how it logs."""

    cfg: TrainConfig
    weights: Any  # None (random init), "imagenet", a file, or in-memory weights handed to run()
    new_head: bool  # fine-tuning: a fresh classifier for the dataset's classes
    log: Callable[[str], None]


def chief_log(cfg: TrainConfig, is_chief: bool) -> Callable[[str], None]:
    """print(message) on the chief when --verbose, nothing elsewhere."""

    def log(message: str) -> None:
        if cfg.verbose and is_chief:
            print(message, flush=True)

    return log


def begin_run(cfg: TrainConfig, num_train: int, devices: int, is_chief: bool, weights: Any = None,
              lr_follows_batch: bool = False) -> RunStart:
    """Fit the batch to `num_train` examples over `devices`, seed Keras with --seed, pick the weights.

    `weights` handed to run() (a sweep's in-memory weights) are loaded as they are; otherwise --weights
    starts a fine-tuning run with a new head.
    """
    import keras

    log = chief_log(cfg, is_chief)
    cfg, fitted = fit_to_data(cfg, num_train, devices, lr_follows_batch)
    if fitted:
        log(fitted)
    keras.utils.set_random_seed(cfg.seed)  # initialisation; the data seeds derive from cfg.seed too
    finetuning = weights is None and cfg.weights is not None
    return RunStart(cfg, cfg.weights if finetuning else weights, finetuning, log)
