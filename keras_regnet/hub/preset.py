"""keras-hub presets: `save_preset` writes one from a keras_regnet model, with keras-hub's own files
(config.json, model.weights.h5, metadata.json, task.json, preprocessor.json, image_converter.json)."""

from __future__ import annotations

from typing import Any

from keras_regnet.hub.backbone import RegNetBackbone
from keras_regnet.hub.task import RegNetImageClassifier, RegNetImageClassifierPreprocessor, RegNetImageConverter
from keras_regnet.spec import NetSpec
from keras_regnet.layer_records import CLASSIFIER
from keras_regnet.presets import EvalSettings
from keras_regnet.pretrained.tags import eval_settings


def save_preset(model: Any, directory: str, spec: Any = None, settings: EvalSettings | None = None,
                image_size: int | None = None) -> Any:
    """Write `model` (a keras_regnet model) as a keras-hub preset into `directory`; return the task
    (a RegNetImageClassifier) or, for a model without a classifier, the backbone.

    `spec`: the model's NetSpec or any name `resolve_model` takes (default: the model's name);
    `settings`: its eval settings (default: the zoo weights', else pycls's); `image_size`: the
    converter's output size (default: the settings' input size).
    """
    from keras_regnet.pretrained.assign import copy_weights_by_name
    from keras_regnet.resolve import resolve_model

    spec = spec if isinstance(spec, NetSpec) else resolve_model(spec or model.name, label="spec")[0]
    settings = settings or eval_settings(spec.name)
    backbone = RegNetBackbone(spec)
    copy_weights_by_name(model, backbone, source=f"model {model.name!r}")
    preprocessor = RegNetImageClassifierPreprocessor(RegNetImageConverter.for_settings(settings, image_size))
    names = {layer.name for layer in model.layers}
    if CLASSIFIER not in names:
        backbone.save_to_preset(directory)
        preprocessor.save_to_preset(directory)
        return backbone
    head = model.get_layer(CLASSIFIER)
    task = RegNetImageClassifier(backbone=backbone, num_classes=int(head.units), preprocessor=preprocessor)
    task.get_layer(CLASSIFIER).set_weights(head.get_weights())
    task.save_to_preset(directory)
    return task
