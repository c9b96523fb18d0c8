"""model_dir/model.keras: the trained network saved as a classifier, with the builders' softmax head.

Training runs on logits (the loss takes them); the file users load returns probabilities, as
`keras_regnet.RegNetY600MF()` and keras.applications do, so `decode_predictions` and `argmax` on its
output mean what they say. Readers of weights (evaluation, export, fine-tuning) take the layers' arrays
and are unaffected. Written to a temporary file, then renamed.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_regnet import fileio
from keras_regnet.layer_records import CLASSIFIER
from training.core.write_guard import guarded_write


def at_input_size(model: keras.Model, size: int | None) -> keras.Model:
    """`model` itself, or the same network and weights rebuilt to take size x size images (--eval_image_size)."""
    if size is None or tuple(model.input_shape[1:3]) == (size, size):
        return model
    config = model.get_config()
    config["layers"][0]["config"]["batch_shape"] = (None, size, size, model.input_shape[-1])
    sized = model.__class__.from_config(config)
    sized.set_weights(model.get_weights())
    return sized


def save_classifier(model: keras.Model, model_dir: str, input_size: int | None = None) -> str:
    """Save `model` (a logits network) to model_dir/model.keras with a softmax head; return the path.
    With `input_size` the saved model takes input_size x input_size images (the run's eval size)."""
    model = at_input_size(model, input_size)
    path = fileio.join(model_dir, "model.keras")
    tmp = fileio.join(model_dir, ".tmp-model.keras")
    head = model.get_layer(CLASSIFIER) if any(layer.name == CLASSIFIER for layer in model.layers) else None
    linear: Any = head.activation if head is not None else None
    if head is not None:
        head.activation = keras.activations.softmax
    needed = sum(int(w.nbytes) for w in model.get_weights())
    try:
        with guarded_write("the model", path, needed, cleanup=lambda: fileio.exists(tmp) and fileio.remove(tmp)):
            model.save(tmp)
            fileio.replace(tmp, path)
    finally:
        if head is not None:
            head.activation = linear
    return path
