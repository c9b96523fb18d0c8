"""The global batch a run trains with when the configured one exceeds its training split (small
folders of photos): reduced to fit, keeping the replica-divisibility rule. Engine-free and
TensorFlow-free, so every engine calls the same rule."""

from __future__ import annotations

from typing import Any

from keras_regnet.errors import ConfigError


def fit_batch(batch: int, num_train: int, replicas: int) -> int:
    """`batch`, or when it exceeds the `num_train` training examples the largest multiple of
    `replicas` that fits (one step per epoch); ConfigError when fewer examples than replicas."""
    if batch <= num_train:
        return batch
    fitted = num_train // replicas * replicas
    if fitted < 1:
        raise ConfigError(f"--batch_size={batch}: the training split has {num_train} examples, fewer than "
                          f"the {replicas} replicas; add training data or use fewer devices")
    return fitted


def default_lr(batch: int, finetuning: bool) -> float:
    """The LR a run gets when --lr is unset: the fine-tuning recipe's, else the paper's 0.1 x batch / 128."""
    if finetuning:
        from training.core.finetune import finetune_lr

        return finetune_lr(batch)
    from training.core.recipe import recipe_lr

    return recipe_lr(batch)


def fit_to_data(cfg: Any, num_train: int, replicas: int, lr_follows_batch: bool) -> tuple[Any, str | None]:
    """A resolved TrainConfig with its batch fitted to the training split (and its LR recomputed when
    --lr was unset), plus the line to log once, or None when nothing changed."""
    batch = fit_batch(cfg.batch_size, num_train, replicas)
    if batch == cfg.batch_size:
        return cfg, None
    lr = default_lr(batch, cfg.weights is not None) if lr_follows_batch else cfg.lr
    lr_note = f", lr {lr:g}" + (f" (was {cfg.lr:g})" if lr != cfg.lr else " (unchanged)")
    message = (f"--batch_size={cfg.batch_size} exceeds the {num_train} training examples of "
               f"--dataset={cfg.dataset}: training with batch {batch} (one step per epoch){lr_note}")
    return cfg.replace(batch_size=batch, lr=lr), message


def check_steps_per_epoch(cfg: Any, feed: Any, num_train: int) -> None:
    """ConfigError naming --batch_size when a Feed of `cfg` has no whole training step per epoch."""
    if feed.steps_per_epoch < 1:
        raise ConfigError(f"--batch_size={cfg.batch_size} exceeds the {num_train} "
                          f"training examples of --dataset={cfg.dataset}")
