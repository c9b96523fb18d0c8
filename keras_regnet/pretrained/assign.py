"""Setting weight arrays into a model it is handed, by layer name (a leaf: builds no model).

Arrays keyed by layer name are what every weights source reduces to (converted reference
checkpoints, the ImageNet cache, a `.keras` model), so one function assigns them all, with the
stem kernel adapted when the model takes another channel count than the weights (`adapt_input_kernel`).
"""

from __future__ import annotations

import math
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from keras_regnet.errors import WeightsError

STEM_CONV = "stem_conv"


def assign_layer_weights(layer: Any, values: Sequence[Any], source: str, model_name: str) -> None:
    """layer.set_weights(values), but a shape mismatch is a ValueError naming the layer and both shapes."""
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(np.shape(v)) for v in values]
    if expected != got:
        raise WeightsError(
            f"shape mismatch in layer {layer.name!r}: {source} has weight shapes {got}, "
            f"model {model_name!r} expects {expected}"
        )
    layer.set_weights(list(values))


def adapt_input_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """An RGB conv kernel [kh, kw, 3, out] for `channels` inputs, by timm's `adapt_input_conv` rule.

    Rule transcribed from timm/models/_manipulate.py (huggingface/pytorch-image-models): one
    channel takes the sum over the three RGB input channels; C > 3 (or 2) channels take the RGB
    kernel tiled ceil(C / 3) times along the input axis, cut to C and scaled by 3 / C (for C a
    multiple of 3, a constant input then gives the same response as the RGB kernel).
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise WeightsError(f"adapt_input_kernel needs an RGB kernel [kh, kw, 3, out]; got shape "
                           f"{kernel.shape}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise WeightsError(f"channels must be a positive integer; got channels={channels!r}")
    if channels == 3:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeat = math.ceil(channels / 3)
    return np.tile(kernel, (1, 1, repeat, 1))[:, :, :channels, :] * (3.0 / channels)


def assign_by_name(model: Any, arrays: Mapping[str, Sequence[Any]], source: str, *,
                   skip: Collection[str] = ()) -> list[str]:
    """Set every weighted layer of `model` from `arrays[layer.name]`; returns the layers adapted.

    Arrays for layers the model lacks (a classifier with include_top=False) are ignored; a model
    layer missing from `arrays` (unless in `skip`) or a shape mismatch is a ValueError naming it.
    An RGB stem kernel is adapted to the model's input channels (timm's rule, adapt_input_kernel).
    """
    adapted = []
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        values = arrays.get(layer.name)
        if values is None:
            raise WeightsError(f"{source} has no weights for layer {layer.name!r} of model {model.name!r}")
        values = list(values)
        if layer.name == STEM_CONV and _needs_adaptation(layer, values):
            values[0] = adapt_input_kernel(values[0], int(layer.weights[0].shape[2]))
            adapted.append(layer.name)
        assign_layer_weights(layer, values, source, model.name)
    return adapted


def _needs_adaptation(layer: Any, values: list) -> bool:
    """True when only the input-channel axis of an RGB stem kernel differs from the layer's."""
    want, got = tuple(layer.weights[0].shape), tuple(np.shape(values[0]))
    return len(got) == 4 and got[2] == 3 and want[2] != 3 and want[:2] + want[3:] == got[:2] + got[3:]


def layer_arrays(model: Any) -> dict[str, list[np.ndarray]]:
    """Every weighted layer's arrays keyed by layer name (e.g. of a loaded `.keras` model)."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def copy_weights_by_name(source_model: Any, target: Any, source: str = "model") -> None:
    """Copy every weighted layer of `target` from the same-named layer of `source_model`.

    Layers of `source_model` that `target` lacks (e.g. a classifier when include_top=False) are
    ignored; a target layer missing from the source, or a shape mismatch, is an error naming it.
    """
    by_name = {layer.name: layer for layer in source_model.layers}
    for layer in target.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is None:
            raise WeightsError(f"{source} has no layer {layer.name!r} needed by model {target.name!r}")
        assign_layer_weights(layer, other.get_weights(), source, target.name)
