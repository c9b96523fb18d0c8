"""timm's RegNet checkpoints on the Hugging Face Hub (`hf://timm/regnety_006.pycls_in1k`) as keras-hub
models, through the existing safetensors converter.

A loader handed the class (as keras-hub's `Backbone.from_preset`): the state dict is converted to
arrays keyed by our layer names and assigned to the model `cls` builds from the zoo spec; the image
converter gets our table's eval settings for tags we hold, else the checkpoint's `pretrained_cfg`.
"""

from __future__ import annotations

import os
from typing import Any

from keras_regnet.errors import ConfigError, WeightsError
from keras_regnet.resolve import resolve_model
from keras_regnet.spec import NetSpec
from keras_regnet.layer_records import CLASSIFIER
from keras_regnet.presets import DEFAULT, INTERPOLATIONS, PRESETS, EvalSettings

TIMM_FILE = "model.safetensors"


def is_timm_preset(preset: str) -> bool:
    """Whether `preset`'s config.json is timm's (an `architecture` key), which keras-hub cannot load for RegNet."""
    from keras_hub.src.utils.preset_utils import load_json

    try:
        return "architecture" in load_json(preset, "config.json")
    except (OSError, ValueError):
        return False


def load_timm_preset(preset: str, cls: Any, load_weights: bool = True) -> Any:
    """A `cls` (RegNetImageClassifier, or a backbone class: one with no `backbone_cls`) from a timm Hub
    repository or a local copy of one (config.json + model.safetensors), e.g.
    "hf://timm/regnety_006.pycls_in1k"."""
    from keras_hub.src.utils.preset_utils import get_file, load_json

    from keras_regnet.pretrained.assign import assign_by_name
    from keras_regnet.pretrained.state_dict import read_state_dict
    from keras_regnet.pretrained.to_keras import convert_state_dict

    config = load_json(preset, "config.json")
    architecture = str(config.get("architecture", ""))
    spec = zoo_spec(preset, architecture)
    settings = timm_settings(architecture, config.get("pretrained_cfg") or {})
    backbone_cls = getattr(cls, "backbone_cls", None) or cls
    backbone = backbone_cls(spec)
    arrays = None
    if load_weights:
        path = get_file(preset, TIMM_FILE)
        try:
            arrays = convert_state_dict(read_state_dict(path), spec, naming="timm", bgr_to_rgb=False, source=path)
        except ValueError as err:
            raise WeightsError(f"preset {preset!r}: {os.path.basename(path)} does not hold {architecture}: {err}") from err
        assign_by_name(backbone, arrays, path)
    if backbone_cls is cls:
        return backbone
    preprocessor_cls = cls.preprocessor_cls
    preprocessor = preprocessor_cls(preprocessor_cls.image_converter_cls.for_settings(settings))
    task = cls(backbone=backbone, num_classes=int(config.get("num_classes", 1000)),
                                 preprocessor=preprocessor)
    if arrays is not None:
        task.get_layer(CLASSIFIER).set_weights(arrays[CLASSIFIER])
    return task


def zoo_spec(preset: str, architecture: str) -> NetSpec:
    """The NetSpec of timm's `architecture` through keras_regnet's resolver; only zoo RegNets have timm checkpoints."""
    message = (f"preset {preset!r}: timm architecture {architecture!r} is not a zoo RegNet "
               "(regnetx_002 ... regnety_320)")
    try:
        spec, entry = resolve_model(architecture, label="architecture")
    except ConfigError as err:
        raise ConfigError(message) from err
    if entry is None:
        raise ConfigError(message)
    return spec


def timm_settings(architecture: str, pretrained_cfg: dict) -> EvalSettings:
    """Our presets table's settings for a weight we hold; otherwise the checkpoint's timm pretrained_cfg."""
    tag = pretrained_cfg.get("tag")
    row = PRESETS.get(f"{architecture}.{tag}")
    ours = row.settings if row is not None else None
    if ours is not None or "input_size" not in pretrained_cfg:
        return ours or DEFAULT
    interpolation = pretrained_cfg.get("interpolation", "bilinear")
    return EvalSettings(tag=str(tag), input_size=int(pretrained_cfg["input_size"][-1]),
                        crop_fraction=float(pretrained_cfg.get("crop_pct", DEFAULT.crop_fraction)),
                        interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
                        mean=tuple(pretrained_cfg.get("mean", DEFAULT.mean)),
                        std=tuple(pretrained_cfg.get("std", DEFAULT.std)), source="timm")
