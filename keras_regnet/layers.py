"""Custom Keras layers: a grouped convolution with the fastest kernel per backend, batch normalization
with TensorFlow's fused training kernel, and the ImageNet input normalization.

Keras 3's stock `Conv2D(groups>1)` on the TensorFlow backend always routes through an XLA-compiled
function (its CPU backward pass is 1-2 orders of magnitude slower than TensorFlow's native grouped
convolution, and it puts XLA-only functions into SavedModels). `GroupedConv2D` keeps the stock
layer's weights, config and maths, and calls `tf.nn.convolution` directly on TensorFlow, with
per-group gradients where TensorFlow's kernel has none (keras_regnet/grouped_gradient.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from keras_regnet.errors import ConfigError
from keras_regnet.grouped_gradient import grouped_convolution
from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB


@keras.saving.register_keras_serializable(package="keras_regnet")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose grouped case uses the backend's native kernel (no XLA on TF)."""

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        if self.groups > 1 and keras.backend.backend() == "tensorflow":
            if self.data_format != "channels_last":
                raise ConfigError(
                    f"GroupedConv2D supports data_format='channels_last' only on TensorFlow, "
                    f"got {self.data_format!r}"
                )
            return grouped_convolution(inputs, kernel, self.strides, self.padding, self.dilation_rate, self.groups)
        if self.groups > 1 and _jax_on_cpu() and self.groups <= BLOCK_DIAGONAL_MAX_GROUPS:
            return ops.conv(inputs, block_diagonal_kernel(kernel, self.groups), strides=self.strides,
                            padding=self.padding, data_format=self.data_format, dilation_rate=self.dilation_rate)
        return super().convolution_op(inputs, kernel)


# XLA's CPU backward pass of a grouped convolution (feature_group_count) is slow: a RegNetY digits train
# step took 1.8 s, 0.27 s with the dense block-diagonal kernel (2 loaded CPU cores, batch 64). The
# dense kernel costs `groups` times the FLOPs, so it is used on JAX's CPU backend for few groups only.
BLOCK_DIAGONAL_MAX_GROUPS = 16


def _jax_on_cpu() -> bool:
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def block_diagonal_kernel(kernel: Any, groups: int) -> Any:
    """A grouped kernel [kh, kw, cin/g, cout] as the equivalent dense one [kh, kw, cin, cout] (zeros off
    the g diagonal blocks): the same convolution, through a dense kernel."""
    kernel = ops.convert_to_tensor(kernel)
    kh, kw, cin_g, cout = kernel.shape
    blocks = ops.reshape(kernel, (kh, kw, cin_g, groups, cout // groups))
    dense = ops.einsum("hwigo,Gg->hwGigo", blocks, ops.eye(groups, dtype=kernel.dtype))
    return ops.reshape(dense, (kh, kw, groups * cin_g, cout))


@keras.saving.register_keras_serializable(package="keras_regnet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` (same weights, config and maths) training with TF's fused kernel.

    Keras 3 computes BN on TensorFlow as separate moments, normalisation and update ops, about ten
    element-wise ops forward and as many backward per layer (27% of a CPU train step of RegNetY-600MF,
    and under `mixed_bfloat16` it also casts every activation to float32 and back). In training on
    TensorFlow, with a 4-D channels-last input, this layer calls `FusedBatchNormV3` instead: one op
    forward and one backward, taking bfloat16/float16 activations with float32 statistics. The moving
    variance is updated with the biased batch variance, as Keras does (the kernel returns the
    Bessel-corrected one). Inference, synchronized BN, dtypes the kernel lacks (float64 activations
    or statistics) and any other case use the Keras code.
    """

    KERNEL_DTYPES = ("float32", "bfloat16", "float16")  # FusedBatchNormV3's x; its statistics are float32

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = int(inputs.shape[-1])
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        empty = tf.constant([], tf.float32)
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        count = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # kernel's unbiased -> Keras' biased
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    def _fusable(self, inputs: Any, mask: Any) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and len(inputs.shape) == 4
                and self.axis in (-1, 3) and not self.renorm and not getattr(self, "synchronized", False)
                and keras.backend.standardize_dtype(inputs.dtype) in self.KERNEL_DTYPES
                and self.moving_mean.dtype == "float32")


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
            raise ConfigError(f"ghost_batch_size must be a positive integer, got {ghost_batch_size!r}")
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


@keras.saving.register_keras_serializable(package="keras_regnet")
class DropPath(keras.layers.Layer):
    """Stochastic depth (Huang et al., 2016) on a residual branch: in training each sample's branch is
    zeroed with probability `rate` and the kept ones scaled by 1 / (1 - rate) (timm's `drop_path`,
    scale_by_keep); identity at inference. The mask is drawn per sample, shared over H, W and channels.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ConfigError(f"DropPath rate must be in [0, 1), got {rate!r}")
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if not training or self.rate == 0.0:
            return inputs
        noise_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        return keras.random.dropout(inputs, self.rate, noise_shape=noise_shape, seed=self.seed_generator)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
