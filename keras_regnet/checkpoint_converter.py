"""The reference-checkpoint converter (library; its CLI is `python -m keras_regnet.convert`): a reference checkpoint -> a Keras file.

    python -m keras_regnet.convert --model regnety_600mf --checkpoint model.safetensors
        --output regnety_600mf.weights.h5   (one command line; flags: --helpfull)
    python -m keras_regnet.convert --model regnety_006.pycls_in1k --checkpoint imagenet
        --to_preset regnety_600mf_preset    (a keras-hub preset; needs the [hub] extra)

The conversion itself (layer map, layouts, BGR stem flip) is keras_regnet.pretrained.to_keras, re-exported
here; this module adds what needs a built model: writing `.weights.h5` / `.keras` files.
`--model` goes through keras_regnet.resolve, the resolver every CLI uses.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from keras_regnet.pretrained.state_dict import read_state_dict
from keras_regnet.errors import WeightsError
from keras_regnet.resolve import resolve_spec
from keras_regnet.spec import NetSpec
from keras_regnet.pretrained.to_keras import (  # noqa: F401  (the converter's public names)
    LayerMap,
    assign,
    convert_state_dict,
    layer_map,
    load_checkpoint,
    load_state_dict,
)


def save_weights_atomic(model: Any, path: str | os.PathLike) -> str:
    """Write `model`'s weights (.weights.h5) or whole model (.keras) to `path` via temp + rename."""
    path = os.fspath(path)
    suffix = ".weights.h5" if path.endswith(".weights.h5") else ".keras" if path.endswith(".keras") else None
    if suffix is None:
        raise WeightsError(f"output {path!r} must end in .weights.h5 or .keras")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        if suffix == ".keras":
            model.save(tmp, overwrite=True)
        else:
            model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def convert_checkpoint(model: str | NetSpec, checkpoint: str | os.PathLike, output: str | os.PathLike,
                       *, naming: str | None = None, bgr_to_rgb: bool | None = None) -> str:
    """Convert a reference checkpoint (or "imagenet") for `model` (any model argument) into a Keras file.

    The classifier size is taken from the checkpoint's head.fc; the file holds the full model
    (include_top=True, no preprocessing layer). Returns the output path.
    """
    keras_model, _ = converted_model(model, checkpoint, naming=naming, bgr_to_rgb=bgr_to_rgb)
    return save_weights_atomic(keras_model, output)


def converted_model(model: str | NetSpec, checkpoint: str | os.PathLike, *, naming: str | None = None,
                    bgr_to_rgb: bool | None = None, include_preprocessing: bool = False) -> tuple[Any, NetSpec]:
    """(Keras model with the checkpoint's weights and its softmax classifier, its NetSpec).

    `checkpoint` is a reference checkpoint file, "imagenet" or timm's tagged name of the weights.
    """
    from keras_regnet.model import build

    spec = resolve_spec(model)
    path = os.fspath(checkpoint)
    if not os.path.exists(path):  # "imagenet" or a tag: the cached reference weights of a zoo model
        keras_model = build(spec, include_top=True, weights=path, classifier_activation="softmax",
                            include_preprocessing=include_preprocessing)
        return keras_model, spec
    state = read_state_dict(path)
    head = state.get("head.fc.weight")
    classes = int(head.shape[0]) if head is not None and head.ndim == 2 else 1000
    keras_model = build(spec, include_top=True, weights=None, classes=classes,
                        classifier_activation="softmax", include_preprocessing=include_preprocessing)
    load_state_dict(keras_model, state, spec, naming=naming, bgr_to_rgb=bgr_to_rgb, source=path)
    return keras_model, spec

