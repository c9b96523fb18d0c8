"""Image augmentation as the reference trains ImageNet, on RGB images on the 0-255 scale.

Train: inception-style random resized crop (area 0.08-1, aspect 3/4-4/3) decoded with
`decode_and_crop_jpeg` so only the crop is decoded, horizontal flip, PCA lighting noise (std 0.1,
unclipped as in the reference).
Eval: resize the shorter side to size / 0.875 (256 for 224), centre crop. All randomness is
stateless and seeded per element, so a resumed run sees exactly the images it would have seen.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)
EVAL_CROP_FRACTION = 0.875  # 224 / 256
LIGHTING_STD = 0.1
# AlexNet/pycls PCA of ImageNet RGB pixels (values scaled to [0, 1]); columns are eigenvectors.
EIG_VALS = (0.2175, 0.0188, 0.0045)
EIG_VECS = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


def _decode_any(image_bytes: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def random_crop_window(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """[y, x, h, w] of a random crop covering 8-100% of the area with aspect 3/4-4/3."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=AREA_RANGE[0],
        aspect_ratio_range=ASPECT_RANGE,
        area_range=AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def decode_and_random_crop(image_bytes: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Decode only a random crop (area 8-100%, aspect 3/4-4/3) of the image; uint8 [h, w, 3].

    One branch per format (a single `is_jpeg` test): a JPEG's window comes from its header and only
    the window is decoded; other formats are decoded whole and sliced. Same window either way.
    """
    def jpeg() -> tf.Tensor:
        window = random_crop_window(tf.image.extract_jpeg_shape(image_bytes), seed)
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def other() -> tf.Tensor:
        return decode_then_random_crop(image_bytes, seed)

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def decode_then_random_crop(image_bytes: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Same crop as `decode_and_random_crop` but decoding the full image first (benchmark peer)."""
    image = _decode_any(image_bytes)
    window = random_crop_window(tf.shape(image, out_type=tf.int32), seed)
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
                decode_crop: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None) -> tf.Tensor:
    """The full train augmentation from encoded bytes to a float32 [size, size, 3] image (0-255 scale).

    Random crop, horizontal flip, resize, lighting. The flip is applied to the uint8 crop before
    the resize: bilinear resizing with half-pixel centres commutes with a horizontal flip, and
    mirroring the small uint8 crop is cheaper than mirroring the float result. `decode_crop`
    replaces the decode + random crop stage (default: decode only the crop); the input-pipeline
    benchmark passes `decode_then_random_crop` so both share everything else.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = (decode_crop or decode_and_random_crop)(image_bytes, seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return add_lighting(resize(image, size), seeds[2])


def eval_image(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """Resize the shorter side to size / 0.875, centre crop size x size; float32 in [0, 255]."""
    return center_crop(_decode_any(image_bytes), size)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Shorter side to round(size / 0.875) (bilinear), then the central size x size."""
    resize_to = int(round(size / EVAL_CROP_FRACTION))
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize_to / tf.reduce_min(shape)
    new_hw = tf.cast(tf.round(shape * scale), tf.int32)
    new_hw = tf.maximum(new_hw, size)
    image = tf.image.resize(tf.cast(image, tf.float32), new_hw, method="bilinear")
    top = (new_hw[0] - size) // 2
    left = (new_hw[1] - size) // 2
    image = tf.slice(image, [top, left, 0], [size, size, 3])
    image.set_shape([size, size, 3])
    return image


def random_shift(image: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
    """Zero-pad by `pad` pixels and take a random crop of the original size (small translations)."""
    h, w = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, [h, w, 3], seed)
