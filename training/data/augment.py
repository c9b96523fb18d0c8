"""Image augmentation as the reference trains ImageNet, on RGB images on the 0-255 scale.

Train: the reference's random-sized crop (`training.data.crop`: area 0.08-1, aspect 3/4-4/3, up
to 10 tries) decoded with `decode_and_crop_jpeg` so only the crop is decoded, horizontal flip,
PCA lighting noise (std 0.1, unclipped as in the reference).
Eval: the reference's `scale_and_center_crop` (`keras_regnet.pretrained.eval_crop`, shared with serving). All randomness is
stateless and seeded per element, so a resumed run sees exactly the images it would have seen.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from keras_regnet.presets import EvalSettings
from keras_regnet.pretrained.eval_crop import decode_and_center_crop
from training.data.crop import DEFAULT_SAMPLER, window_sampler

LIGHTING_STD = 0.1
# AlexNet/pycls PCA of ImageNet RGB pixels (values scaled to [0, 1]); columns are eigenvectors.
EIG_VALS = (0.2175, 0.0188, 0.0045)
EIG_VECS = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


def _decode_any(image_bytes: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_and_random_crop(image_bytes: tf.Tensor, seed: tf.Tensor, crop: str = DEFAULT_SAMPLER) -> tf.Tensor:
    """Decode only a random crop (window from the `crop` sampler) of the image; uint8 [h, w, 3].

    One branch per format (a single `is_jpeg` test): a JPEG's window comes from its header and only
    the window is decoded; other formats are decoded whole and sliced. Same window either way.
    """
    sample = window_sampler(crop)

    def jpeg() -> tf.Tensor:
        window = sample(tf.image.extract_jpeg_shape(image_bytes), seed)
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def other() -> tf.Tensor:
        return decode_then_random_crop(image_bytes, seed, crop)

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def decode_then_random_crop(image_bytes: tf.Tensor, seed: tf.Tensor, crop: str = DEFAULT_SAMPLER) -> tf.Tensor:
    """Same crop as `decode_and_random_crop` but decoding the full image first (benchmark peer)."""
    image = _decode_any(image_bytes)
    window = window_sampler(crop)(tf.shape(image, out_type=tf.int32), seed)
    return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])


def resize(image: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear (half-pixel centres, no antialiasing) to size x size; float32."""
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=False)
    image.set_shape([size, size, 3])
    return image


def add_lighting(image: tf.Tensor, seed: tf.Tensor, lighting_std: float = LIGHTING_STD) -> tf.Tensor:
    """PCA lighting noise: one RGB offset per image, unclipped as in the reference (which adds it
    to the [0, 1] image before normalizing), so values may leave [0, 255] by a few units."""
    if lighting_std <= 0:
        return image
    return add_per_channel(image, lighting_offset(seed, lighting_std))


def add_per_channel(image: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """image + offset[c] for an [H, W, 3] image, equal to `image + offset` but faster on CPU.

    Broadcasting a 3-vector over the innermost axis is slow in TensorFlow's CPU kernels (measured
    ~0.4 ms of CPU per 224x224 image, more than the bilinear resize); adding it tiled to a row of
    W * 3 values broadcasts over rows instead (~0.05 ms) with the same float additions.
    """
    shape = tf.shape(image)
    rows = tf.reshape(image, [shape[0], shape[1] * 3])
    out = tf.reshape(rows + tf.tile(offset, [shape[1]]), shape)
    out.set_shape(image.shape)
    return out


def lighting_offset(seed: tf.Tensor, std: float = LIGHTING_STD) -> tf.Tensor:
    """Per-image RGB offset (0-255 scale): eigvecs @ (alpha * eigvals), alpha ~ N(0, std)."""
    alpha = tf.random.stateless_normal([3], seed, stddev=std)
    rgb = tf.linalg.matvec(tf.constant(EIG_VECS), alpha * tf.constant(EIG_VALS))
    return 255.0 * rgb


def train_image(image_bytes: tf.Tensor, seed: tf.Tensor, size: int,
                decode_crop: Callable[[tf.Tensor, tf.Tensor, str], tf.Tensor] | None = None,
                crop: str = DEFAULT_SAMPLER) -> tf.Tensor:
    """The full train augmentation from encoded bytes to a float32 [size, size, 3] image (0-255 scale).

    Random crop, horizontal flip, resize, lighting. The flip is applied to the uint8 crop before
    the resize: bilinear resizing with half-pixel centres commutes with a horizontal flip, and
    mirroring the small uint8 crop is cheaper than mirroring the float result. `decode_crop`
    replaces the decode + random crop stage (default: decode only the crop); the input-pipeline
    benchmark passes `decode_then_random_crop` so both share everything else. `crop` names the
    window sampler (`training.data.crop.SAMPLERS`).
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = (decode_crop or decode_and_random_crop)(image_bytes, seeds[0], crop)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return add_lighting(resize(image, size), seeds[2])


def eval_image(image_bytes: tf.Tensor, size: int, crop_fraction: float | None = None) -> tf.Tensor:
    """The reference's eval transform (shorter side to size / crop_fraction, default 0.875, centre crop);
    float32 0-255.

    The same function serves exported models (`keras_regnet.pretrained.eval_crop`), so a served model sees
    the pixels its reported accuracy was measured on.
    """
    if crop_fraction is None:
        return decode_and_center_crop(image_bytes, size)
    return decode_and_center_crop(image_bytes, size, EvalSettings("train", crop_fraction=crop_fraction))


def random_shift(image: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
    """Zero-pad by `pad` pixels and take a random crop of the original size (small translations)."""
    h, w = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, [h, w, 3], seed)
