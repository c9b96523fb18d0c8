"""Datasets for training: `make_source(config)` picks the reader named by --dataset."""

from __future__ import annotations

from typing import Any

from keras_regnet.errors import ConfigError


def make_source(cfg: Any) -> Any:
    """The Source for cfg.dataset (digits, imagenet2012, tfrecord or folder)."""
    if cfg.dataset == "digits":
        from training.data import digits

        return digits.make_source()
    if cfg.dataset == "imagenet2012":
        from training.data import imagenet

        return imagenet.tfds_source(cfg.data_dir, cfg.train_examples, cfg.eval_examples, crop=cfg.crop)
    if cfg.dataset == "tfrecord":
        from training.data import imagenet

        offset = 1 if cfg.label_offset is None else cfg.label_offset
        return imagenet.tfrecord_source(cfg.data_dir, offset, cfg.train_examples, cfg.eval_examples,
                                        crop=cfg.crop)
    if cfg.dataset == "folder":
        from training.data import folder

        return folder.make_source(cfg.data_dir, getattr(cfg, "val_fraction", None), cfg.seed, crop=cfg.crop)
    raise ConfigError(f"--dataset={cfg.dataset!r} is not allowed; choose digits, imagenet2012, tfrecord, folder")
