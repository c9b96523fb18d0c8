"""Datasets for training: `make_source(config)` picks the reader named by --dataset.

With --data_service the Source carries a `training.data.service.DataService`, and the Feed runs
its train transform on the service's workers (eval stays local).
"""

from __future__ import annotations

from typing import Any

from keras_regnet.errors import ConfigError


def make_source(cfg: Any) -> Any:
    """The Source for cfg.dataset (digits, imagenet2012, tfrecord or folder), wired to --data_service."""
    address = getattr(cfg, "data_service", None)
    if not address:
        return with_augment(_reader(cfg), cfg)
    import dataclasses
    import os

    from training.core.service_address import check_reachable
    from training.data.service import FLAG, DataService

    check_reachable(FLAG, address)  # a dispatcher that is down: one line now, not after the model is built
    run = f"{os.path.basename(os.path.normpath(cfg.model_dir or cfg.dataset))}-seed{cfg.seed}"
    return dataclasses.replace(with_augment(_reader(cfg), cfg), data_service=DataService(address, run))


def with_augment(source: Any, cfg: Any) -> Any:
    """`source` with --augment/--random_erasing after its train map (the same Source when both are off)."""
    from training.data.policies import PolicyConfig

    policy = PolicyConfig(getattr(cfg, "augment", "none"), getattr(cfg, "augment_magnitude", None),
                          getattr(cfg, "augment_num_ops", None), getattr(cfg, "augment_magnitude_std", None),
                          getattr(cfg, "random_erasing", 0.0))
    if not policy.enabled:
        return source
    import dataclasses

    from training.data.policies import with_policy

    return dataclasses.replace(source, train_map=with_policy(source.train_map, policy))


def _reader(cfg: Any) -> Any:
    """The reader of cfg.dataset."""
    if cfg.dataset == "digits":
        from training.data import digits_stream

        return digits_stream.make_source()
    if cfg.dataset == "imagenet2012":
        from training.data import imagenet

        return imagenet.tfds_source(cfg.data_dir, cfg.train_examples, cfg.eval_examples, crop=cfg.crop,
                                    eval_crop_fraction=getattr(cfg, "eval_crop_fraction", None))
    if cfg.dataset == "tfrecord":
        from training.data import imagenet

        offset = 1 if cfg.label_offset is None else cfg.label_offset
        return imagenet.tfrecord_source(cfg.data_dir, offset, cfg.train_examples, cfg.eval_examples,
                                        crop=cfg.crop, eval_crop_fraction=getattr(cfg, "eval_crop_fraction", None))
    if cfg.dataset == "folder":
        from training.data import folder

        return folder.make_source(cfg.data_dir, getattr(cfg, "val_fraction", None), cfg.seed, crop=cfg.crop,
                                  eval_crop_fraction=getattr(cfg, "eval_crop_fraction", None))
    raise ConfigError(f"--dataset={cfg.dataset!r} is not allowed; choose digits, imagenet2012, tfrecord, folder")
