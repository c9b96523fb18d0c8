"""Keras layers from the records of `keras_regnet.layer_records`: stem, blocks (v, r, x, y) and head.

The block structure lives in the walk; this module only turns each record into a layer, so the
Keras 3 model and the tf_keras twin used for QAT (`tflite.tf_keras_twin`) come from the same code with a
different `LayerKit`. Layer names are the records' (`s2_b3_conv_b`, `s2_b3_se_reduce`, ...). Convs
are bias-free and followed by BN (eps 1e-5, momentum 0.9, as the reference; on Keras 3
`FusedBatchNormalization`, Keras' BN with TensorFlow's fused training kernel); 3x3 stride-2 convs
are padded 1 pixel on every side like the reference, not Keras' asymmetric "same".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import keras

from keras_regnet import layer_records
from keras_regnet.errors import ConfigError
from keras_regnet.layer_records import LayerRecord
from keras_regnet.layers import DropPath, FusedBatchNormalization, GhostBatchNormalization, GroupedConv2D
from keras_regnet.spec import NetSpec


@dataclass(frozen=True)
class BuildOptions:
    """Numerics shared by all blocks; defaults are the reference's."""

    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    zero_init_final_gamma: bool = False
    bn_batch: int | None = None  # ghost batch normalization over sub-batches of this size
    drop_path: tuple[tuple[str, float], ...] = ()  # (block prefix, stochastic depth rate) of residual blocks


def drop_path_rates(spec: NetSpec, drop_path_rate: float) -> tuple[tuple[str, float], ...]:
    """(block prefix, rate) of every block: rates rising linearly from 0 at the first block to
    `drop_path_rate` at the last, over the whole network (timm/models/regnet.py, RegNet._get_stage_args:
    np.linspace(0, drop_path_rate, sum(stage_depths)) split by stage)."""
    prefixes = [site.prefix for site in layer_records.block_sites(spec)]
    if len(prefixes) == 1:
        return ((prefixes[0], 0.0),)  # np.linspace(0, r, 1) == [0]
    return tuple((p, drop_path_rate * i / (len(prefixes) - 1)) for i, p in enumerate(prefixes))


@dataclass(frozen=True)
class LayerKit:
    """The layer classes a builder makes: Keras 3's (with ours), or tf_keras' for the QAT twin.

    `layers` and `initializers` are a Keras namespace (`keras.layers` or `tf_keras.layers`, ...);
    `grouped_conv` is used for convs with groups > 1, `batch_norm` / `ghost_batch_norm` for BN
    (None: ghost batch normalization is not available with this kit).
    """

    layers: Any
    initializers: Any
    grouped_conv: Callable[..., Any]
    batch_norm: Callable[..., Any]
    ghost_batch_norm: Callable[..., Any] | None = None


KERAS3 = LayerKit(keras.layers, keras.initializers, GroupedConv2D, FusedBatchNormalization,
                  GhostBatchNormalization)


def conv_initializer(kit: LayerKit = KERAS3) -> Any:
    """N(0, sqrt(2 / fan_out)), fan_out = k * k * out_channels (He, fan-out), as the reference."""
    return kit.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def _conv(record: LayerRecord, x: Any, options: BuildOptions, kit: LayerKit) -> Any:
    """kxk conv with the reference's symmetric (k-1)/2 padding."""
    pad = (record.kernel - 1) // 2
    padding = "valid"
    if pad and record.stride > 1:
        x = kit.layers.ZeroPadding2D(pad, name=f"{record.name}_pad")(x)
    elif pad:
        padding = "same"  # stride 1, odd kernel: "same" is symmetric
    conv_cls = kit.grouped_conv if record.groups > 1 else kit.layers.Conv2D
    return conv_cls(  # a dilated conv has stride 1: "same" pads it dilation * pad on every side
        record.channels_out, record.kernel, strides=record.stride, padding=padding, groups=record.groups,
        dilation_rate=record.dilation,
        use_bias=record.bias, activation=record.activation, kernel_initializer=conv_initializer(kit),
        bias_initializer="zeros", name=record.name,
    )(x)


def _bn(record: LayerRecord, x: Any, options: BuildOptions, kit: LayerKit) -> Any:
    """BN with the options' epsilon and momentum; a branch's final gamma starts at zero if asked."""
    zero_gamma = record.final_bn and options.zero_init_final_gamma
    kwargs = dict(axis=-1, epsilon=options.bn_epsilon, momentum=options.bn_momentum,
                  gamma_initializer="zeros" if zero_gamma else "ones", name=record.name)
    if options.bn_batch is None:
        return kit.batch_norm(**kwargs)(x)
    if kit.ghost_batch_norm is None:
        raise ConfigError(f"bn_batch={options.bn_batch} (ghost batch normalization) is not available "
                          "in this builder; use bn_batch=None")
    return kit.ghost_batch_norm(options.bn_batch, **kwargs)(x)


def _relu(record: LayerRecord, x: Any, options: BuildOptions, kit: LayerKit) -> Any:
    return kit.layers.ReLU(name=record.name)(x)


def _add(record: LayerRecord, xs: list, options: BuildOptions, kit: LayerKit) -> Any:
    """shortcut + branch; the branch through DropPath first where the block has a stochastic depth rate."""
    rate = dict(options.drop_path).get(record.name[: -len("_add")], 0.0) if options.drop_path else 0.0
    if rate > 0.0:
        xs = [xs[0], DropPath(rate, name=record.name[: -len("add")] + "drop_path")(xs[1])]
    return kit.layers.Add(name=record.name)(xs)


def _scale(record: LayerRecord, xs: list, options: BuildOptions, kit: LayerKit) -> Any:
    return kit.layers.Multiply(name=record.name)(xs)


def _pool(record: LayerRecord, x: Any, options: BuildOptions, kit: LayerKit) -> Any:
    return kit.layers.GlobalAveragePooling2D(keepdims=record.keepdims, name=record.name)(x)


# kind -> (layer maker, whether it takes the list of all inputs rather than the only one)
_MAKERS: dict[str, tuple[Callable[..., Any], bool]] = {
    "conv": (_conv, False), "bn": (_bn, False), "relu": (_relu, False), "add": (_add, True),
    "scale": (_scale, True), "pool": (_pool, False),
}


def apply(records: Iterable[LayerRecord], tensors: dict[str, Any], options: BuildOptions,
          kit: LayerKit = KERAS3) -> Any:
    """Make the layer of every record on its inputs (looked up in / added to `tensors`); last output."""
    out = None
    for record in records:
        make, many = _MAKERS[record.kind]
        inputs = [tensors[name] for name in record.inputs]
        out = tensors[record.name] = make(record, inputs if many else inputs[0], options, kit)
    return out


def stem(x: Any, spec: NetSpec, options: BuildOptions, kit: LayerKit = KERAS3) -> Any:
    """3x3 conv (stride 2 for ImageNet, 1 for small images) + BN + ReLU."""
    return apply(layer_records.stem(spec, layer_records.INPUT, x.shape[-1] or 3), {layer_records.INPUT: x}, options, kit)


def body(x: Any, spec: NetSpec, options: BuildOptions, kit: LayerKit = KERAS3,
         output_stride: int | None = None) -> Any:
    """All stages; block b of stage s is named s{s}_b{b}; dilated 3x3 convs past `output_stride`."""
    records = layer_records.body(spec, layer_records.INPUT, output_stride)
    return apply(records, {layer_records.INPUT: x}, options, kit)


def classifier(x: Any, classes: int, activation: Any, dtype: str | None = None,
               kit: LayerKit = KERAS3) -> Any:
    """Head: global average pool + dense, dense init N(0, 0.01) and zero bias as the reference.

    `dtype` (e.g. "float32" under a mixed policy) is the dense layer's dtype policy; None = global.
    """
    pool, dense = layer_records.head(layer_records.INPUT, x.shape[-1], classes)
    x = apply([pool], {layer_records.INPUT: x}, BuildOptions(), kit)
    return kit.layers.Dense(
        dense.channels_out, activation=activation, name=dense.name, dtype=dtype,
        kernel_initializer=kit.initializers.RandomNormal(0.0, 0.01), bias_initializer="zeros",
    )(x)
