"""A batch larger than the training split is fitted to it (small photo folders fine-tune as the
README writes the command), keeping the replica-divisibility rule and the LR that follows the batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from keras_regnet.errors import ConfigError
from training.core import config as C
from training.core.batch_fit import fit_batch, fit_to_data
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)


@pytest.mark.parametrize("batch, num_train, replicas, expected", [
    (64, 1433, 1, 64),   # fits: unchanged
    (64, 64, 1, 64),     # exactly one step per epoch: unchanged
    (64, 38, 1, 38),     # the walkthrough: 3 classes x 16 photos, 20% held out
    (64, 38, 8, 32),     # a multiple of the replicas: 38 // 8 * 8
    (1024, 39, 4, 36),
])
def test_fit_batch_takes_the_largest_replica_multiple_that_fits(batch, num_train, replicas, expected):
    assert fit_batch(batch, num_train, replicas) == expected


def test_fewer_examples_than_replicas_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--batch_size=64: the training split has 3 examples, fewer than the 8"):
        fit_batch(64, 3, 8)


def test_the_recipe_lr_follows_the_fitted_batch_unless_lr_was_given():
    cfg = C.resolve(C.TrainConfig(dataset="folder", data_dir=ROOT))
    assert (cfg.batch_size, cfg.lr) == (64, 0.1 * 64 / 128)
    fitted, message = fit_to_data(cfg, 40, 1, lr_follows_batch=True)
    assert (fitted.batch_size, fitted.lr) == (40, pytest.approx(0.1 * 40 / 128))  # pycls: BASE_LR x batch / 128
    assert message == ("--batch_size=64 exceeds the 40 training examples of --dataset=folder: training with "
                       "batch 40 (one step per epoch), lr 0.03125 (was 0.05)")
    given = C.resolve(C.TrainConfig(dataset="folder", data_dir=ROOT, lr=0.2))
    fitted, message = fit_to_data(given, 40, 1, lr_follows_batch=False)
    assert (fitted.batch_size, fitted.lr) == (40, 0.2) and message.endswith("lr 0.2 (unchanged)")
    assert fit_to_data(given, 1433, 1, lr_follows_batch=False) == (given, None)


def test_the_fine_tuning_lr_does_not_follow_the_batch():
    cfg = C.resolve(C.TrainConfig(dataset="folder", data_dir=ROOT, weights="imagenet"))
    fitted, message = fit_to_data(cfg, 38, 1, lr_follows_batch=True)
    assert (fitted.batch_size, fitted.lr) == (38, cfg.lr) and message.endswith(f"lr {cfg.lr:g} (unchanged)")


def test_the_cli_trains_a_folder_smaller_than_the_default_batch(tmp_path):
    """48 photos, 20% held out, the default batch of 64: trains with batch 38, recorded in metrics.json."""
    from tests.helpers.standin import make_image_folder

    photos = make_image_folder(tmp_path / "photos", classes=3, per_class=16)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "training.main", "--model=regnetx_digits", "--dataset=folder",
         f"--data_dir={photos}", "--val_fraction=0.2", "--image_size=32", "--epochs=2",
         f"--model_dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("exceeds the 39 training examples") == 1, result.stdout[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["batch_size"], metrics["steps"]) == (39, 2)
    assert metrics["lr"] == pytest.approx(0.1 * 39 / 128)
    assert "batch 39," in result.stdout and " 0 images/s" not in result.stdout
