"""keras-hub presets: `save_preset` writes one from a keras_regnet model; `load_timm_preset` reads timm's
Hub checkpoints (`hf://timm/regnety_006.pycls_in1k`) through the existing safetensors converter.

A loader handed the class (keras-hub's `Backbone.from_preset`): the arrays are converted to names of
our layers once and assigned to the model built from the preset's spec.
"""

from __future__ import annotations

import os
from typing import Any

from keras_regnet.errors import ConfigError, WeightsError
from keras_regnet.hub.backbone import RegNetBackbone
from keras_regnet.hub.task import RegNetImageClassifier, RegNetImageClassifierPreprocessor, RegNetImageConverter
from keras_regnet.spec import NetSpec
from keras_regnet.weight_tags import DEFAULT, EVAL_SETTINGS, EvalSettings, eval_settings

HEAD = "predictions"
TIMM_FILE = "model.safetensors"


def save_preset(model: Any, directory: str, spec: Any = None, settings: EvalSettings | None = None,
                image_size: int | None = None) -> Any:
    """Write `model` (a keras_regnet model) as a keras-hub preset into `directory`; return the task
    (a RegNetImageClassifier) or, for a model without a classifier, the backbone.

    `spec`: the model's NetSpec or any name `resolve_model` takes (default: the model's name);
    `settings`: its eval settings (default: the zoo weights', else pycls's); `image_size`: the
    converter's output size (default: the settings' input size).
    """
    from keras_regnet.assign import copy_weights_by_name
    from keras_regnet.resolve import resolve_model

    spec = spec if isinstance(spec, NetSpec) else resolve_model(spec or model.name, label="spec")[0]
    settings = settings or eval_settings(spec.name)
    backbone = RegNetBackbone(spec)
    copy_weights_by_name(model, backbone, source=f"model {model.name!r}")
    preprocessor = RegNetImageClassifierPreprocessor(RegNetImageConverter.for_settings(settings, image_size))
    names = {layer.name for layer in model.layers}
    if HEAD not in names:
        backbone.save_to_preset(directory)
        preprocessor.save_to_preset(directory)
        return backbone
    head = model.get_layer(HEAD)
    task = RegNetImageClassifier(backbone=backbone, num_classes=int(head.units), preprocessor=preprocessor)
    task.get_layer(HEAD).set_weights(head.get_weights())
    task.save_to_preset(directory)
    return task


def is_timm_preset(preset: str) -> bool:
    """Whether `preset`'s config.json is timm's (an `architecture` key), which keras-hub cannot load for RegNet."""
    from keras_hub.src.utils.preset_utils import load_json

    try:
        return "architecture" in load_json(preset, "config.json")
    except (OSError, ValueError):
        return False


def load_timm_preset(preset: str, classifier: bool = True, load_weights: bool = True) -> Any:
    """RegNetImageClassifier (or RegNetBackbone) from a timm Hub repository or a local copy of one
    (config.json + model.safetensors), e.g. "hf://timm/regnety_006.pycls_in1k"."""
    from keras_hub.src.utils.preset_utils import get_file, load_json

    from keras_regnet.assign import assign_by_name
    from keras_regnet.checkpoints import read_state_dict
    from keras_regnet.state_dict import convert_state_dict
    from keras_regnet.zoo import get_entry

    config = load_json(preset, "config.json")
    architecture = str(config.get("architecture", ""))
    try:
        spec = get_entry(architecture).spec()
    except ValueError as err:
        raise ConfigError(f"preset {preset!r}: timm architecture {architecture!r} is not a zoo RegNet "
                          "(regnetx_002 ... regnety_320)") from err
    settings = timm_settings(architecture, config.get("pretrained_cfg") or {})
    backbone = RegNetBackbone(spec)
    arrays = None
    if load_weights:
        path = get_file(preset, TIMM_FILE)
        try:
            arrays = convert_state_dict(read_state_dict(path), spec, naming="timm", bgr_to_rgb=False, source=path)
        except ValueError as err:
            raise WeightsError(f"preset {preset!r}: {os.path.basename(path)} does not hold {architecture}: {err}") from err
        assign_by_name(backbone, arrays, path)
    if not classifier:
        return backbone
    preprocessor = RegNetImageClassifierPreprocessor(RegNetImageConverter.for_settings(settings))
    task = RegNetImageClassifier(backbone=backbone, num_classes=int(config.get("num_classes", 1000)),
                                 preprocessor=preprocessor)
    if arrays is not None:
        task.get_layer(HEAD).set_weights(arrays[HEAD])
    return task


def timm_settings(architecture: str, pretrained_cfg: dict) -> EvalSettings:
    """Our table's settings for a tag we hold; otherwise the checkpoint's timm pretrained_cfg."""
    tag = pretrained_cfg.get("tag")
    ours = EVAL_SETTINGS.get(f"{architecture}.{tag}")
    if ours is not None or "input_size" not in pretrained_cfg:
        return ours or DEFAULT
    interpolation = pretrained_cfg.get("interpolation", "bilinear")
    return EvalSettings(tag=str(tag), input_size=int(pretrained_cfg["input_size"][-1]),
                        crop_fraction=float(pretrained_cfg.get("crop_pct", DEFAULT.crop_fraction)),
                        interpolation=interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear",
                        mean=tuple(pretrained_cfg.get("mean", DEFAULT.mean)),
                        std=tuple(pretrained_cfg.get("std", DEFAULT.std)), source="timm")
