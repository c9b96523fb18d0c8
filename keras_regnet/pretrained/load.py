"""The one weights loader: it is handed a built model and assigns arrays to it; it never builds one.

- "imagenet": the reference's released weights for the 24 zoo models, and a tagged name
  ("regnety_006.pycls_in1k"): a row of the presets table (keras_regnet.presets), cached
  as arrays keyed by layer name (keras_regnet.pretrained.cache), so the first load builds no model
  besides the caller's.
- `.keras`: a whole saved model; its weights are copied by layer name (head/preprocessing may differ).
- `.weights.h5`: a Keras weights file of the same architecture (`model.load_weights`).
- `.safetensors` / `.npz` reference state dicts (pycls or timm naming), and torch `.pth` / `.pyth`
  / `.pt` / `.bin` when torch is installed (loaded with weights_only=True): converted on the fly
  (keras_regnet.pretrained.to_keras); original pycls checkpoints get their BGR stem flipped to RGB.

Name-keyed sources also fit a model with another input channel count: the RGB stem kernel is
adapted by timm's `adapt_input_conv` rule (keras_regnet.pretrained.assign.adapt_input_kernel).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np

from keras_regnet.pretrained.assign import assign_by_name, layer_arrays
from keras_regnet.pretrained.state_dict import (
    CHECKPOINT_SUFFIXES,
    is_checkpoint_path,
    read_state_dict,
)
from keras_regnet.errors import WeightsError
from keras_regnet.spec import NetSpec
from keras_regnet.layer_records import CLASSIFIER

KERAS_SUFFIXES = (".weights.h5", ".keras")
CLASS_NAMES_FILE = "class_names.json"  # written by training beside model.keras


def load_into(model: Any, weights: str | os.PathLike, spec: NetSpec, include_top: bool = True, *,
              new_head: bool = False) -> list[str]:
    """Load `weights` (a path, or "imagenet") into `model`, with errors that name the file.

    `new_head=True` (fine-tuning) leaves the classifier at its initial values when its shape differs
    from the source's (another class count) or the source has none. Returns the names of the layers
    not loaded (the classifier in that case), [] otherwise.
    """
    path = resolve_weights(weights, spec=spec)
    if path.endswith(".weights.h5") and not new_head:
        _load_weights_file(model, path)
        return []
    arrays, source = source_arrays(model, path, spec)
    skipped = _mismatched_head(model, arrays) if new_head else []
    assign_by_name(model, arrays, source, skip=skipped)
    return skipped


def resolve_weights(weights: str | os.PathLike, label: str = "weights", spec: NetSpec | None = None) -> str:
    """"imagenet" (also for timm's tags: "pycls_in1k", "regnety_006.pycls_in1k"), or the weights file
    that `weights` names: a file, or a run directory's newest `*.keras` (training writes
    model_dir/model.keras), else its newest `*.weights.h5`.

    `label` names the argument in errors (the CLIs pass "--weights"); with `spec`, a tagged name must
    name that network's weights.
    """
    if isinstance(weights, str) and not os.path.exists(weights):
        weights = _tag_as_imagenet(weights, label, spec)
    if isinstance(weights, str) and (weights == "imagenet" or _preset(weights) is not None):
        return weights
    path = os.fspath(weights)
    suffixes = KERAS_SUFFIXES + CHECKPOINT_SUFFIXES
    if os.path.isfile(path):
        if not path.lower().endswith(suffixes):
            raise WeightsError(f"Unsupported weights file {label}={path!r}: expected a file ending in "
                               ".keras or .weights.h5, a "
                               f"reference checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}), 'imagenet' or a "
                               "run directory")
        return path
    if not os.path.isdir(path):
        raise WeightsError(f"{label}={path!r} does not exist; expected 'imagenet', a run directory or a "
                           f"file ending in {', '.join(suffixes)}")
    for suffix in (".keras", ".weights.h5"):
        found = [os.path.join(root, name) for root, dirs, files in os.walk(path)
                 for name in files if name.endswith(suffix) and not name.startswith(".")
                 and not any(part.startswith(".") for part in os.path.relpath(root, path).split(os.sep)
                             if part != ".")]
        if found:
            return max(found, key=os.path.getmtime)
    raise WeightsError(f"{label}={path!r} is a directory without any *.keras or *.weights.h5 file; "
                       "pass a training --model_dir (it holds model.keras) or the file itself")


def _tag_as_imagenet(weights: str, label: str, spec: NetSpec | None) -> str:
    """"imagenet" for a timm tag or tagged name of the reference weights, the tagged name for another
    row of the presets table (checked against `spec` when given)."""
    from keras_regnet.pretrained import tags as weight_tags

    if spec is not None:
        return str(weight_tags.canonical_weights(weights, spec))
    if weights == weight_tags.DEFAULT_TAG:
        return "imagenet"
    try:
        found = weight_tags.resolve_tagged(weights, label)
    except ValueError as err:
        raise WeightsError(str(err)) from err
    if found is None:
        return weights
    return "imagenet" if found[1].tag == weight_tags.DEFAULT_TAG else found[1].name


def _preset(weights: str) -> Any:
    """The presets row a resolved `weights` string names (not "imagenet"), else None."""
    from keras_regnet.pretrained.tags import preset_named

    return preset_named(weights)


def class_names_for(weights: str | None, classes: int) -> list[str] | None:
    """Class names of resolved `weights`: ImageNet's for "imagenet", else the class_names.json that
    training writes beside model.keras (None when there is none)."""
    if weights == "imagenet":
        from keras_regnet.imagenet_utils import imagenet_classes

        return [name for _, name in imagenet_classes()]
    if not weights:
        return None
    candidate = os.path.join(os.path.dirname(os.path.abspath(weights)), CLASS_NAMES_FILE)
    if not os.path.isfile(candidate):
        return None
    with open(candidate, encoding="utf-8") as f:
        names = json.load(f)
    if not isinstance(names, list) or len(names) != classes:
        raise WeightsError(f"{candidate} lists {len(names) if isinstance(names, list) else 'no'} class names "
                           f"but the model has {classes} classes")
    return [str(n) for n in names]


def source_arrays(model: Any, weights: str, spec: NetSpec) -> tuple[dict[str, list[np.ndarray]], str]:
    """(arrays keyed by layer name, a label for errors) of a weights source, for `model`."""
    if weights == "imagenet":
        from keras_regnet.pretrained.cache import imagenet_arrays
        from keras_regnet.pretrained.tags import zoo_entry_for

        return imagenet_arrays(zoo_entry_for(spec).name), "the ImageNet weights"
    preset = _preset(weights)
    if preset is not None:
        from keras_regnet.pretrained.cache import preset_arrays

        return preset_arrays(preset), f"the {preset.name} weights"
    if weights.endswith(".keras"):
        import keras

        return layer_arrays(keras.saving.load_model(weights, compile=False)), weights
    if weights.endswith(".weights.h5"):
        return _weights_file_arrays(model, weights), weights
    if is_checkpoint_path(weights):
        from keras_regnet.pretrained.to_keras import convert_state_dict

        state = read_state_dict(weights)
        include_top = CLASSIFIER in _layer_names(model) and "head.fc.weight" in state
        return convert_state_dict(state, spec, include_top=include_top, source=weights), weights
    raise WeightsError(
        f"Unsupported weights file {weights!r}: expected 'imagenet' or a path ending in "
        f"{', '.join(KERAS_SUFFIXES + CHECKPOINT_SUFFIXES)}"
    )


def _layer_names(model: Any) -> set[str]:
    return {layer.name for layer in model.layers}


def _mismatched_head(model: Any, arrays: dict[str, list[np.ndarray]]) -> list[str]:
    """[CLASSIFIER] when the model's classifier cannot take the source's (absent, or another shape)."""
    if CLASSIFIER not in _layer_names(model):
        return []
    theirs = arrays.get(CLASSIFIER)
    ours = [tuple(w.shape) for w in model.get_layer(CLASSIFIER).weights]
    if theirs is None or [tuple(np.shape(v)) for v in theirs] != ours:
        return [CLASSIFIER]
    return []


def _weights_file_arrays(model: Any, path: str) -> dict[str, list[np.ndarray]]:
    """A `.weights.h5` file's arrays by layer name, read into a same-architecture clone of `model`
    whose classifier takes the file's class count (used for fine-tuning with another head)."""
    import h5py
    import keras

    try:
        with h5py.File(path, "r") as f:
            kernels = []
            f.visititems(lambda name, obj: kernels.append(obj.shape) if isinstance(obj, h5py.Dataset)
                         and len(obj.shape) == 2 and "/dense" in f"/{name}" else None)
    except OSError as err:
        raise WeightsError(f"weights file {path!r} is not a readable HDF5 file: {err}") from err
    clone = keras.models.clone_model(model, clone_function=_head_resizer(kernels[0][1] if kernels else None))
    _load_weights_file(clone, path)
    return layer_arrays(clone)


def _head_resizer(classes: int | None) -> Any:
    """clone_model hook: the classifier gets `classes` units; other layers are cloned as they are."""
    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name == CLASSIFIER and classes is not None:
            config["units"] = classes
        return layer.__class__.from_config(config)

    return clone


def _load_weights_file(model: Any, path: str) -> None:
    """model.load_weights, but a mismatch (which Keras only warns about) is a ValueError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except ValueError as err:
            raise WeightsError(f"weights file {path!r} does not match model {model.name!r}: {err}") from err
    problems = [str(w.message) for w in caught if "load" in str(w.message).lower()]
    if problems:
        first = problems[0].splitlines()[0][:300]
        raise WeightsError(f"weights file {path!r} does not match model {model.name!r}: {first}")
