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

from keras_regnet.errors import ConfigError

STEM_OUTPUT = "stem_relu"


def pyramid_outputs(model: keras.Model) -> dict[str, Any]:
    """The stem's and every stage's output of a keras_regnet model, keyed "P<log2 of the stride>".

    `build` sets the result as `model.pyramid_outputs`; call this for a model loaded from a file.
    The maps are found by layer name (`stem_relu`, `s{s}_b{last}_relu`) and their strides from the
    layers' configs. When two maps share a stride (a stage of stride 1), the deeper one is kept.

    Args:
        model: a model built by keras_regnet (`build`, a zoo builder, `RegNet`, `AnyNet`) or
            loaded from its `.keras` file, with or without its classifier.

    Returns:
        A dict {"P1": tensor, ..., "P5": tensor} of symbolic Keras tensors of `model`'s graph, in
        level order (P0 for a stride-1 stem); e.g. P2..P5 are the four stages of a zoo model.

    Raises:
        ValueError: if `model` has no `stem_relu` / `stem_conv` layers, or a map's stride is not a
            power of 2.

    Example:

    >>> import keras, keras_regnet
    >>> model = keras_regnet.RegNetX200MF(include_top=False, input_shape=(224, 224, 3))
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "backbone.keras")
    >>> model.save(path)
    >>> loaded = keras.saving.load_model(path)
    >>> {level: tuple(t.shape) for level, t in keras_regnet.pyramid_outputs(loaded).items()}
    {'P1': (None, 112, 112, 32), 'P2': (None, 56, 56, 24), 'P3': (None, 28, 28, 56), \
'P4': (None, 14, 14, 152), 'P5': (None, 7, 7, 368)}
    """
    names = {layer.name for layer in model.layers}
    if STEM_OUTPUT not in names or "stem_conv" not in names:
        raise ConfigError(f"model {model.name!r} is not a keras_regnet model (no {STEM_OUTPUT!r} layer)")
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
    """A feature model: `model`'s inputs to the dict of its pyramid outputs, sharing its weights.

    The backbone of a detection or segmentation model: heads written for keras-hub backbones read
    the same {"P1": ..., "P5": ...} dict. Training the extractor trains `model`'s layers.

    Args:
        model: a keras_regnet model (see `pyramid_outputs`); its classifier, if any, is unused.
        name: name of the new model; defaults to "<model name>_features".

    Returns:
        A `keras.Model` returning {"P<level>": feature map}, with the same dict of symbolic
        tensors as its `pyramid_outputs` attribute.

    Raises:
        ValueError: if `model` is not a `keras.Model` built by keras_regnet.

    Example:

    >>> import numpy as np, keras_regnet
    >>> backbone = keras_regnet.RegNetY200MF(include_top=False, input_shape=(64, 64, 3))
    >>> features = keras_regnet.feature_extractor(backbone)
    >>> maps = features(np.zeros((2, 64, 64, 3), "float32"))
    >>> {level: tuple(m.shape) for level, m in maps.items()}
    {'P1': (2, 32, 32, 32), 'P2': (2, 16, 16, 24), 'P3': (2, 8, 8, 56), 'P4': (2, 4, 4, 152), \
'P5': (2, 2, 2, 368)}
    """
    if not isinstance(model, keras.Model):
        raise ConfigError(f"feature_extractor needs a keras.Model; got {type(model).__name__}")
    outputs = pyramid_outputs(model)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with a bare tensor
    extractor = keras.Model(inputs, outputs, name=name or f"{model.name}_features")
    extractor.pyramid_outputs = outputs
    return extractor


def _stride(layer: Any) -> int:
    strides = getattr(layer, "strides", None)
    return int(strides[0]) if strides else 1


def _level(stride: int, model_name: str) -> int:
    level = math.log2(stride)
    if level != int(level):
        raise ConfigError(f"model {model_name!r} has a feature map of stride {stride}, not a power of 2")
    return int(level)
