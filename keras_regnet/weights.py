"""Loading weights into a built model: "imagenet", Keras files, and reference checkpoints.

- "imagenet": the reference's released weights for the 24 zoo models (keras_regnet.pretrained).
- `.weights.h5` / `.keras`: Keras files (a `.keras` model may differ in head/preprocessing: weights
  are copied by layer name).
- `.safetensors` / `.npz` reference state dicts (pycls or timm naming), and torch `.pth` / `.pyth`
  / `.pt` / `.bin` when torch is installed (loaded with weights_only=True): converted on the fly
  (keras_regnet.convert); original pycls checkpoints get their BGR stem flipped to RGB.
"""

from __future__ import annotations

import os
import warnings

import keras

from keras_regnet.checkpoints import CHECKPOINT_SUFFIXES, is_checkpoint_path
from keras_regnet.spec import NetSpec

KERAS_SUFFIXES = (".weights.h5", ".keras")


def load_into(model: keras.Model, weights: str | os.PathLike, spec: NetSpec, include_top: bool) -> None:
    """Load `weights` (a path, or "imagenet") into `model`, with errors that name the file."""
    if isinstance(weights, str) and weights == "imagenet":
        from keras_regnet.pretrained import load_imagenet

        load_imagenet(model, spec)
        return
    path = os.fspath(weights)
    if path.endswith(".weights.h5"):
        _load_weights_file(model, path)
    elif path.endswith(".keras"):
        copy_weights_by_name(keras.saving.load_model(path, compile=False), model, source=path)
    elif is_checkpoint_path(path):
        from keras_regnet.convert import load_checkpoint

        load_checkpoint(model, path, spec)
    else:
        raise ValueError(
            f"Unsupported weights file {path!r}: expected a path ending in "
            f"{', '.join(KERAS_SUFFIXES + CHECKPOINT_SUFFIXES)}"
        )


def _load_weights_file(model: keras.Model, path: str) -> None:
    """model.load_weights, but a mismatch (which Keras only warns about) is a ValueError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except ValueError as err:
            raise ValueError(f"weights file {path!r} does not match model {model.name!r}: {err}") from None
    problems = [str(w.message) for w in caught if "load" in str(w.message).lower()]
    if problems:
        first = problems[0].splitlines()[0][:300]
        raise ValueError(f"weights file {path!r} does not match model {model.name!r}: {first}")


def copy_weights_by_name(source_model: keras.Model, target: keras.Model, source: str = "model") -> None:
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
            raise ValueError(f"{source} has no layer {layer.name!r} needed by model {target.name!r}")
        assign_layer_weights(layer, other.get_weights(), source, target.name)


def assign_layer_weights(layer: keras.layers.Layer, values: list, source: str, model_name: str) -> None:
    """layer.set_weights(values), but a shape mismatch is a ValueError naming the layer and both shapes."""
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(v.shape) for v in values]
    if expected != got:
        raise ValueError(
            f"shape mismatch in layer {layer.name!r}: {source} has weight shapes {got}, "
            f"model {model_name!r} expects {expected}"
        )
    layer.set_weights(values)
