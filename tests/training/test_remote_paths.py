"""Run and data directories on object stores (gs://, s3://): exercised through TensorFlow's ram://
filesystem, which takes the same tf.io.gfile code path without a network."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import tensorflow as tf

from keras_regnet import fileio
from training.core.config import TrainConfig, validate


def _ram_dir() -> str:
    return f"ram://regnet-{uuid.uuid4().hex[:8]}"


def test_fileio_on_a_url_path():
    root = _ram_dir()
    assert fileio.is_remote(root) and not fileio.is_remote("/tmp/x")
    assert fileio.join(root, "a", "b.json") == f"{root}/a/b.json"
    fileio.write_json_atomic(fileio.join(root, "a", "b.json"), {"x": [1, 2]})
    fileio.write_json_atomic(fileio.join(root, "a", "b.json"), {"x": [3]})  # overwrite
    assert fileio.read_json(fileio.join(root, "a", "b.json")) == {"x": [3]}
    assert fileio.isdir(fileio.join(root, "a")) and fileio.isfile(fileio.join(root, "a", "b.json"))
    assert fileio.listdir(fileio.join(root, "a")) == ["b.json"]  # no temporary file left behind
    assert fileio.glob(fileio.join(root, "a", "b*")) == [fileio.join(root, "a", "b.json")]
    fileio.rmtree(fileio.join(root, "a"))
    assert not fileio.exists(fileio.join(root, "a", "b.json"))
    fileio.rmtree(fileio.join(root, "missing"))  # no error


def test_local_atomic_write_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "m.json")
    fileio.write_json_atomic(path, {"a": 1})
    assert fileio.read_json(path) == {"a": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def _write_image_folder(root: str) -> None:
    rng = np.random.default_rng(0)
    for c, name in enumerate(("ants", "bees")):
        fileio.makedirs(fileio.join(root, name))
        for i in range(10):
            pixels = np.full((20, 20, 3), 60 + 120 * c, np.uint8) + rng.integers(0, 20, (20, 20, 3), dtype=np.uint8)
            with tf.io.gfile.GFile(fileio.join(root, name, f"{i}.png"), "wb") as f:
                f.write(tf.io.encode_png(pixels).numpy())


def test_data_dir_validation_uses_the_url_filesystem():
    root = _ram_dir()
    fileio.makedirs(root)
    validate(TrainConfig(dataset="folder", data_dir=root))  # exists: accepted
    with pytest.raises(ValueError, match="--data_dir"):
        validate(TrainConfig(dataset="folder", data_dir=root + "-missing"))


def test_train_with_data_and_model_dir_on_a_url_filesystem_and_resume():
    from training.api import train

    data, run = _ram_dir(), _ram_dir()
    _write_image_folder(data)
    kwargs = dict(dataset="folder", data_dir=data, epochs=2, batch_size=6, image_size=16,
                  model_dir=run, strategy="one_device", xla="off", mixed_precision="off")
    first = train("regnetx_digits", max_steps=3, **kwargs)  # stops early, like a preempted run
    assert first["steps"] == 3
    assert fileio.exists(fileio.join(run, "config.json")) and fileio.glob(fileio.join(run, "checkpoints", "ckpt-*"))
    result = train("regnetx_digits", **kwargs)
    assert result["resumed_from_step"] == 3 and result["steps"] == 2 * (18 // 6)
    assert fileio.read_json(fileio.join(run, "metrics.json"))["steps"] == result["steps"]
    assert fileio.isfile(fileio.join(run, "model.keras"))
    assert fileio.listdir(fileio.join(run, "logs"))  # TensorBoard event files


def test_tfrecord_shards_are_found_on_a_url_filesystem():
    from training.data import imagenet

    root = _ram_dir()
    fileio.makedirs(root)
    for name in ("train-00001-of-00002", "train-00000-of-00002", "validation-00000-of-00001"):
        with tf.io.gfile.GFile(fileio.join(root, name), "wb") as f:
            f.write(b"")
    assert imagenet.tfrecord_files(root, "train") == [fileio.join(root, "train-00000-of-00002"),
                                                       fileio.join(root, "train-00001-of-00002")]
