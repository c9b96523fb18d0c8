"""`RegNetBackbone`: any NetSpec as a keras-hub Backbone (last feature map out, `pyramid_outputs` P1-P5)."""

from __future__ import annotations

from typing import Any

import keras
from keras_hub.models import Backbone

from keras_regnet.errors import ConfigError
from keras_regnet.model import build
from keras_regnet.resolve import resolve_spec
from keras_regnet.spec import NetSpec


@keras.saving.register_keras_serializable(package="keras_regnet")
class RegNetBackbone(Backbone):
    """The RegNet/AnyNet body of `spec` (a NetSpec, its dict or any name `resolve_model` takes), keras-hub style: it takes images
    normalised by the image converter (`include_preprocessing=False`, the keras-hub convention) and
    returns the last stage's feature map; the spec's parameters are its config.

    `output_stride` (None, 8, 16 or 32) dilates the stages past that stride, as `build`'s argument
    (e.g. 16 for DeepLabV3). Its default name is keras-hub's, the class name in snake case
    ("reg_net_backbone"); the only other keyword arguments are Keras' `name` and `trainable`.
    """

    MODEL_KWARGS = ("name", "trainable")  # what keras-hub's Backbone / Keras' Model take besides dtype

    def __init__(self, spec: NetSpec | dict | str, image_shape: tuple = (None, None, 3),
                 include_preprocessing: bool = False, bn_epsilon: float = 1e-5, bn_momentum: float = 0.9,
                 output_stride: int | None = None, dtype: Any = None, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(self.MODEL_KWARGS))
        if unknown:
            raise ConfigError(f"RegNetBackbone got unknown keyword arguments {unknown}; it takes spec, image_shape, "
                              f"include_preprocessing, bn_epsilon, bn_momentum, output_stride, dtype, name, trainable")
        spec = resolve_spec(spec, label="spec")
        body = build(spec, include_top=False, input_shape=tuple(image_shape),
                     include_preprocessing=include_preprocessing, name=spec.name.replace(".", "_"),
                     bn_epsilon=bn_epsilon, bn_momentum=bn_momentum, output_stride=output_stride)
        super().__init__(inputs=body.input, outputs=body.output, dtype=dtype, **kwargs)
        self.spec = spec
        self.image_shape = tuple(image_shape)
        self.include_preprocessing = include_preprocessing
        self.bn_epsilon, self.bn_momentum = bn_epsilon, bn_momentum
        self.output_stride = output_stride
        self.pyramid_outputs = body.pyramid_outputs

    @classmethod
    def from_preset(cls, preset: str, load_weights: bool = True, **kwargs: Any) -> Any:
        """keras-hub's from_preset, plus timm's RegNet checkpoints ("hf://timm/regnety_006.pycls_in1k")."""
        from keras_regnet.hub.timm_loader import is_timm_preset, load_timm_preset

        if is_timm_preset(preset):
            return load_timm_preset(preset, cls, load_weights=load_weights)
        return super().from_preset(preset, load_weights=load_weights, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """keras-hub's config.json: the spec as plain data plus the build options."""
        config = super().get_config()
        config.update({"spec": self.spec.to_dict(), "image_shape": list(self.image_shape),
                       "include_preprocessing": self.include_preprocessing,
                       "bn_epsilon": self.bn_epsilon, "bn_momentum": self.bn_momentum,
                       "output_stride": self.output_stride})
        return config
