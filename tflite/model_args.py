"""--weights resolution for a resolved --model spec: the checkpoint file, its classes, and the float Keras model.

`--weights` takes what every weights= argument takes (keras_regnet.pretrained.load.resolve_weights):
  * `imagenet`: the reference's ImageNet weights of a zoo model (1000 classes), also written as
    timm's tag (`pycls_in1k`) or tagged name (`regnety_006.pycls_in1k`),
  * a reference checkpoint (`.safetensors`, `.npz`, torch `.pth` with torch installed),
  * a `.keras` file (a whole saved model; its weights are copied by layer name),
  * a `.weights.h5` file (weights of a model built from the same spec),
  * a run directory, e.g. a training `--model_dir`: its own `model.keras`, else the newest `*.keras`
    (then `*.weights.h5`) directly in it; sub-folders are never searched, and a folder of runs is an
    error listing them. TensorFlow object checkpoints (`ckpt-N.index`) are not read: they only make
    sense with the training loop's object graph; export the `.keras` model instead.
Every file is checked against its suffix first (keras_regnet.pretrained.file_check): a corrupt or
truncated file is one WeightsError line naming it.
The float model is always rebuilt from the spec with logits output and the RGB 0-255 input
normalization inside, so every export shares one input contract. Class names come from the
`class_names.json` that training writes beside `model.keras`, or ImageNet's for `imagenet`.
"""

from __future__ import annotations

from typing import Any

from keras_regnet.pretrained.state_dict import is_checkpoint_path, read_state_dict
from keras_regnet.errors import WeightsError
from keras_regnet.spec import NetSpec
from keras_regnet.layer_records import CLASSIFIER


def resolve_weights(path: str, spec: NetSpec | None = None) -> str:
    """The weights `--weights` names: imagenet (or timm's tagged name of `spec`'s weights), a file,
    or a run directory's model.keras."""
    from keras_regnet.pretrained.load import resolve_weights as resolve

    return resolve(path, label="--weights", spec=spec)


def class_names(path: str | None, classes: int) -> list[str] | None:
    """Names of the classes: ImageNet's for imagenet, else the class_names.json beside the file."""
    from keras_regnet.pretrained.load import class_names_for

    return class_names_for(path, classes)


def checkpoint_classes(path: str) -> int:
    """Number of classes of the classifier layer (`predictions`) stored in a checkpoint file."""
    if path == "imagenet":
        return 1000
    if is_checkpoint_path(path):
        head = read_state_dict(path).get("head.fc.weight")
        if head is None or head.ndim != 2:
            raise WeightsError(f"checkpoint {path!r} has no classifier 'head.fc.weight'; pass --classes")
        return int(head.shape[0])
    if path.endswith(".keras"):
        import keras

        import keras_regnet.layers  # noqa: F401  (registers the custom layers)

        try:
            saved = keras.saving.load_model(path, compile=False)
            return int(saved.get_layer(CLASSIFIER).units)
        except ValueError as err:
            raise WeightsError(f"checkpoint {path!r} has no usable {CLASSIFIER!r} layer: {err}") from err
    import h5py

    # Keras 3 weight files name layers by class ("layers/dense/vars/0"); a RegNet has one Dense.
    shapes: list[tuple[int, ...]] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: shapes.append(obj.shape)
                     if isinstance(obj, h5py.Dataset) and len(obj.shape) == 2
                     and (CLASSIFIER in name or "/dense/" in f"/{name}") else None)
    if not shapes:
        raise WeightsError(f"checkpoint {path!r} has no {CLASSIFIER!r} kernel; was it saved with include_top=True?")
    return int(shapes[0][1])


def load_float_model(spec: NetSpec, weights: str | None, classes: int | None = None) -> tuple[Any, str | None]:
    """(Keras 3 logits model with weights, resolved checkpoint path); errors name file and model."""
    from keras_regnet.model import build
    from keras_regnet.pretrained.load import load_into

    path = resolve_weights(weights, spec) if weights else None
    if classes is None:
        classes = checkpoint_classes(path) if path else 1000
    model = build(spec, input_shape=(None, None, 3), classes=classes, classifier_activation=None,
                  include_preprocessing=True)
    if path is None:
        return model, None
    try:
        load_into(model, path, spec)
    except ValueError as err:
        raise WeightsError(
            f"checkpoint {path!r} does not match the expected model {spec.name!r} "
            f"({classes} classes, stage widths {spec.widths}, depths {spec.depths}): {err}"
        ) from err
    return model, path
