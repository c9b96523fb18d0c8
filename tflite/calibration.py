"""Real images for calibration, QAT fine-tuning and the accuracy report.

Sources (the `--calibration_data` / `--eval_data` / `--qat_data` syntax):
  digits[:train|:test|:all]  scikit-learn's embedded handwritten digits (1,797 8x8 grey images,
                             10 classes), upscaled to RGB 0-255; no download. test = every 5th
                             image of each class (the training pipeline's held-out split),
                             train = the rest, so the two never overlap.
  <folder>                   images (jpg/jpeg/png/bmp/gif) in one sub-folder per class (labels are
                             the sorted sub-folder names) or directly in the folder (no labels).
  tfds:<name>[:<split>]      a TensorFlow Datasets dataset already prepared in the TFDS data dir.
Folder and TFDS images get the serving preprocessing (shorter side to size/0.875, centre crop).
The digits split and the folder listing are the training pipeline's own (keras_regnet.data), so a
model trained by `python -m training.main` is scored here on exactly the images it never saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from keras_regnet import fileio
from keras_regnet.data.image_folder import (
    IMAGE_EXTENSIONS,
    list_classes,
    list_files,
    list_unlabelled,
)
from keras_regnet.errors import ConfigError, DataError
from keras_regnet.pretrained.eval_crop import scale_and_center_crop

LOG = logging.getLogger("tflite")

DIGITS_SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class ImageSet:
    """float32 RGB images in [0, 255] (N, H, W, 3), int labels or None, and where they came from."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.images)


def load_images(source: str, image_size: int, limit: int | None = None, flag: str = "--calibration_data") -> ImageSet:
    """Read up to `limit` images from `source`; fail before any conversion if it yields none."""
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{flag} must name a data source (digits, a folder or tfds:<name>), got {source!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"image limit for {flag} must be >= 1, got {limit}")
    if source == "digits" or source.startswith("digits:"):
        result = _digits(source, image_size, limit, flag)
    elif source.startswith("tfds:"):
        result = _tfds(source, image_size, limit, flag)
    elif fileio.isdir(source):
        result = _folder(source, image_size, limit)
    else:
        raise DataError(
            f"{flag}={source!r} is neither 'digits[:train|:test|:all]', 'tfds:<name>[:<split>]' nor an "
            "existing folder of images"
        )
    if not len(result):
        raise DataError(
            f"{flag}={source!r} yielded no images ({result.skipped} undecodable files skipped; "
            f"looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return result


def digits_rgb(image_size: int, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The training pipeline's digits split (keras_regnet.data.digits), upscaled to RGB 0-255 (bilinear)."""
    import tensorflow as tf

    from keras_regnet.data.digits import load_arrays

    if split not in DIGITS_SPLITS:
        raise ConfigError(f"digits split must be one of {DIGITS_SPLITS}, got {split!r}")
    train_x, train_y, eval_x, eval_y = load_arrays()
    grey, labels = {"train": (train_x, train_y), "test": (eval_x, eval_y),
                    "all": (np.concatenate([train_x, eval_x]), np.concatenate([train_y, eval_y]))}[split]
    images = tf.image.resize(grey.astype("float32")[..., None], (image_size, image_size), method="bilinear").numpy()
    images = np.clip(np.repeat(images, 3, axis=-1), 0.0, 255.0)
    return images.astype("float32"), labels.astype("int64")


def _digits(source: str, image_size: int, limit: int | None, flag: str) -> ImageSet:
    split = source.partition(":")[2] or "all"
    if split not in DIGITS_SPLITS:
        raise ConfigError(f"{flag}={source!r}: digits split must be one of {DIGITS_SPLITS}")
    images, labels = digits_rgb(image_size, split)
    return ImageSet(images[:limit], labels[:limit], source)


def _folder(folder: str, image_size: int, limit: int | None) -> ImageSet:
    """Images in class sub-folders (labelled) or directly in `folder` (unlabelled)."""
    classes = list_classes(folder)
    files = list_files(folder, classes) if classes else [(path, -1) for path in list_unlabelled(folder)]
    if limit is not None and len(files) > limit:
        # Spread the sample over all classes rather than taking the first class only.
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, limit).round()]
    images, labels, skipped = [], [], 0
    for path, label in files:
        image = _decode(path, image_size)
        if image is None:
            skipped += 1
            continue
        images.append(image)
        labels.append(label)
    if skipped:
        LOG.warning("skipped %d undecodable image(s) in %s", skipped, folder)
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), "float32")
    return ImageSet(stacked, np.asarray(labels, "int64") if classes else None, folder, skipped)


def _decode(path: str, image_size: int) -> np.ndarray | None:
    """Decode one file to a preprocessed float image, or None if it is not a readable image."""
    import tensorflow as tf

    try:
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        return None
    return scale_and_center_crop(image, image_size).numpy()


def _tfds(source: str, image_size: int, limit: int | None, flag: str) -> ImageSet:
    """A prepared TFDS dataset (no download here): tfds:<name>[:<split>], default split validation/test."""
    import tensorflow_datasets as tfds

    _, name, split = (source.split(":", 2) + [""])[:3]
    try:
        builder = tfds.builder(name)
        split = split or ("validation" if "validation" in builder.info.splits else "test")
        dataset = builder.as_dataset(split=split, as_supervised=True)
    except Exception as err:  # TFDS raises many types for unknown/unprepared datasets
        raise DataError(f"{flag}={source!r}: cannot read TFDS dataset {name!r} split {split!r}: {err}") from err
    images, labels = [], []
    for image, label in dataset.take(limit if limit else -1):
        if image.shape[-1] == 1:
            image = np.repeat(image.numpy(), 3, axis=-1)
        images.append(scale_and_center_crop(image, image_size).numpy())
        labels.append(int(label))
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), "float32")
    return ImageSet(stacked, np.asarray(labels, "int64"), source)
