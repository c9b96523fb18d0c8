"""A run's identity: what config.json records, and whether a model_dir may resume (both engines).

model_dir/config.json records what must not change on resumption (the RESUME_KEYS flags, the NetSpec
and the class count); each engine's checkpoint asks `admit_resume` before restoring. config.json stays
flat (one key per flag), so run directories written by earlier versions keep resuming and evaluating.
"""

from __future__ import annotations

import json
from typing import Any

from keras_regnet import fileio
from keras_regnet.errors import ConfigError
from training.core.config import TrainConfig

# Fields that must not change between a run and its resumption (the schedule, the objective or the
# data stream depend on them).
RESUME_KEYS = ("model", "dataset", "epochs", "batch_size", "image_size", "lr", "seed", "warmup_epochs",
               "warmup_factor", "weight_decay", "momentum", "label_smoothing",
               "ema_decay", "mixup_alpha", "cutmix_alpha", "mixup_switch_prob", "crop", "bn_batch",
               "weights", "freeze", "val_fraction", "optimizer", "adam_beta1", "adam_beta2",
               "decay_norm_and_bias", "drop_path_rate", "accum_steps", "augment", "augment_magnitude",
               "augment_num_ops", "augment_magnitude_std", "random_erasing")


def run_identity(cfg: TrainConfig, spec: Any, num_classes: int) -> dict[str, Any]:
    """What config.json records of a run: the RESUME_KEYS values, the NetSpec and the class count."""
    data = {k: getattr(cfg, k) for k in RESUME_KEYS}
    data["spec"] = spec.to_dict()
    data["num_classes"] = num_classes
    # The eval transform (not a resume key: changing it on resume only changes how the run is scored);
    # `python -m training.evaluate --weights=<model_dir>` defaults to it.
    data["eval_image_size"] = cfg.eval_image_size or cfg.image_size
    data["eval_crop_fraction"] = cfg.eval_crop_fraction
    return data


def admit_resume(cfg: TrainConfig, identity: dict[str, Any], latest: str | None, is_chief: bool) -> bool:
    """True when `latest` (a checkpoint of this model_dir, or None) may be resumed: --resume is on and
    config.json describes the same run (ConfigError naming the flag otherwise). Without a checkpoint
    the chief records the run's config.json and this returns False. Both engines decide this way."""
    config_path = fileio.join(cfg.model_dir, "config.json")
    if latest and not cfg.resume:
        raise ConfigError(f"--model_dir={cfg.model_dir!r} already holds checkpoints and --noresume "
                          f"was given; pass --resume to continue it or choose a fresh --model_dir")
    if latest:
        if fileio.exists(config_path):
            check_same_run(fileio.read_json(config_path), identity, cfg)
        return True
    if is_chief:
        fileio.write_json_atomic(config_path, identity)
    return False


def check_same_run(saved: dict[str, Any], current: dict[str, Any], cfg: TrainConfig) -> None:
    """ConfigError naming the flag when `current` (a run config) cannot resume the `saved` one.

    The network is compared by its NetSpec when config.json holds one, so an alias of the same
    zoo model resumes while an edited JSON spec file (same --model path) is refused; the class
    count is compared so a --data_dir with added or removed class folders is refused too.
    """
    where = f"the run being resumed in --model_dir={cfg.model_dir!r}"
    fresh = "use the same value or a fresh --model_dir"
    current = json.loads(json.dumps(current))  # tuples -> lists, as read back from config.json
    if "spec" in saved:
        if saved["spec"] != current["spec"]:
            raise ConfigError(f"--model={cfg.model!r} builds a different network than {where} "
                              f"(saved NetSpec {saved['spec'].get('name')!r} in config.json); {fresh}")
    elif "model" in saved and saved["model"] != current["model"]:
        raise ConfigError(f"--model={cfg.model!r} differs from {where} ({saved['model']!r}); {fresh}")
    if "num_classes" in saved and saved["num_classes"] != current["num_classes"]:
        raise ConfigError(f"--data_dir={cfg.data_dir!r} has {current['num_classes']} classes but {where} "
                          f"has {saved['num_classes']}; {fresh}")
    for key in RESUME_KEYS:
        if key != "model" and key in saved and saved[key] != current[key]:
            raise ConfigError(f"--{key}={current[key]!r} differs from {where} ({saved[key]!r}); {fresh}")
