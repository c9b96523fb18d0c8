"""build(spec) -> keras.Model, with the keras.applications arguments and their errors."""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Any

import keras
from keras import layers

from keras_regnet import blocks
from keras_regnet.errors import ConfigError
from keras_regnet.features import pyramid_outputs
from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from keras_regnet.layer_records import check_output_stride, effective_total_stride
from keras_regnet.layers import ImageNetNormalization
from keras_regnet.pretrained.tags import canonical_weights, preset_named
from keras_regnet.resolve import resolve_spec
from keras_regnet.spec import NetSpec

POOLING_CHOICES = (None, "avg", "max")

# The keras.applications arguments, documented once for `build`, the zoo builders, RegNet and AnyNet.
APPLICATION_ARGS_DOC = """\
    include_top: whether to include the classifier (global average pool + dense layer
        `predictions`). Defaults to True.
    weights: None (random initialization, the reference's: conv N(0, sqrt(2 / fan_out)), dense
        N(0, 0.01)), "imagenet" (the reference's released weights of a zoo model, downloaded,
        converted and cached on first use; timm's tag "pycls_in1k" or tagged name
        "regnety_006.pycls_in1k" say the same), or a path to a `.weights.h5` / `.keras` file or to a
        reference checkpoint (`.safetensors`, `.npz`, torch `.pth`/`.pyth`).
    input_tensor: optional Keras tensor to use as the model input (checked like `input_shape`).
    input_shape: optional (height, width, channels); sides None or at least the network's total
        stride. Defaults to (None, None, 3). Any channel count works, pretrained RGB weights
        included (the stem kernel is adapted: summed over RGB for 1 channel, tiled and scaled by
        3 / C for C > 3).
    pooling: with include_top=False, None (the 4-D last feature map), "avg" or "max" (2-D).
    classes: number of classes of the classifier; 1000 with weights="imagenet" and a top.
    classifier_activation: activation of the classifier: "softmax", None (logits) or any Keras
        activation; computed in float32 under a mixed precision policy.
    include_preprocessing: if True (default) the model takes RGB in [0, 255] and normalizes it
        with the ImageNet statistics itself (other channel counts: their channel mean).
    name: model name; defaults to the spec's name with "." and "/" replaced by "_".
    bn_epsilon, bn_momentum: keyword-only batch normalization numerics (reference: 1e-5, 0.9).
    zero_init_final_gamma: keyword-only; start each residual branch's last BN gamma at zero.
    bn_batch: keyword-only; ghost batch normalization over sub-batches of this many images in
        training (None: the whole per-replica batch, as Keras' BatchNormalization).
    output_stride: keyword-only; None (the network's own strides, 32 for the zoo) or 8, 16, 32: the
        stages past that stride keep their resolution with dilated 3x3 convs (timm's rule), for
        segmentation and detection backbones. Same variables, so pretrained weights load unchanged.
    drop_path_rate: keyword-only; stochastic depth: in training each residual block's branch is
        dropped per sample, with a rate rising linearly from 0 at the first block to this value at
        the last (timm's rule); inference is unchanged. 0 (default): off.
"""

RETURNS_DOC = """\
    A functional `keras.Model`. Its layers are named from their position (`stem_conv`,
    `s2_b3_conv_b`, `s3_b1_se_reduce`, `predictions`, ...) and it carries `pyramid_outputs`, a dict
    {"P1": ..., "P5": ...} of the stem's and every stage's output keyed by log2 of their stride
    (keras-hub's backbone convention, see `keras_regnet.feature_extractor`).
"""


def build(
    spec: NetSpec | str | dict,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
    name: str | None = None,
    *,
    bn_epsilon: float = 1e-5,
    bn_momentum: float = 0.9,
    zero_init_final_gamma: bool = False,
    bn_batch: int | None = None,
    output_stride: int | None = None,
    drop_path_rate: float = 0.0,
) -> keras.Model:
    # Docstring: `build.__doc__` below (its argument docs are shared with the zoo builders).
    spec = resolve_spec(spec, label="spec")  # a NetSpec is validated, a name resolved
    output_stride = check_output_stride(output_stride)
    weights = canonical_weights(weights, spec)  # timm's tags ("regnety_006.pycls_in1k") -> "imagenet"
    include_top, classes = _fit_to_weights_head(weights, include_top, classes)
    classes = _validate_arguments(
        spec, include_top, weights, input_shape, pooling, classes, classifier_activation
    )
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"`name` must be a string. Received: name={name!r}")
    _check_backend_has_dtype(keras.config.dtype_policy())
    inputs, x = _input_layer(spec, input_tensor, input_shape, effective_total_stride(spec, output_stride))
    if include_preprocessing:
        x = _normalization(x.shape[-1])(x)
    if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, numbers.Real) or not (
            0.0 <= drop_path_rate < 1.0):
        raise ConfigError(f"`drop_path_rate` must be in [0, 1). Received: drop_path_rate={drop_path_rate!r}")
    options = blocks.BuildOptions(bn_epsilon, bn_momentum, zero_init_final_gamma, bn_batch,
                                  blocks.drop_path_rates(spec, float(drop_path_rate)) if drop_path_rate else ())
    x = blocks.stem(x, spec, options)
    x = blocks.body(x, spec, options, output_stride=output_stride)
    if include_top:
        # Under a mixed policy the head computes in float32 so probabilities/logits are float32
        # (Keras' mixed-precision advice); it holds float32 variables either way.
        head_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed_") else None
        x = blocks.classifier(x, classes, classifier_activation, dtype=head_dtype)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name if name is not None else _model_name(spec.name))
    model.pyramid_outputs = pyramid_outputs(model)  # keras-hub's backbone attribute, P1..P5
    if weights is not None:
        from keras_regnet.pretrained import load as weights_lib

        weights_lib.load_into(model, weights, spec=spec, include_top=include_top)
    return model


build.__doc__ = f"""Build the Keras model of a NetSpec, with keras.applications' arguments and errors.

Every model of the package (the zoo, `RegNet`, `AnyNet`) is a NetSpec passed to this function.

Args:
    spec: the network, a `keras_regnet.NetSpec` (from `make_spec`, `resolve_spec`,
        `RegNetParams.to_spec` or `NetSpec.from_json`), or any model name `resolve_model` takes
        (a zoo name in any spelling, timm's tagged name, a built-in, a NetSpec JSON file or inline JSON).
{APPLICATION_ARGS_DOC}
Returns:
{RETURNS_DOC}
Raises:
    ValueError: for an invalid spec or argument, with the argument and the value received
        (keras.applications' messages).

Example:

>>> import keras_regnet
>>> spec = keras_regnet.make_spec(depths=[1, 2], widths=[16, 32], group_widths=8, block="y",
...                               se_ratio=0.25, stem_width=8, name="tiny")
>>> model = keras_regnet.build(spec, input_shape=(32, 32, 3), classes=10)
>>> model.output_shape
(None, 10)
>>> {{level: tuple(t.shape) for level, t in model.pyramid_outputs.items()}}
{{'P1': (None, 16, 16, 8), 'P2': (None, 8, 8, 16), 'P3': (None, 4, 4, 32)}}
>>> trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
>>> trainable == keras_regnet.complexity(spec, 32, classes=10).params
True
"""


def _normalization(channels: int | None) -> ImageNetNormalization:
    """ImageNet RGB statistics for 3 (or unknown) channels; otherwise their channel means, per channel.

    As keras.applications, a channel count other than 1 or 3 builds with a warning.
    """
    if channels is None or channels == 3:
        return ImageNetNormalization(name="preprocessing")
    if channels != 1:
        warnings.warn(
            "This model usually expects 1 or 3 input channels. However, it was passed an "
            f"input_shape with {channels} input channels.",
            stacklevel=3,
        )
    mean, std = float(IMAGENET_MEAN_RGB.mean()), float(IMAGENET_STD_RGB.mean())
    return ImageNetNormalization(mean=(mean,) * channels, std=(std,) * channels, name="preprocessing")


def _model_name(name: str) -> str:
    """Default model name from a spec name: regnetx_1.6gf -> regnetx_1_6gf (a user's name is kept)."""
    return name.replace(".", "_").replace("/", "_")


def _check_backend_has_dtype(policy: Any) -> None:
    """JAX without jax_enable_x64 silently computes a float64 policy in float32: refuse it up front."""
    wanted = {policy.compute_dtype, policy.variable_dtype}
    if "float64" not in wanted or keras.backend.backend() != "jax":
        return
    import jax

    if not jax.config.read("jax_enable_x64"):
        raise ConfigError(
            f"dtype policy {policy.name!r} needs 64-bit arrays on JAX, but jax_enable_x64 is off; set "
            "JAX_ENABLE_X64=1 or call jax.config.update('jax_enable_x64', True) before building the model")


def _fit_to_weights_head(weights: Any, include_top: bool, classes: Any) -> tuple[bool, Any]:
    """A weight published headless (SEER's trunks) builds include_top=False; one with another class
    count (ImageNet-12k's 11821) builds its own head when `classes` is left at 1000. Each says so once."""
    row = preset_named(weights)
    if row is None or not include_top:
        return include_top, classes
    if row.headless:
        _say_once(f"{row.name} is published without a classifier: built headless (include_top=False)")
        return False, classes
    if row.num_classes != 1000 and classes == 1000:
        _say_once(f"{row.name} has a {row.num_classes}-class classifier: built with its own "
                  f"{row.num_classes}-class head (classes={row.num_classes})")
        return include_top, row.num_classes
    return include_top, classes


def _say_once(message: str) -> None:
    from keras_regnet.pretrained.notices import notice_once

    notice_once(message)


def _validate_arguments(spec: NetSpec, include_top: bool, weights: Any, input_shape: Any,
                        pooling: Any, classes: Any, classifier_activation: Any) -> int:
    """The keras.applications checks, raised up front with the bad value in the message.

    Returns `classes` as a Python int (numpy integers are accepted, as keras.applications does).
    """
    row = preset_named(weights)  # a presets row other than the reference's ("imagenet")
    if not (weights in (None, "imagenet") or row is not None
            or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ConfigError(
            "The `weights` argument should be either `None` (random initialization), `imagenet` "
            "(pre-training on ImageNet), or the path to the weights file to be loaded. "
            f"Received: weights={weights!r}"
        )
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise ConfigError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    classes = int(classes)
    if weights == "imagenet" and include_top and classes != 1000:
        raise ConfigError(
            'If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
            f"Received: classes={classes}"
        )
    if row is not None and include_top and classes != row.num_classes:
        raise ConfigError(f"weights={weights!r} hold a {row.num_classes}-class classifier; with "
                          f"`include_top=True`, `classes` should be {row.num_classes}. Received: classes={classes}")
    if (weights == "imagenet" or row is not None) and include_top and not _is_softmax_or_linear(classifier_activation):
        raise ConfigError(
            "Only `None` and `softmax` activations are allowed for the `classifier_activation` "
            "argument when using pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation!r}"
        )
    if pooling not in POOLING_CHOICES:
        raise ConfigError(f"`pooling` must be one of {POOLING_CHOICES}. Received: pooling={pooling!r}")
    return classes


def _is_softmax_or_linear(activation: Any) -> bool:
    """True for None / "softmax" / "linear" and their callables, as keras.applications allows."""
    try:
        resolved = keras.activations.get(activation)
    except ValueError:
        return False
    return resolved in (keras.activations.get("softmax"), keras.activations.get(None))


def _validate_input_shape(spec: NetSpec, input_shape: Any, label: str = "input_shape",
                          min_size: int | None = None) -> tuple:
    """Check (height, width, channels) with sides None or >= the total stride; returns Python ints.

    Any channel count is accepted: with include_preprocessing the normalization follows the
    channels, and pretrained RGB weights get their stem adapted (keras_regnet.pretrained.assign).
    `label` names the argument in the messages (`input_shape`, or a given `input_tensor`'s shape).
    """
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ConfigError(
            f"`{label}` must be a tuple of 3 integers (height, width, channels). "
            f"Received: {label}={input_shape!r}"
        )
    dims = []
    for dim in input_shape:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
            raise ConfigError(
                f"`{label}` must hold integers or None (height, width, channels). "
                f"Received: {label}={tuple(input_shape)!r}"
            )
        dims.append(None if dim is None else int(dim))
    if dims[-1] is not None and dims[-1] < 1:
        raise ConfigError(f"The input must have at least 1 channel; Received `{label}={tuple(dims)}`")
    min_size = spec.total_stride if min_size is None else min_size
    if any(dim is not None and dim < min_size for dim in dims[:2]):
        raise ConfigError(
            f"Input size must be at least {min_size}x{min_size} (the network's total stride); "
            f"Received: {label}={tuple(dims)}"
        )
    return tuple(dims)


def _input_layer(spec: NetSpec, input_tensor: Any, input_shape: Any,
                 min_size: int | None = None) -> tuple[Any, Any]:
    """(model inputs, first tensor) for `input_tensor` (a Keras tensor) or a new Input.

    A given tensor's static shape gets the same checks as `input_shape` (sides at least the total
    stride). As in Keras 3's keras.applications, a raw backend tensor is rejected by
    `keras.Input(tensor=...)` with its own message.
    """
    shape = (None, None, 3)
    if input_shape is not None:
        shape = _validate_input_shape(spec, input_shape, min_size=min_size)
    if input_tensor is None:
        inp = keras.Input(shape=shape, name="input_layer")
        return inp, inp
    if keras.backend.is_keras_tensor(input_tensor):
        tensor_shape = tuple(input_tensor.shape)
        if len(tensor_shape) != 4:
            raise ConfigError(
                "`input_tensor` must be a 4D (batch, height, width, channels) tensor. "
                f"Received: input_tensor.shape={tensor_shape}"
            )
        _validate_input_shape(spec, tensor_shape[1:], label="input_tensor.shape[1:]", min_size=min_size)
        return keras.utils.get_source_inputs(input_tensor), input_tensor
    inp = keras.Input(tensor=input_tensor, shape=shape)
    return inp, inp
