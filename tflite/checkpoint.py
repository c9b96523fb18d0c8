"""--model and --weights resolution: the spec, the checkpoint file, and the float Keras model.

`--weights` may be:
  * a `.keras` file (a whole saved model; its weights are copied by layer name),
  * a `.weights.h5` file (weights of a model built from the same spec),
  * a directory, e.g. a training `--model_dir`: the newest `*.keras` file found in it or its
    sub-folders (training writes `model_dir/model.keras`); if there is none, the newest
    `*.weights.h5`. TensorFlow object checkpoints (`ckpt-N.index`) are not read: they only make
    sense with the training loop's object graph; export the `.keras` model instead.
The float model is always rebuilt from the spec with logits output and the RGB 0-255 input
normalization inside, so every export shares one input contract.
"""

from __future__ import annotations

import os
from typing import Any

from keras_regnet.resolve import resolve_model
from keras_regnet.spec import NetSpec

WEIGHT_SUFFIXES = (".keras", ".weights.h5")


def resolve_spec(model: str) -> NetSpec:
    """A NetSpec from any model argument (keras_regnet.resolve: the resolver every CLI uses)."""
    return resolve_model(model, label="--model")[0]


def resolve_weights(path: str) -> str:
    """The checkpoint file that `--weights` names (see the module docstring for directories)."""
    if not os.path.exists(path):
        raise ValueError(f"--weights={path!r} does not exist; expected a .keras or .weights.h5 file or a model_dir")
    if os.path.isfile(path):
        if not path.endswith(WEIGHT_SUFFIXES):
            raise ValueError(f"--weights={path!r}: expected a file ending in .keras or .weights.h5")
        return path
    found: dict[str, list[str]] = {suffix: [] for suffix in WEIGHT_SUFFIXES}
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            for suffix in WEIGHT_SUFFIXES:
                if name.endswith(suffix) and not name.startswith("."):
                    found[suffix].append(os.path.join(root, name))
    for suffix in WEIGHT_SUFFIXES:
        if found[suffix]:
            return max(found[suffix], key=os.path.getmtime)
    raise ValueError(
        f"--weights={path!r} is a directory without any *.keras or *.weights.h5 file; train with "
        "training.main (it writes model_dir/model.keras) or pass the file itself"
    )


def checkpoint_classes(path: str) -> int:
    """Number of classes of the `predictions` layer stored in a checkpoint file."""
    if path.endswith(".keras"):
        import keras

        import keras_regnet.layers  # noqa: F401  (registers the custom layers)

        try:
            saved = keras.saving.load_model(path, compile=False)
            return int(saved.get_layer("predictions").units)
        except ValueError as err:
            raise ValueError(f"checkpoint {path!r} has no usable 'predictions' layer: {err}") from None
    import h5py

    # Keras 3 weight files name layers by class ("layers/dense/vars/0"); a RegNet has one Dense.
    shapes: list[tuple[int, ...]] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: shapes.append(obj.shape)
                     if isinstance(obj, h5py.Dataset) and len(obj.shape) == 2
                     and ("predictions" in name or "/dense/" in f"/{name}") else None)
    if not shapes:
        raise ValueError(f"checkpoint {path!r} has no 'predictions' kernel; was it saved with include_top=True?")
    return int(shapes[0][1])


def load_float_model(spec: NetSpec, weights: str | None, classes: int | None = None) -> tuple[Any, str | None]:
    """(Keras 3 logits model with weights, resolved checkpoint path); errors name file and model."""
    from keras_regnet.model import build
    from keras_regnet.weights import copy_weights_by_name

    path = resolve_weights(weights) if weights else None
    if classes is None:
        classes = checkpoint_classes(path) if path else 1000
    model = build(spec, input_shape=(None, None, 3), classes=classes, classifier_activation=None,
                  include_preprocessing=True)
    if path is None:
        return model, None
    try:
        if path.endswith(".keras"):
            import keras

            copy_weights_by_name(keras.saving.load_model(path, compile=False), model, source=path)
        else:
            model.load_weights(path)
    except ValueError as err:
        raise ValueError(
            f"checkpoint {path!r} does not match the expected model {spec.name!r} "
            f"({classes} classes, stage widths {spec.widths}, depths {spec.depths}): {err}"
        ) from None
    return model, path
