"""Backbone features the keras-hub way: `pyramid_outputs` {"P1": ..., "P5": ...} and a feature model.

Level = log2 of the feature map's stride, as keras-hub backbones name them (their detection and
segmentation heads read `pyramid_outputs`): for the zoo models P1 is the stem (stride 2) and
P2..P5 the outputs of the four stages (strides 4, 8, 16, 32). The maps are found by layer name
(`stem_relu`, `s{s}_b{last}_relu`) and the strides from the layers' configs, so a model loaded from
a `.keras` file works the same as a freshly built one. When two maps share a stride (a stage of
stride 1) the deeper one names the level.
"""

from __future__ import annotations

import math
from typing import Any

import keras

STEM_OUTPUT = "stem_relu"


def pyramid_outputs(model: keras.Model) -> dict[str, Any]:
    """{"P<level>": Keras tensor} of the stem and every stage output of a RegNet/AnyNet model."""
    names = {layer.name for layer in model.layers}
    if STEM_OUTPUT not in names or "stem_conv" not in names:
        raise ValueError(f"model {model.name!r} is not a keras_regnet model (no {STEM_OUTPUT!r} layer)")
    stride = _stride(model.get_layer("stem_conv"))
    levels = {_level(stride, model.name): model.get_layer(STEM_OUTPUT).output}
    stage = 1
    while f"s{stage}_b1_relu" in names:
        stride *= max(_stride(layer) for layer in model.layers if layer.name.startswith(f"s{stage}_b1_"))
        depth = 1
        while f"s{stage}_b{depth + 1}_relu" in names:
            depth += 1
        levels[_level(stride, model.name)] = model.get_layer(f"s{stage}_b{depth}_relu").output
        stage += 1
    return {f"P{level}": tensor for level, tensor in sorted(levels.items())}


def feature_extractor(model: keras.Model, name: str | None = None) -> keras.Model:
    """A keras.Model from `model`'s inputs to its pyramid_outputs dict (weights shared with `model`)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"feature_extractor needs a keras.Model; got {type(model).__name__}")
    outputs = pyramid_outputs(model)
    extractor = keras.Model(model.inputs, outputs, name=name or f"{model.name}_features")
    extractor.pyramid_outputs = outputs
    return extractor


def _stride(layer: Any) -> int:
    strides = getattr(layer, "strides", None)
    return int(strides[0]) if strides else 1


def _level(stride: int, model_name: str) -> int:
    level = math.log2(stride)
    if level != int(level):
        raise ValueError(f"model {model_name!r} has a feature map of stride {stride}, not a power of 2")
    return int(level)
