"""The tf_keras (Keras 2) twin of a NetSpec, for tensorflow-model-optimization.

TFMOT only understands tf_keras models, so quantization-aware training builds this twin from the
same NetSpec, with the same layer names as `keras_regnet.blocks`, and copies the Keras 3 weights
over by name. Import this module only on the QAT path: it imports tf_keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras
from tf_keras import layers

from keras_regnet.complexity import se_width
from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from keras_regnet.spec import NetSpec, StageSpec, bottleneck_width


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


def _conv(x: Any, filters: int, kernel: int, name: str, stride: int = 1, groups: int = 1,
          bias: bool = False, activation: str | None = None) -> Any:
    """kxk conv with the reference's symmetric padding, as blocks.conv (tf_keras Conv2D(groups))."""
    pad = (kernel - 1) // 2
    padding = "valid"
    if pad and stride > 1:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    elif pad:
        padding = "same"
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, groups=groups,
                         use_bias=bias, activation=activation, name=name)(x)


def _bn(x: Any, name: str, epsilon: float, momentum: float) -> Any:
    return layers.BatchNormalization(axis=-1, epsilon=epsilon, momentum=momentum, name=name)(x)


def _block(x: Any, spec: NetSpec, stage: StageSpec, prefix: str, w_in: int, stride: int,
           eps: float, mom: float) -> Any:
    """One block with the layer names of keras_regnet.blocks.block."""
    w_out = stage.width
    if spec.block == "v":
        x = _conv(x, w_out, 3, f"{prefix}_conv_a", stride=stride)
        x = layers.ReLU(name=f"{prefix}_relu_a")(_bn(x, f"{prefix}_bn_a", eps, mom))
        x = _conv(x, w_out, 3, f"{prefix}_conv_b")
        return layers.ReLU(name=f"{prefix}_relu")(_bn(x, f"{prefix}_bn_b", eps, mom))
    shortcut = x
    if w_in != w_out or stride != 1:
        shortcut = _bn(_conv(x, w_out, 1, f"{prefix}_proj_conv", stride=stride), f"{prefix}_proj_bn", eps, mom)
    if spec.block == "r":
        f = _conv(x, w_out, 3, f"{prefix}_conv_a", stride=stride)
        f = layers.ReLU(name=f"{prefix}_relu_a")(_bn(f, f"{prefix}_bn_a", eps, mom))
        f = _bn(_conv(f, w_out, 3, f"{prefix}_conv_b"), f"{prefix}_bn_b", eps, mom)
    else:
        w_b = bottleneck_width(w_out, stage.bottleneck_ratio)
        f = _conv(x, w_b, 1, f"{prefix}_conv_a")
        f = layers.ReLU(name=f"{prefix}_relu_a")(_bn(f, f"{prefix}_bn_a", eps, mom))
        f = _conv(f, w_b, 3, f"{prefix}_conv_b", stride=stride, groups=w_b // stage.group_width)
        f = layers.ReLU(name=f"{prefix}_relu_b")(_bn(f, f"{prefix}_bn_b", eps, mom))
        if spec.block == "y":
            s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_pool")(f)
            s = _conv(s, se_width(w_in, spec.se_ratio), 1, f"{prefix}_se_reduce", bias=True, activation="relu")
            s = _conv(s, w_b, 1, f"{prefix}_se_expand", bias=True, activation="sigmoid")
            f = layers.Multiply(name=f"{prefix}_se_scale")([f, s])
        f = _bn(_conv(f, w_out, 1, f"{prefix}_conv_c"), f"{prefix}_bn_c", eps, mom)
    x = layers.Add(name=f"{prefix}_add")([shortcut, f])
    return layers.ReLU(name=f"{prefix}_relu")(x)


def build_twin(spec: NetSpec, image_size: int, classes: int, classifier_activation: str | None = "softmax",
               bn_epsilon: float = 1e-5, bn_momentum: float = 0.9) -> tf_keras.Model:
    """tf_keras model of `spec` taking RGB 0-255 at image_size, layer for layer like keras_regnet.build."""
    spec.validate()
    inputs = tf_keras.Input(shape=(image_size, image_size, 3), name="input_layer")
    x = _normalization(inputs)
    x = _conv(x, spec.stem_width, 3, "stem_conv", stride=spec.stem_stride)
    x = layers.ReLU(name="stem_relu")(_bn(x, "stem_bn", bn_epsilon, bn_momentum))
    w_in = spec.stem_width
    for s, stage in enumerate(spec.stages, start=1):
        for b in range(1, stage.depth + 1):
            x = _block(x, spec, stage, f"s{s}_b{b}", w_in, stage.stride if b == 1 else 1,
                       bn_epsilon, bn_momentum)
            w_in = stage.width
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
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
            raise ValueError(f"Keras model {source.name!r} has no layer {layer.name!r} needed by the tf_keras twin")
        values = [np.asarray(v) for v in other.get_weights()]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"layer {layer.name!r}: Keras model has weight shapes {[v.shape for v in values]}, "
                f"the twin expects {expected}"
            )
        layer.set_weights(values)
        copied += 1
    return copied
