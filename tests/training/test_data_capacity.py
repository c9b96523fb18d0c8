"""--input_only: the measured stream's rate and the cores / service workers a GPU rate needs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.core.config import TrainConfig
from training.data import folder
from training.data.capacity import InputRate, measure, plan, report
from training.data.pipeline import INVALID_LABEL, robust_map, skip_failures


def test_plan_turns_cpu_ms_per_image_into_cores_and_worker_hosts():
    rate = InputRate(images=640, images_per_s=1500.0, cpu_ms_per_image=1.4, cores=16, load_average=0.2)
    local = plan(rate, 13900.0, served=False)
    assert "19.5 cores like these (20 at full use); this host has 16" in local[0]  # 13900 x 1.4 ms
    assert "2 worker host(s) of 16 cores" in local[1]
    served = plan(rate, 13900.0, served=True)
    assert "9.3x the service's present workers" in served[0]  # 13900 / 1500


def test_measure_counts_only_the_timed_batches():
    ds = tf.data.Dataset.from_tensors((tf.zeros([8, 4]), tf.zeros([8], tf.int64))).repeat(10)
    rate = measure(ds, batches=5)
    assert rate.images == 40 and rate.images_per_s > 0 and rate.cpu_ms_per_image >= 0


def _jpeg_folder(root, corrupt: bool) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(10):
            (root / name / f"{i}.jpg").write_bytes(
                tf.io.encode_jpeg(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).numpy())
    if corrupt:
        (root / "a" / "0.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")


def test_input_only_reports_rate_and_plan(tmp_path):
    _jpeg_folder(tmp_path, corrupt=False)
    cfg = TrainConfig(dataset="folder", data_dir=str(tmp_path), batch_size=4, image_size=32, max_steps=3,
                      input_only=True, target_images_per_s=1000.0, model_dir=str(tmp_path / "run"))
    lines = report(cfg)
    assert "--dataset=folder --crop=pycls at 32px, batch 4, 12 images" in lines[0]
    assert "images per core-second" in lines[1] and "for 1000 images/s:" in lines[2]


@pytest.mark.parametrize("corrupt", [False, True])
def test_skip_failures_gives_robust_maps_images_and_counts_each_failure_once(tmp_path, corrupt):
    _jpeg_folder(tmp_path, corrupt)
    source = folder.make_source(str(tmp_path), val_fraction=None)

    def records() -> tf.data.Dataset:  # a fresh one each time: a seeded shuffle reshuffles per iteration
        return tf.data.Dataset.zip((tf.data.Dataset.range(16), source.train_records(None, 0).take(16)))

    def fn(position, record):
        seed = tf.stack([tf.constant(0, tf.int64), position])
        return source.train_map(record[0], seed, 16), tf.cast(record[1], tf.int64)

    old = list(robust_map(records(), fn, 16, deterministic=True))
    new = list(skip_failures(records(), fn, 16, 16, deterministic=True))
    assert len(new) == 16
    old_good = [(x.numpy(), int(y)) for x, y in old if int(y) != INVALID_LABEL]
    new_good = [(x.numpy(), int(y)) for x, y in new if int(y) != INVALID_LABEL]
    assert len(new_good) == len(old_good) == 16 - corrupt * sum(int(y) == INVALID_LABEL for _, y in old)
    for (a, la), (b, lb) in zip(old_good, new_good):  # same images, same augmentation, same order
        assert la == lb
        np.testing.assert_array_equal(a, b)
    if corrupt and len(old_good) < 16:
        assert int(new[-1][1]) == INVALID_LABEL  # the failure's placeholder comes at the end
