"""absl flags of `python -m training.main` (see --helpfull), generated from TrainConfig's fields."""

from __future__ import annotations

from absl import flags

from keras_regnet import dataclass_flags
from training.core import config as C

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Define one flag per TrainConfig field (safe to call twice)."""
    dataclass_flags.define_flags(C.TrainConfig, flag_values)


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> C.TrainConfig:
    """The TrainConfig described by the parsed flags (validated later by config.resolve)."""
    return dataclass_flags.from_flags(C.TrainConfig, flag_values)
