"""The tf_keras (Keras 2) twin of a NetSpec, for tensorflow-model-optimization.

TFMOT only understands tf_keras models, so quantization-aware training builds this twin from the
same NetSpec with the same block code as the Keras 3 model (`keras_regnet.blocks` given tf_keras'
layers), hence the same layer names, and copies the Keras 3 weights over by name. Import this
module only on the QAT path: it imports tf_keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras
from tf_keras import layers

from keras_regnet import blocks
from keras_regnet.errors import ConfigError
from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from keras_regnet.spec import NetSpec


def _normalization(x: Any) -> Any:
    """RGB 0-255 -> ImageNet-normalized input as a frozen 1x1 depthwise conv (scale, bias = -shift).

    A conv rather than a custom layer, so TFMOT quantizes it like any other layer and the QAT model
    is integer from its first op.
    """
    scale = (1.0 / (255.0 * IMAGENET_STD_RGB)).astype("float32")
    shift = (IMAGENET_MEAN_RGB / IMAGENET_STD_RGB).astype("float32")
    return layers.DepthwiseConv2D(
        1, use_bias=True, trainable=False, name="preprocessing",
        depthwise_initializer=tf_keras.initializers.Constant(scale.reshape(1, 1, 3, 1).tolist()),
        bias_initializer=tf_keras.initializers.Constant((-shift).tolist()),
    )(x)


def layer_kit() -> blocks.LayerKit:
    """tf_keras' layers for `keras_regnet.blocks`: stock grouped Conv2D and BatchNormalization.

    TFMOT knows these stock layers; inference maths equals our Keras 3 layers', and QAT routes
    the grouped convs through TF's native kernel (`tflite.qat`). No ghost batch normalization.
    """
    return blocks.LayerKit(layers, tf_keras.initializers, layers.Conv2D, layers.BatchNormalization)


def build_twin(spec: NetSpec, image_size: int, classes: int, classifier_activation: str | None = "softmax",
               bn_epsilon: float = 1e-5, bn_momentum: float = 0.9) -> tf_keras.Model:
    """tf_keras model of `spec` taking RGB 0-255 at image_size, made by keras_regnet.blocks like `build`."""
    spec.validate()
    kit = layer_kit()
    options = blocks.BuildOptions(bn_epsilon, bn_momentum)
    inputs = tf_keras.Input(shape=(image_size, image_size, 3), name="input_layer")
    x = _normalization(inputs)
    x = blocks.stem(x, spec, options, kit)
    x = blocks.body(x, spec, options, kit)
    x = blocks.classifier(x, classes, classifier_activation, kit=kit)
    return tf_keras.Model(inputs, x, name=spec.name.replace(".", "_"))


def copy_weights(source: Any, twin: tf_keras.Model) -> int:
    """Copy every weighted layer of the Keras 3 `source` into the same-named twin layer; return count."""
    by_name = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in twin.layers:
        if not layer.weights or layer.name == "preprocessing":  # fixed constants, set at build
            continue
        other = by_name.get(layer.name)
        if other is None:
            raise ConfigError(f"Keras model {source.name!r} has no layer {layer.name!r} needed by the tf_keras twin")
        values = [np.asarray(v) for v in other.get_weights()]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ConfigError(
                f"layer {layer.name!r}: Keras model has weight shapes {[v.shape for v in values]}, "
                f"the twin expects {expected}"
            )
        layer.set_weights(values)
        copied += 1
    return copied
