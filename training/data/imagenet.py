"""ImageNet readers: TensorFlow Datasets `imagenet2012` and standard ImageNet TFRecord shards.

Both yield (JPEG bytes, label) so the train augmentation can decode only the crop. TFDS is
imported lazily (only this path needs tensorflow-datasets and importlib_resources). TFRecord
shards follow the layout of TensorFlow's ImageNet build script (`train-00000-of-01024`,
`validation-00000-of-00128`, features `image/encoded`, `image/class/label` in 1..1000), whose
labels are shifted by `label_offset` (default 1) to 0..999.
"""

from __future__ import annotations

import re
from typing import Callable

import tensorflow as tf

from keras_regnet import fileio
from keras_regnet.errors import DataError
from training.data import augment
from training.data.pipeline import DATA_ERROR_MARKER, Source

NUM_CLASSES = 1000
NUM_TRAIN = 1_281_167
NUM_EVAL = 50_000
SHUFFLE_BUFFER = 4096


def _train_map(crop: str) -> Callable[[tf.Tensor, tf.Tensor, int], tf.Tensor]:
    """(JPEG bytes, seed, size) -> train image, with the `crop` window sampler."""
    return lambda image_bytes, seed, size: augment.train_image(image_bytes, seed, size, crop=crop)


def _eval_map(crop_fraction: float | None) -> Callable[[tf.Tensor, int], tf.Tensor]:
    """(JPEG bytes, size) -> eval image, the shorter side resized to size / crop_fraction (None: 0.875)."""
    return lambda image_bytes, size: augment.eval_image(image_bytes, size, crop_fraction)


def import_tfds():
    """tensorflow_datasets, or a ValueError saying what to install."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(
            f"--dataset=imagenet2012 needs tensorflow-datasets ({e}); "
            "pip install tensorflow-datasets==4.9.10 importlib_resources"
        ) from e
    return tfds


def tfds_source(data_dir: str, train_examples: int | None = None, eval_examples: int | None = None,
                crop: str = augment.DEFAULT_SAMPLER, eval_crop_fraction: float | None = None) -> Source:
    """imagenet2012 from a TFDS data_dir; tars in <data_dir>/downloads/manual are prepared once."""
    tfds = import_tfds()
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if not builder.is_prepared():
        manual = fileio.join(data_dir, "downloads", "manual")
        if not fileio.isfile(fileio.join(manual, "ILSVRC2012_img_train.tar")):
            raise DataError(
                f"--data_dir={data_dir!r} holds no prepared imagenet2012; put ILSVRC2012_img_train.tar "
                f"and ILSVRC2012_img_val.tar in {manual} (TFDS manual_dir) and rerun, or use "
                f"--dataset=tfrecord with ImageNet TFRecord shards"
            )
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    splits = builder.info.splits
    skip = {"image": tfds.decode.SkipDecoding()}

    def read(split: str, ctx: tf.distribute.InputContext | None, seed: int | None) -> tf.data.Dataset:
        config = tfds.ReadConfig(input_context=ctx, shuffle_seed=seed, try_autocache=False)
        ds = builder.as_dataset(split=split, decoders=skip, read_config=config,
                                shuffle_files=seed is not None)
        return ds.map(lambda e: (e["image"], e["label"]), num_parallel_calls=tf.data.AUTOTUNE)

    def train_records(ctx: tf.distribute.InputContext | None, epoch_seed: int) -> tf.data.Dataset:
        return read("train", ctx, epoch_seed).shuffle(SHUFFLE_BUFFER, seed=epoch_seed)

    return Source("imagenet2012", NUM_CLASSES, train_examples or splits["train"].num_examples,
                  eval_examples or splits["validation"].num_examples, train_records,
                  lambda ctx: read("validation", None, None), _train_map(crop), _eval_map(eval_crop_fraction))


def tfrecord_files(data_dir: str, split: str) -> list[str]:
    """Sorted shard paths of a split ("train" or "validation"); ValueError if there are none."""
    files = sorted(fileio.glob(fileio.join(data_dir, f"{split}-*")))
    if not files:
        raise DataError(f"--data_dir={data_dir!r} has no {split}-* TFRecord shards "
                        f"(expected e.g. {split}-00000-of-01024)")
    return files


def check_features(path: str) -> None:
    """ValueError naming --data_dir unless the first record of `path` is an ImageNet tf.train.Example.

    Reads one record, so a shard written with other feature names (e.g. `image/label`) or a file
    that is not a TFRecord fails at start-up with the features found, instead of a TensorFlow
    stack trace from inside the training step.
    """
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.OpError as e:
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", e.message.splitlines()[0])
        raise DataError(f"--data_dir: {path} is not a readable TFRecord file ({reason})") from e
    if first is None:
        return  # an empty shard holds nothing to check
    try:
        features = tf.train.Example.FromString(first.numpy()).features.feature
    except Exception as e:  # protobuf's DecodeError: the record is not a tf.train.Example
        raise DataError(f"--data_dir: {path} does not hold tf.train.Example records ({e})") from e
    kinds = {name: feature.WhichOneof("kind") for name, feature in features.items()}
    if kinds.get("image/encoded") != "bytes_list" or kinds.get("image/class/label") != "int64_list":
        found = ", ".join(f"{name} ({kind})" for name, kind in sorted(kinds.items())) or "none"
        raise DataError(f"--data_dir: {path} needs the ImageNet features image/encoded (bytes_list) and "
                        f"image/class/label (int64_list); found {found}")


def parse_example(serialized: tf.Tensor, label_offset: int,
                  num_classes: int = NUM_CLASSES) -> tuple[tf.Tensor, tf.Tensor]:
    """(JPEG bytes, label - label_offset) of one ImageNet tf.train.Example.

    A shifted label outside 0..num_classes-1 stops the run with an error naming --label_offset
    (a 0-based shard read with the default offset 1 would otherwise turn class 0 into the
    "undecodable" label -1 and be skipped silently; a label >= num_classes would crash the loss).
    """
    features = tf.io.parse_single_example(serialized, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    raw = features["image/class/label"]
    label = raw - label_offset
    in_range = tf.logical_and(label >= 0, label < num_classes)
    message = (f"{DATA_ERROR_MARKER}--label_offset={label_offset} must map every image/class/label "
               f"into 0..{num_classes - 1} ({num_classes} classes; 1-based ImageNet shards need 1, "
               f"0-based shards 0); found image/class/label=")
    with tf.control_dependencies([tf.debugging.Assert(in_range, [message, raw])]):
        return tf.identity(features["image/encoded"]), tf.identity(label)


def read_tfrecords(files: list[str], ctx: tf.distribute.InputContext | None, seed: int | None,
                   label_offset: int, num_classes: int = NUM_CLASSES) -> tf.data.Dataset:
    """Records of `files`, sharded by file when there are enough files, else by record."""
    index, count = (0, 1) if ctx is None else (ctx.input_pipeline_id, ctx.num_input_pipelines)
    ds = tf.data.Dataset.from_tensor_slices(files)
    by_file = count > 1 and len(files) >= count and ctx is not None
    if by_file:
        ds = ds.shard(count, index)
    if seed is not None:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(16, len(files)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if count > 1 and ctx is not None and not by_file:
        ds = ds.shard(count, index)
    return ds.map(lambda r: parse_example(r, label_offset, num_classes), num_parallel_calls=tf.data.AUTOTUNE)


def tfrecord_source(data_dir: str, label_offset: int = 1, train_examples: int | None = None,
                    eval_examples: int | None = None, num_classes: int = NUM_CLASSES,
                    crop: str = augment.DEFAULT_SAMPLER, eval_crop_fraction: float | None = None) -> Source:
    """ImageNet from TFRecord shards in data_dir (train-* and validation-*)."""
    train_files = tfrecord_files(data_dir, "train")
    eval_files = tfrecord_files(data_dir, "validation")
    check_features(train_files[0])
    check_features(eval_files[0])

    def train_records(ctx: tf.distribute.InputContext | None, epoch_seed: int) -> tf.data.Dataset:
        ds = read_tfrecords(train_files, ctx, epoch_seed, label_offset, num_classes)
        return ds.shuffle(SHUFFLE_BUFFER, seed=epoch_seed)

    return Source("tfrecord", num_classes, train_examples or NUM_TRAIN, eval_examples or NUM_EVAL,
                  train_records, lambda ctx: read_tfrecords(eval_files, None, None, label_offset, num_classes),
                  _train_map(crop), _eval_map(eval_crop_fraction))
