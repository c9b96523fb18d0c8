"""The training model: built from a resolved NetSpec (keras_regnet.resolve_model), checked against --image_size."""

from __future__ import annotations

from typing import Any

from keras_regnet.errors import ConfigError
from keras_regnet.spec import NetSpec

__all__ = ["build_model", "check_image_size"]


def check_image_size(spec: NetSpec, image_size: int, flag: str = "--image_size") -> None:
    """ValueError naming `flag` when `image_size` is smaller than the network's total stride."""
    if image_size < spec.total_stride:
        raise ConfigError(f"{flag}={image_size} is too small for --model={spec.name!r} (total stride "
                          f"{spec.total_stride}); use {flag} >= {spec.total_stride}")


def build_model(spec: NetSpec, image_size: int | None, num_classes: int, *, weights: Any = None,
                zero_init_final_gamma: bool = False, sync_bn: bool = False, new_head: bool = False,
                freeze: str = "none", log: Any = print, bn_batch: int | None = None,
                drop_path_rate: float = 0.0) -> Any:
    """The Keras model used for training: RGB 0-255 in (preprocessing inside), logits out.

    new_head=True (fine-tuning): `weights` fill the backbone and the classifier is re-initialised
    when the class count differs (logged through `log`); `freeze` as --freeze (training.core.finetune).
    `bn_batch` builds ghost batch normalization over sub-batches of that many images; `drop_path_rate`
    stochastic depth (keras_regnet.build). `image_size` None: any input size (train and eval sizes differ).
    """
    from keras_regnet.model import build
    from training.core import finetune

    model = build(spec, weights=None if new_head else weights, input_shape=(image_size, image_size, 3),
                  classes=num_classes, classifier_activation=None, include_preprocessing=True,
                  zero_init_final_gamma=zero_init_final_gamma, bn_batch=bn_batch,
                  drop_path_rate=drop_path_rate)
    if new_head and weights is not None:
        finetune.load_pretrained(model, spec, weights, log)
    finetune.apply_freeze(model, freeze, len(spec.stages))
    if sync_bn:
        import keras

        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True  # read at call time: global batch statistics
    return model
