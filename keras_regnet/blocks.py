"""Keras building blocks of RegNet/AnyNet: stem, the four block types (v, r, x, y), SE and head.

Layer names follow `complexity.layer_table` exactly (`s2_b3_conv_b`, `s2_b3_se_reduce`, ...),
so weight converters, QAT and tests can address layers by name. Convs are bias-free and followed by
BN (eps 1e-5, momentum 0.9, as the reference; `FusedBatchNormalization`, Keras' BN with TensorFlow's
fused training kernel); 3x3 stride-2 convs are padded 1 pixel on every side
like the reference, not Keras' asymmetric "same".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from keras_regnet.complexity import se_width
from keras_regnet.layers import FusedBatchNormalization, GhostBatchNormalization, GroupedConv2D
from keras_regnet.spec import NetSpec, StageSpec, bottleneck_width


@dataclass(frozen=True)
class BuildOptions:
    """Numerics shared by all blocks; defaults are the reference's."""

    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    zero_init_final_gamma: bool = False
    bn_batch: int | None = None  # ghost batch normalization over sub-batches of this size


def conv_initializer() -> keras.initializers.Initializer:
    """N(0, sqrt(2 / fan_out)), fan_out = k * k * out_channels (He, fan-out), as the reference."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def conv(x: Any, filters: int, kernel: int, name: str, stride: int = 1, groups: int = 1,
         bias: bool = False, activation: str | None = None) -> Any:
    """kxk conv with the reference's symmetric (k-1)/2 padding."""
    pad = (kernel - 1) // 2
    padding = "valid"
    if pad and stride > 1:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    elif pad:
        padding = "same"  # stride 1, odd kernel: "same" is symmetric
    conv_cls = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv_cls(
        filters, kernel, strides=stride, padding=padding, groups=groups, use_bias=bias,
        activation=activation, kernel_initializer=conv_initializer(), bias_initializer="zeros",
        name=name,
    )(x)


def bn(x: Any, name: str, options: BuildOptions, zero_gamma: bool = False) -> Any:
    kwargs = dict(axis=-1, epsilon=options.bn_epsilon, momentum=options.bn_momentum,
                  gamma_initializer="zeros" if zero_gamma else "ones", name=name)
    if options.bn_batch is not None:
        return GhostBatchNormalization(options.bn_batch, **kwargs)(x)
    return FusedBatchNormalization(**kwargs)(x)


def relu(x: Any, name: str) -> Any:
    return layers.ReLU(name=name)(x)


def stem(x: Any, spec: NetSpec, options: BuildOptions) -> Any:
    """3x3 conv (stride 2 for ImageNet, 1 for small images) + BN + ReLU."""
    x = conv(x, spec.stem_width, 3, "stem_conv", stride=spec.stem_stride)
    x = bn(x, "stem_bn", options)
    return relu(x, "stem_relu")


def squeeze_excite(x: Any, w_in: int, w_se: int, prefix: str) -> Any:
    """SE: global pool, 1x1 reduce (ReLU), 1x1 expand (sigmoid), channel-wise scale."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_pool")(x)
    s = conv(s, w_se, 1, f"{prefix}_se_reduce", bias=True, activation="relu")
    s = conv(s, w_in, 1, f"{prefix}_se_expand", bias=True, activation="sigmoid")
    return layers.Multiply(name=f"{prefix}_se_scale")([x, s])


def block(x: Any, spec: NetSpec, stage: StageSpec, prefix: str, w_in: int, stride: int,
          options: BuildOptions) -> Any:
    """One block of type spec.block; returns its output tensor."""
    w_out = stage.width
    if spec.block == "v":
        x = conv(x, w_out, 3, f"{prefix}_conv_a", stride=stride)
        x = relu(bn(x, f"{prefix}_bn_a", options), f"{prefix}_relu_a")
        x = conv(x, w_out, 3, f"{prefix}_conv_b")
        return relu(bn(x, f"{prefix}_bn_b", options), f"{prefix}_relu")
    shortcut = x
    if w_in != w_out or stride != 1:
        shortcut = conv(x, w_out, 1, f"{prefix}_proj_conv", stride=stride)
        shortcut = bn(shortcut, f"{prefix}_proj_bn", options)
    if spec.block == "r":
        f = conv(x, w_out, 3, f"{prefix}_conv_a", stride=stride)
        f = relu(bn(f, f"{prefix}_bn_a", options), f"{prefix}_relu_a")
        f = conv(f, w_out, 3, f"{prefix}_conv_b")
        f = bn(f, f"{prefix}_bn_b", options, zero_gamma=options.zero_init_final_gamma)
    else:
        w_b = bottleneck_width(w_out, stage.bottleneck_ratio)
        f = conv(x, w_b, 1, f"{prefix}_conv_a")
        f = relu(bn(f, f"{prefix}_bn_a", options), f"{prefix}_relu_a")
        f = conv(f, w_b, 3, f"{prefix}_conv_b", stride=stride, groups=w_b // stage.group_width)
        f = relu(bn(f, f"{prefix}_bn_b", options), f"{prefix}_relu_b")
        if spec.block == "y":
            f = squeeze_excite(f, w_b, se_width(w_in, spec.se_ratio), prefix)
        f = conv(f, w_out, 1, f"{prefix}_conv_c")
        f = bn(f, f"{prefix}_bn_c", options, zero_gamma=options.zero_init_final_gamma)
    x = layers.Add(name=f"{prefix}_add")([shortcut, f])
    return relu(x, f"{prefix}_relu")


def body(x: Any, spec: NetSpec, options: BuildOptions) -> Any:
    """All stages; block b of stage s is named s{s}_b{b}."""
    w_in = spec.stem_width
    for s, stage in enumerate(spec.stages, start=1):
        for b in range(1, stage.depth + 1):
            stride = stage.stride if b == 1 else 1
            x = block(x, spec, stage, f"s{s}_b{b}", w_in, stride, options)
            w_in = stage.width
    return x


def classifier(x: Any, classes: int, activation: Any, dtype: str | None = None) -> Any:
    """Head: global average pool + dense, dense init N(0, 0.01) and zero bias as the reference.

    `dtype` (e.g. "float32" under a mixed policy) is the dense layer's dtype policy; None = global.
    """
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return layers.Dense(
        classes, activation=activation, name="predictions", dtype=dtype,
        kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01), bias_initializer="zeros",
    )(x)
