"""build(spec) -> keras.Model, with the keras.applications arguments and their errors."""

from __future__ import annotations

import os
from typing import Any

import keras
from keras import layers

from keras_regnet import blocks
from keras_regnet.layers import ImageNetNormalization
from keras_regnet.spec import NetSpec

POOLING_CHOICES = (None, "avg", "max")


def build(
    spec: NetSpec,
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
) -> keras.Model:
    """Build the Keras model of a NetSpec, keras.applications style.

    Args mirror keras.applications: `weights` is None, "imagenet" (zoo models) or a path to a
    `.weights.h5` / `.keras` file (or a reference checkpoint, see keras_regnet.weights);
    `include_preprocessing=True` makes the model take RGB images in [0, 255].
    Keyword-only options change the numerics; their defaults are the reference's.
    """
    spec.validate()
    _validate_arguments(spec, include_top, weights, input_shape, pooling, classes, classifier_activation)
    inputs, x = _input_layer(spec, input_tensor, input_shape)
    if include_preprocessing:
        x = ImageNetNormalization(name="preprocessing")(x)
    options = blocks.BuildOptions(bn_epsilon, bn_momentum, zero_init_final_gamma)
    x = blocks.stem(x, spec, options)
    x = blocks.body(x, spec, options)
    if include_top:
        x = blocks.classifier(x, classes, classifier_activation)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=_model_name(name or spec.name))
    if weights is not None:
        from keras_regnet import weights as weights_lib

        weights_lib.load_into(model, weights, spec=spec, include_top=include_top)
    return model


def _model_name(name: str) -> str:
    return name.replace(".", "_").replace("/", "_")


def _validate_arguments(spec: NetSpec, include_top: bool, weights: Any, input_shape: Any,
                        pooling: Any, classes: Any, classifier_activation: Any) -> None:
    """The keras.applications checks, raised up front with the bad value in the message."""
    if not (weights in (None, "imagenet") or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), `imagenet` "
            "(pre-training on ImageNet), or the path to the weights file to be loaded. "
            f"Received: weights={weights!r}"
        )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            'If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
            f"Received: classes={classes}"
        )
    if weights == "imagenet" and include_top and classifier_activation not in (None, "softmax"):
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the `classifier_activation` "
            "argument when using pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation!r}"
        )
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"`pooling` must be one of {POOLING_CHOICES}. Received: pooling={pooling!r}")
    if input_shape is not None:
        _validate_input_shape(spec, input_shape)


def _validate_input_shape(spec: NetSpec, input_shape: Any) -> None:
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a tuple of 3 integers (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    if input_shape[-1] != 3:
        raise ValueError(
            f"The input must have 3 channels; Received `input_shape={tuple(input_shape)}`"
        )
    min_size = spec.total_stride
    for dim in input_shape[:2]:
        if dim is not None and (not isinstance(dim, int) or dim < min_size):
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size} (the network's total stride); "
                f"Received: input_shape={tuple(input_shape)}"
            )


def _input_layer(spec: NetSpec, input_tensor: Any, input_shape: Any) -> tuple[Any, Any]:
    """(model inputs, first tensor), accepting a Keras tensor or a raw tensor as keras.applications."""
    shape = tuple(input_shape) if input_shape is not None else (None, None, 3)
    if input_tensor is None:
        inp = keras.Input(shape=shape, name="input_layer")
        return inp, inp
    if keras.backend.is_keras_tensor(input_tensor):
        return keras.utils.get_source_inputs(input_tensor), input_tensor
    inp = keras.Input(tensor=input_tensor, shape=shape)
    return inp, inp
