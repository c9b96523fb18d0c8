"""ImageNet readers: TFRecord shards (label offset, sharding, corrupt records) and TFDS."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from training.data import imagenet
from training.data.pipeline import INVALID_LABEL, PADDING_LABEL, eval_dataset, train_dataset


def _example(image: bytes, label: int) -> bytes:
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shards(root: str, corrupt: bool = False) -> None:
    rng = np.random.default_rng(0)
    for split, shards in (("train", 2), ("validation", 1)):
        for s in range(shards):
            path = os.path.join(root, f"{split}-{s:05d}-of-{shards:05d}")
            with tf.io.TFRecordWriter(path) as w:
                for i in range(6):
                    pixels = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
                    data = tf.io.encode_jpeg(pixels).numpy()
                    if corrupt and split == "train" and s == 0 and i == 0:
                        data = data[:40]  # truncated JPEG
                    w.write(_example(data, 1 + (i % 3)))  # standard shards: labels 1..1000


def test_tfrecord_labels_are_shifted_and_corrupt_records_counted(tmp_path):
    _write_shards(str(tmp_path), corrupt=True)
    source = imagenet.tfrecord_source(str(tmp_path), label_offset=1, train_examples=12, eval_examples=6)
    ds = train_dataset(source, None, batch_size=12, epoch=0, start_batch=0, num_batches=1,
                       image_size=24, seed=0, deterministic=True)
    (images, labels), = list(ds)
    assert images.shape == (12, 24, 24, 3)
    assert sorted(set(labels.numpy())) == [INVALID_LABEL, 0, 1, 2]  # 1..3 -> 0..2, one skipped
    assert int(np.sum(labels.numpy() == INVALID_LABEL)) == 1
    (eval_images, eval_labels), = list(eval_dataset(source, None, batch_size=8, num_batches=1, image_size=24))
    assert eval_images.shape == (8, 24, 24, 3) and list(eval_labels.numpy()[6:]) == [PADDING_LABEL] * 2


def test_eval_split_shorter_than_eval_examples_is_not_reported_as_skipped(tmp_path):
    """6 validation records (one truncated) against --eval_examples=40: 1 skipped, 5 evaluated."""
    from training.core.config import TrainConfig
    from training.run import run

    _write_shards(str(tmp_path), corrupt=True)
    path = os.path.join(str(tmp_path), "validation-00000-of-00001")
    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    broken = tf.train.Example.FromString(records[0])
    broken.features.feature["image/encoded"].bytes_list.value[0] = b"\xff\xd8\xff truncated"
    with tf.io.TFRecordWriter(path) as w:
        for r in [broken.SerializeToString()] + records[1:]:
            w.write(r)
    cfg = TrainConfig(model="regnetx_digits", dataset="tfrecord", data_dir=str(tmp_path), epochs=1,
                      batch_size=8, image_size=16, train_examples=12, eval_examples=40,
                      model_dir=str(tmp_path / "run"), verbose=0, strategy="one_device")
    result = run(cfg)
    assert result["skipped_images"]["eval"] == 1  # was 35: the missing 34 records counted as corrupt
    assert result["examples"] == 5


def test_tfrecord_shards_by_file_per_worker(tmp_path):
    _write_shards(str(tmp_path))
    files = imagenet.tfrecord_files(str(tmp_path), "train")
    seen = []
    for index in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index, num_replicas_in_sync=2)
        seen.append([e[0].numpy() for e in imagenet.read_tfrecords(files, ctx, seed=None, label_offset=1)])
    assert len(seen[0]) == len(seen[1]) == 6 and not set(seen[0]) & set(seen[1])


def test_missing_shards_and_missing_tfds_data_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no train-\\* TFRecord shards"):
        imagenet.tfrecord_source(str(tmp_path))
    with pytest.raises(ValueError, match="ILSVRC2012_img_train.tar"):
        imagenet.tfds_source(str(tmp_path))


def test_tfds_imagenet_reads_encoded_images(tmp_path):
    import tensorflow_datasets as tfds

    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "ILSVRC2012_img_train.tar").write_bytes(b"")  # preparation is mocked below
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        source = imagenet.tfds_source(str(tmp_path), train_examples=12, eval_examples=12)
        batches = list(train_dataset(source, None, 4, 0, 0, 2, 32, 0))
        assert [b[0].shape for b in batches] == [(4, 32, 32, 3)] * 2
        assert all(0 <= y < 1000 for b in batches for y in b[1].numpy())


def _write_labelled_shards(root: str, labels: list[int]) -> None:
    rng = np.random.default_rng(1)
    for split in ("train", "validation"):
        with tf.io.TFRecordWriter(os.path.join(root, f"{split}-00000-of-00001")) as w:
            for label in labels:
                w.write(_example(tf.io.encode_jpeg(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).numpy(),
                                 label))


@pytest.mark.parametrize("labels, offset, found", [
    ([0, 1, 2, 3], 1, "image/class/label=0"),       # 0-based shard, default offset: class 0 -> -1
    ([997, 998, 999, 1000], 0, "image/class/label=1000"),  # 1-based shard read as 0-based
])
def test_labels_outside_the_classes_stop_with_an_error_naming_label_offset(tmp_path, labels, offset, found):
    from training.data.pipeline import data_errors

    _write_labelled_shards(str(tmp_path), labels)
    files = imagenet.tfrecord_files(str(tmp_path), "train")
    with pytest.raises(ValueError, match=rf"--label_offset={offset} must map every image/class/label "
                                         rf"into 0\.\.999 .*; found {found}$"):
        with data_errors():
            list(imagenet.read_tfrecords(files, None, seed=None, label_offset=offset))


def test_zero_based_shards_with_the_default_offset_fail_the_run_instead_of_skipping(tmp_path):
    """Before: class 0 became label -1 and was reported as 'undecodable'; the run finished."""
    from training.core.config import TrainConfig
    from training.run import run

    _write_labelled_shards(str(tmp_path), [0, 1, 2, 3] * 2)
    cfg = TrainConfig(model="regnetx_digits", dataset="tfrecord", data_dir=str(tmp_path), epochs=1,
                      batch_size=8, image_size=16, train_examples=8, eval_examples=8,
                      model_dir=str(tmp_path / "run"), verbose=0, strategy="one_device")
    with pytest.raises(ValueError, match="--label_offset=1 must map .* found image/class/label=0"):
        run(cfg)
    assert [*run(cfg.replace(label_offset=0))["skipped_images"].values()] == [0.0, 0.0]


def test_shards_with_other_features_or_not_tfrecords_are_named_at_start_up(tmp_path):
    """Before: a TensorFlow stack trace from the first training step (feature not found / corrupted record)."""
    other = tmp_path / "other"
    other.mkdir()
    for split in ("train", "validation"):
        with tf.io.TFRecordWriter(str(other / f"{split}-00000-of-00001")) as w:
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
                       "image/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with pytest.raises(ValueError, match=r"--data_dir: .*train-00000-of-00001 needs the ImageNet features .*"
                                         r"found image/encoded \(bytes_list\), image/label \(int64_list\)$"):
        imagenet.tfrecord_source(str(other))
    junk = tmp_path / "junk"
    junk.mkdir()
    for split in ("train", "validation"):
        (junk / f"{split}-00000-of-00001").write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(ValueError, match=r"--data_dir: .*train-00000-of-00001 is not a readable TFRecord file"):
        imagenet.tfrecord_source(str(junk))
