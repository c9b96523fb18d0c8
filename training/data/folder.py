"""Any image folder (one sub-folder per class) for fine-tuning on one's own data.

Layout: <data_dir>/train/<class>/* and <data_dir>/val/<class>/* when both exist (the classes are
train/'s sub-folders; a class may lack a val/ folder, val/ may not add classes); otherwise
<data_dir>/<class>/* with every 10th file per class (sorted) held out for evaluation. Class ids
follow the sorted sub-folder names; JPEG, PNG, BMP and GIF files are read.
"""

from __future__ import annotations

import tensorflow as tf

from training import fileio
from training.data import augment
from training.data.pipeline import Source

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
HOLDOUT_EVERY = 10


def list_classes(root: str) -> list[str]:
    """Sorted names of the class sub-folders of root."""
    return sorted(d for d in fileio.listdir(root) if fileio.isdir(fileio.join(root, d)))


def list_files(root: str, classes: list[str]) -> list[tuple[str, int]]:
    """(path, class id) of every image file, in sorted order; a missing class folder has none."""
    out = []
    for label, name in enumerate(classes):
        folder = fileio.join(root, name)
        if not fileio.isdir(folder):
            continue
        for f in sorted(fileio.listdir(folder)):
            if f.lower().endswith(EXTENSIONS):
                out.append((fileio.join(folder, f), label))
    return out


def split_files(data_dir: str) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """(class names, train files, eval files) following the layouts in the module docstring."""
    train_dir, val_dir = fileio.join(data_dir, "train"), fileio.join(data_dir, "val")
    if fileio.isdir(train_dir) and fileio.isdir(val_dir):
        classes = list_classes(train_dir)
        unknown = sorted(set(list_classes(val_dir)) - set(classes))
        if unknown:
            raise ValueError(f"--data_dir={data_dir!r}: val/ has class folders that train/ lacks "
                             f"({', '.join(unknown)}); the classes are train/'s sub-folders, so add "
                             f"them to train/ or remove them from val/")
        return classes, list_files(train_dir, classes), list_files(val_dir, classes)
    classes = list_classes(data_dir)
    files = list_files(data_dir, classes)
    train, held = [], []
    for label in range(len(classes)):
        mine = [f for f in files if f[1] == label]
        held += mine[::HOLDOUT_EVERY]
        train += [f for i, f in enumerate(mine) if i % HOLDOUT_EVERY]
    return classes, train, held


def make_source(data_dir: str, crop: str = augment.DEFAULT_SAMPLER) -> Source:
    """Folder Source; ValueError if there are fewer than 2 classes or no images."""
    classes, train, held = split_files(data_dir)
    if len(classes) < 2 or not train or not held:
        raise ValueError(
            f"--data_dir={data_dir!r} needs >= 2 class sub-folders with images ({', '.join(EXTENSIONS)}); "
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
        return augment.eval_image(tf.io.read_file(path), size)

    return Source("folder", len(classes), len(train), len(held), train_records,
                  lambda ctx: records(held), train_map, eval_map)
