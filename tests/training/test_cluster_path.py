"""The path a cluster user runs, end to end: ImageNet TFRecords at 224, two replicas, kill, resume.

`python -m training.main --model=regnetx_200mf --dataset=tfrecord` with the recipe's defaults
(LR rule, warmup, decay, precise BN, eval at 256/224) scaled to a batch of 8, on the CPU split into two
logical devices (MirroredStrategy, as on a 2-GPU host). Shards are written here in the layout of
TensorFlow's ImageNet build script: JPEGs of ImageNet's sizes, 1-based labels over 1000 classes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tests.helpers.run_dir import committed_step
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)
TIMEOUT = 600
LAUNCH = ("import sys, tensorflow as tf\n"
          "cpu = tf.config.list_physical_devices('CPU')[0]\n"
          "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
          "from absl import app\n"
          "from training import main\n"
          "app.run(main.main)\n")


def _write_imagenet_shards(root: str) -> None:
    """24 train records in 2 shards, 16 validation records in 1, photo-like 500x375 / 333x500 JPEGs."""
    rng = np.random.default_rng(0)
    for split, shards, per_shard in (("train", 2, 12), ("validation", 1, 16)):
        for s in range(shards):
            path = os.path.join(root, f"{split}-{s:05d}-of-{shards:05d}")
            with tf.io.TFRecordWriter(path) as writer:
                for i in range(per_shard):
                    h, w = (375, 500) if i % 2 else (500, 333)
                    yy, xx = np.mgrid[0:h, 0:w]
                    base = np.stack([np.sin(xx / rng.uniform(10, 60)), np.cos(yy / rng.uniform(10, 60)),
                                     (xx + yy) / (h + w)], axis=-1) * 100 + 100
                    pixels = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
                    feature = {
                        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                            value=[tf.io.encode_jpeg(pixels, quality=85).numpy()])),
                        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                            value=[int(rng.integers(1, 1001))])),
                    }
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_imagenet_tfrecords_on_two_replicas_killed_and_resumed(tmp_path):
    data_dir, model_dir = str(tmp_path / "imagenet"), str(tmp_path / "run")
    os.makedirs(data_dir)
    _write_imagenet_shards(data_dir)
    # 24 records / batch 8 = 3 steps per epoch; 6 steps = 2 epochs, each ending in an eval.
    cmd = [sys.executable, "-c", LAUNCH, "--model=regnetx_200mf", "--dataset=tfrecord",
           f"--data_dir={data_dir}", "--strategy=mirrored", "--batch_size=8", "--train_examples=24",
           "--eval_examples=16", "--max_steps=6", "--checkpoint_every=1", "--verbose=2",
           f"--model_dir={model_dir}"]
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not 1 <= committed_step(model_dir) < 6:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        first_out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_at = committed_step(model_dir)
    assert 1 <= killed_at < 6 and not os.path.exists(os.path.join(model_dir, "metrics.json"))
    # The banner: two replicas, the recipe's LR for batch 8, BN over each replica's 4 images.
    assert "2 replicas" in first_out and "lr 0.00625" in first_out, first_out[-2000:]
    assert "BN over 4 images (per replica)" in first_out and "precision float32" in first_out

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["steps"] == 6 and metrics["resumed_from_step"] == killed_at
    assert (metrics["replicas"], metrics["image_size"], metrics["batch_size"], metrics["bn_images"]) == (2, 224, 8, 4)
    assert metrics["precise_bn_images"] == 8192  # the reference's precise BN before each eval
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert all(h["examples"] == 16 for h in metrics["history"])  # the whole validation split
    assert 0.0 <= metrics["top1_err"] <= 100.0 and metrics["skipped_images"] == {"train": 0.0, "eval": 0.0}
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert (config["crop"], config["weight_decay"], config["warmup_epochs"], config["epochs"]) == ("pycls", 5e-5, 5.0, 100)
    assert config["num_classes"] == 1000
