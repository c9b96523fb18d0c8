"""keras-hub task classes for RegNet: the image converter (the weights' eval crop and normalisation),
the classifier preprocessor and `RegNetImageClassifier` (backbone + average pool + dense `predictions`)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras_hub.layers import ImageConverter
from keras_hub.models import ImageClassifier, ImageClassifierPreprocessor

from keras_regnet.errors import ConfigError
from keras_regnet.hub.backbone import RegNetBackbone
from keras_regnet.presets import DEFAULT, EvalSettings


@keras.saving.register_keras_serializable(package="keras_regnet")
class RegNetImageConverter(ImageConverter):
    """keras-hub's ImageConverter plus the eval centre crop: keep the central `crop_fraction` of the
    shorter side (0.875: the 224 of 256 pycls scores), then resize and normalise as keras-hub does."""

    backbone_cls = RegNetBackbone

    def __init__(self, crop_fraction: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 < crop_fraction <= 1:
            raise ConfigError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")
        self.crop_fraction = float(crop_fraction)

    def call(self, inputs: Any) -> Any:
        if self.crop_fraction < 1.0:
            inputs = self._center_crop(inputs)
        return super().call(inputs)

    def _center_crop(self, images: Any) -> Any:
        """The central square of round(shorter side x crop_fraction) pixels, offset rounded up as pycls."""
        if self._use_tf_workflow():
            import tensorflow as tf

            shape = tf.shape(images)
            h, w = shape[-3], shape[-2]
            side = tf.cast(tf.round(tf.cast(tf.minimum(h, w), tf.float32) * self.crop_fraction), tf.int32)
        else:
            h, w = ops.shape(images)[-3], ops.shape(images)[-2]
            side = int(round(min(h, w) * self.crop_fraction))
        top, left = (h - side + 1) // 2, (w - side + 1) // 2
        return images[..., top:top + side, left:left + side, :]

    def get_config(self) -> dict[str, Any]:
        """ImageConverter's config plus the crop fraction."""
        return {**super().get_config(), "crop_fraction": self.crop_fraction}

    @classmethod
    def for_settings(cls, settings: EvalSettings = DEFAULT, image_size: int | None = None) -> "RegNetImageConverter":
        """The converter that prepares images as `settings` say (size, crop, interpolation, mean/std)."""
        size = image_size or settings.input_size
        return cls(image_size=(size, size), crop_fraction=settings.crop_fraction,
                   interpolation=settings.interpolation,
                   scale=[1.0 / (255.0 * s) for s in settings.std],
                   offset=[-m / s for m, s in zip(settings.mean, settings.std)])


@keras.saving.register_keras_serializable(package="keras_regnet")
class RegNetImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """keras-hub's classifier preprocessor with the RegNet image converter."""

    backbone_cls = RegNetBackbone
    image_converter_cls = RegNetImageConverter


@keras.saving.register_keras_serializable(package="keras_regnet")
class RegNetImageClassifier(ImageClassifier):
    """keras-hub ImageClassifier over a RegNetBackbone; its dense layer is named `predictions`, as in
    keras_regnet's own models, and outputs logits (keras-hub's default activation)."""

    backbone_cls = RegNetBackbone
    preprocessor_cls = RegNetImageClassifierPreprocessor

    @classmethod
    def from_preset(cls, preset: str, load_weights: bool = True, **kwargs: Any) -> Any:
        """keras-hub's from_preset, plus timm's RegNet checkpoints ("hf://timm/regnety_006.pycls_in1k")."""
        from keras_regnet.hub.timm_loader import is_timm_preset, load_timm_preset

        if is_timm_preset(preset):
            return load_timm_preset(preset, cls, load_weights=load_weights)
        return super().from_preset(preset, load_weights=load_weights, **kwargs)
