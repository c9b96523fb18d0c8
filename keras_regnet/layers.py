"""Custom Keras layers: a grouped convolution with the fastest kernel per backend, and the ImageNet
input normalization.

Keras 3's stock `Conv2D(groups>1)` on the TensorFlow backend always routes through an XLA-compiled
function (its CPU backward pass is 1-2 orders of magnitude slower than TensorFlow's native grouped
convolution, and it puts XLA-only functions into SavedModels). `GroupedConv2D` keeps the stock
layer's weights, config and maths, and calls `tf.nn.convolution` directly on TensorFlow.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB


@keras.saving.register_keras_serializable(package="keras_regnet")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose grouped case uses the backend's native kernel (no XLA on TF)."""

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        if self.groups > 1 and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if self.data_format != "channels_last":
                raise ValueError(
                    f"GroupedConv2D supports data_format='channels_last' only on TensorFlow, "
                    f"got {self.data_format!r}"
                )
            return tf.nn.convolution(
                inputs,
                kernel,
                strides=list(self.strides),
                padding=self.padding.upper(),
                dilations=list(self.dilation_rate),
                data_format="NHWC",
            )
        return super().convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="keras_regnet")
class ImageNetNormalization(keras.layers.Layer):
    """RGB 0-255 -> (x / 255 - mean) / std with the ImageNet statistics; holds no weights."""

    def __init__(
        self,
        mean: Sequence[float] = tuple(IMAGENET_MEAN_RGB.tolist()),
        std: Sequence[float] = tuple(IMAGENET_STD_RGB.tolist()),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in self.std], dtype=self.compute_dtype)
        shift = ops.convert_to_tensor([m / s for m, s in zip(self.mean, self.std)], dtype=self.compute_dtype)
        return x * scale - shift

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}
