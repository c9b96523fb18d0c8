"""--model resolution (zoo name, built-in small RegNet, or NetSpec JSON file) and model building."""

from __future__ import annotations

import json
import os
from typing import Any

from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import NetSpec
from keras_regnet.zoo import ZooEntry, get_entry, list_models

from training import fileio

# Small RegNets for the embedded dataset. regnety_digits comes out of the RegNet rule
# (d=6, w0=24, wa=12, wm=2, g=8, SE 0.25): stages of widths 24/48/96 and depths 1/3/2, about
# 4.3 M multiply-adds at 32x32 with stem stride 1 (the zoo stems stride 2, too coarse for 32 px).
BUILTIN = {
    "regnety_digits": RegNetParams(depth=6, w0=24, wa=12.0, wm=2.0, group_width=8,
                                   se_ratio=0.25, stem_width=16, stem_stride=1),
    "regnetx_digits": RegNetParams(depth=6, w0=24, wa=12.0, wm=2.0, group_width=8,
                                   stem_width=16, stem_stride=1),
}


def resolve_model(model: Any) -> tuple[NetSpec, ZooEntry | None]:
    """A NetSpec (+ its zoo entry for the recipe) from a spec, a dict, a name or a JSON path."""
    if isinstance(model, NetSpec):
        return model.validate(), None
    if isinstance(model, dict):
        return NetSpec.from_dict(model), None
    if not isinstance(model, str) or not model:
        raise ValueError(f"--model must be a zoo name, a built-in name or a JSON spec file, got {model!r}")
    if model in BUILTIN:
        return BUILTIN[model].to_spec(name=model), None
    if model.lower().endswith(".json") or os.path.sep in model:
        return _spec_from_file(model), None
    try:
        entry = get_entry(model)
    except ValueError:
        raise ValueError(
            f"--model={model!r} is unknown; use a zoo name ({', '.join(list_models())}), "
            f"a built-in ({', '.join(BUILTIN)}) or a NetSpec JSON file"
        ) from None
    return entry.spec(), entry


def check_image_size(spec: NetSpec, image_size: int) -> None:
    """ValueError naming --image_size when it is smaller than the network's total stride."""
    if image_size < spec.total_stride:
        raise ValueError(f"--image_size={image_size} is too small for --model={spec.name!r} (total stride "
                         f"{spec.total_stride}); use --image_size >= {spec.total_stride}")


def _spec_from_file(path: str) -> NetSpec:
    if not fileio.isfile(path):
        raise ValueError(f"--model={path!r}: no such JSON spec file")
    try:
        data = fileio.read_json(path)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--model={path!r} is not a readable JSON file: {e}") from None
    try:
        return NetSpec.from_dict(data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--model={path!r} is not a valid NetSpec: {e}") from None


def build_model(spec: NetSpec, image_size: int, num_classes: int, *, weights: Any = None,
                zero_init_final_gamma: bool = False, sync_bn: bool = False,
                bn_batch: int | None = None) -> Any:
    """The Keras model used for training: RGB 0-255 in (preprocessing inside), logits out.

    `bn_batch` builds ghost batch normalization over sub-batches of that many images.
    """
    from keras_regnet.model import build

    model = build(spec, weights=weights, input_shape=(image_size, image_size, 3),
                  classes=num_classes, classifier_activation=None, include_preprocessing=True,
                  zero_init_final_gamma=zero_init_final_gamma, bn_batch=bn_batch)
    if sync_bn:
        import keras

        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True  # read at call time: global batch statistics
    return model
