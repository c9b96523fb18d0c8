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


@keras.saving.register_keras_serializable(package="keras_regnet")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization whose training statistics come from sub-batches of `ghost_batch_size`.

    Ghost batch normalization (Hoffer et al., 2017): in training each consecutive group of
    `ghost_batch_size` examples is normalized by its own mean and variance, and the moving
    statistics follow the mean of the groups' statistics. It makes the normalization batch a
    choice rather than a consequence of the hardware (the paper normalizes over 128 images per GPU
    whatever the global batch). With one group it is plain BatchNormalization; inference is too.
    The batch must be a multiple of `ghost_batch_size`.
    """

    def __init__(self, ghost_batch_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(ghost_batch_size, bool) or not isinstance(ghost_batch_size, int) or ghost_batch_size < 1:
            raise ValueError(f"ghost_batch_size must be a positive integer, got {ghost_batch_size!r}")
        self.ghost_batch_size = ghost_batch_size

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable) or mask is not None or self.renorm or self.synchronized:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        shape = ops.shape(x)
        groups = ops.reshape(x, (-1, self.ghost_batch_size, *shape[1:]))
        reduce = [a + 1 for a in self._reduction_axes]  # the input's axes, shifted by the group axis
        mean, variance = ops.moments(groups, axes=reduce, keepdims=True)
        channels = [1] * (len(inputs.shape) + 1)
        channels[self.axis + 1 if self.axis >= 0 else self.axis] = inputs.shape[self.axis]
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * ops.reshape(ops.cast(self.gamma, x.dtype), channels)
        offset = -mean * scale
        if self.center:
            offset = offset + ops.reshape(ops.cast(self.beta, x.dtype), channels)
        outputs = ops.reshape(groups * scale + offset, shape)
        batch_mean = ops.reshape(ops.mean(mean, axis=0), ops.shape(self.moving_mean))
        batch_variance = ops.reshape(ops.mean(variance, axis=0), ops.shape(self.moving_variance))
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + ops.cast(batch_mean, self.moving_mean.dtype) * (1 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + ops.cast(batch_variance, self.moving_variance.dtype) * (1 - momentum))
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ghost_batch_size": self.ghost_batch_size}
