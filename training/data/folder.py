"""Any image folder (one sub-folder per class) for fine-tuning on one's own data.

Layout: <data_dir>/train/<class>/* and <data_dir>/val/<class>/* when both exist (the classes are
train/'s sub-folders; a class may lack a val/ folder, val/ may not add classes); otherwise
<data_dir>/<class>/* with every 10th file per class (sorted) held out for evaluation, or, with
--val_fraction, that fraction of each class drawn with --seed (at least one file of every class
with two or more). Class ids follow the sorted sub-folder names; JPEG, PNG, BMP and GIF files are
read. The Source carries the class names and the split, which the run writes to its model_dir.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_regnet import fileio
from keras_regnet.data.image_folder import IMAGE_EXTENSIONS, list_classes, list_files
from keras_regnet.errors import DataError
from training.data import augment
from training.data.pipeline import Source

HOLDOUT_EVERY = 10


def split_files(data_dir: str, val_fraction: float | None = None,
                seed: int = 0) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """(class names, train files, eval files) following the layouts in the module docstring."""
    train_dir, val_dir = fileio.join(data_dir, "train"), fileio.join(data_dir, "val")
    if fileio.isdir(train_dir) and fileio.isdir(val_dir):
        if val_fraction is not None:
            raise DataError(f"--val_fraction={val_fraction} splits a single folder, but --data_dir="
                            f"{data_dir!r} already has train/ and val/; drop --val_fraction")
        classes = list_classes(train_dir)
        unknown = sorted(set(list_classes(val_dir)) - set(classes))
        if unknown:
            raise DataError(f"--data_dir={data_dir!r}: val/ has class folders that train/ lacks "
                            f"({', '.join(unknown)}); the classes are train/'s sub-folders, so add "
                            f"them to train/ or remove them from val/")
        return classes, list_files(train_dir, classes), list_files(val_dir, classes)
    classes = list_classes(data_dir)
    files = list_files(data_dir, classes)
    train, held = [], []
    for label in range(len(classes)):
        mine = [f for f in files if f[1] == label]
        chosen = _held_out(len(mine), val_fraction, seed, label)
        held += [f for i, f in enumerate(mine) if i in chosen]
        train += [f for i, f in enumerate(mine) if i not in chosen]
    return classes, train, held


def _held_out(count: int, val_fraction: float | None, seed: int, label: int) -> set[int]:
    """Indices of a class's sorted files held out: every 10th, or a seeded random fraction."""
    if val_fraction is None:
        return set(range(0, count, HOLDOUT_EVERY))
    if count < 2:
        return set()
    size = min(count - 1, max(1, round(val_fraction * count)))
    rng = np.random.default_rng([seed, label])
    return {int(i) for i in rng.choice(count, size=size, replace=False)}


def make_source(data_dir: str, val_fraction: float | None = None, seed: int = 0,
                crop: str = augment.DEFAULT_SAMPLER, eval_crop_fraction: float | None = None) -> Source:
    """Folder Source (eval crop: shorter side to size / eval_crop_fraction, None: 0.875); ValueError if there are fewer than 2 classes or no images."""
    classes, train, held = split_files(data_dir, val_fraction, seed)
    if len(classes) < 2 or not train or not held:
        raise DataError(
            f"--data_dir={data_dir!r} needs >= 2 class sub-folders with images ({', '.join(IMAGE_EXTENSIONS)}); "
            f"found {len(classes)} classes, {len(train)} train and {len(held)} eval images"
        )

    def records(files: list[tuple[str, int]]) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(([p for p, _ in files], [y for _, y in files]))

    def train_records(ctx: tf.distribute.InputContext | None, epoch_seed: int) -> tf.data.Dataset:
        from training.data.pipeline import shard

        return shard(records(train), ctx).shuffle(len(train), seed=epoch_seed)

    def train_map(path: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
        return augment.train_image(tf.io.read_file(path), seed, size, crop=crop)

    def eval_map(path: tf.Tensor, size: int) -> tf.Tensor:
        return augment.eval_image(tf.io.read_file(path), size, eval_crop_fraction)

    split = {"classes": classes, "val_fraction": val_fraction, "seed": seed,
             "train": [[p, y] for p, y in train], "val": [[p, y] for p, y in held]}
    return Source("folder", len(classes), len(train), len(held), train_records,
                  lambda ctx: records(held), train_map, eval_map, class_names=list(classes), split=split)
