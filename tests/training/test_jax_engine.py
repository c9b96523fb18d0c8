"""The JAX engine of `training.main`: a run's directory as the TensorFlow engine writes it, a model.keras
that TensorFlow and TFLite read back with the JAX model's outputs, and SIGKILL + resume ending
bit-identical to an uninterrupted run. Each JAX run is a subprocess (Keras fixes its backend on import)."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tests.helpers import prefetch
from tests.helpers.paths import REPO_ROOT
from tests.helpers.run_dir import non_finite_arrays, sigkill_when

ROOT = str(REPO_ROOT)
TIMEOUT = 600
pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (.[jax])")
# 1433 digits / batch 64 = 22 steps per epoch.
SMALL = ["--model", "regnetx_digits", "--image_size", "16", "--batch_size", "64", "--verbose", "0"]


def test_the_step_model_normalises_each_devices_share():
    """Per-device BN (the paper's per-GPU BN): one ghost group per device unless --sync_bn or --bn_batch."""
    from training.core.config import TrainConfig
    from training.engines.jax.assembly import step_bn_batch

    assert step_bn_batch(TrainConfig(batch_size=64), devices=4) == 16
    assert step_bn_batch(TrainConfig(batch_size=64), devices=1) is None  # one group: plain BN
    assert step_bn_batch(TrainConfig(batch_size=64, sync_bn=True), devices=4) is None
    assert step_bn_batch(TrainConfig(batch_size=64, bn_batch=8), devices=4) == 8


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def jax_env(devices: int = 1) -> dict:
    """The environment of a JAX-engine subprocess: this checkout, the JAX backend, `devices` CPU devices."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env.pop("TF_CONFIG", None)
    return env


def train_jax(model_dir: str, *args: str, devices: int = 1) -> subprocess.CompletedProcess:
    """`python -m training.main --engine=jax ...` to completion; fails the test with its stderr if it fails."""
    cmd = [sys.executable, "-m", "training.main", "--engine=jax", *SMALL, *args, "--model_dir", model_dir]
    proc = subprocess.run(cmd, cwd=ROOT, env=jax_env(devices), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def jax_outputs(model_path: str, images_path: str, out_path: str) -> None:
    """The outputs (class probabilities) of a saved model.keras on saved images, under Keras' JAX backend."""
    code = textwrap.dedent(f"""
        import numpy as np, keras, keras_regnet
        assert keras.backend.backend() == "jax"
        model = keras.saving.load_model({model_path!r})
        np.save({out_path!r}, keras.ops.convert_to_numpy(model(np.load({images_path!r}), training=False)))
    """)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=jax_env(), check=True, timeout=TIMEOUT,
                   capture_output=True)


# One two-epoch run serves three tests: its directory (layout, learning), its model.keras (read back by
# TensorFlow, TFLite and the export CLI) and the uninterrupted twin of the killed-and-resumed run.
# Checkpoints every 10 steps: a mid-epoch one (10, 20) to kill at, and 44 as an epoch end, not a multiple.
TWO_EPOCHS = ["--epochs", "2", "--checkpoint_every", "10", "--deterministic", "--ema_decay", "0.9"]


def _checkpoints(model_dir: str) -> list[int]:
    names = glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.npz"))
    return sorted(int(re.search(r"ckpt-(\d+)\.npz$", n).group(1)) for n in names)


def _killed_and_resumed(killed: str) -> tuple[int, subprocess.CompletedProcess]:
    """SIGKILL a two-epoch run once a mid-epoch checkpoint exists, then rerun it: (resumed-at step, the rerun)."""
    cmd = [sys.executable, "-m", "training.main", "--engine=jax", *SMALL, *TWO_EPOCHS, "--model_dir", killed]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=jax_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_when(proc, lambda: any(4 <= s < 22 for s in _checkpoints(killed)), TIMEOUT)
    assert not os.path.exists(os.path.join(killed, "model.keras"))  # it really died mid-run
    resumed_at = max(_checkpoints(killed))
    return resumed_at, train_jax(killed, *TWO_EPOCHS)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """`runs("whole")`: the two-epoch run's directory; `runs("killed")`: (its killed twin's directory, step
    resumed at, the resuming process). The runs the selected tests need start together, side by side."""
    root = tmp_path_factory.mktemp("jax_runs")
    def whole() -> str:
        train_jax(str(root / "whole"), *TWO_EPOCHS)
        return str(root / "whole")

    make = {"whole": whole, "killed": lambda: (str(root / "killed"), *_killed_and_resumed(str(root / "killed")))}
    wanted = ["whole"] if prefetch.selected(
        request, "test_a_jax_run_writes_the_tensorflow_engines_run_directory_and_learns",
        "test_a_jax_run_exports_a_model_that_tensorflow_and_tflite_read_with_the_same_outputs",
        "test_sigkill_then_resume_ends_bit_identical_to_an_uninterrupted_jax_run") else []
    wanted += ["killed"] if prefetch.selected(
        request, "test_sigkill_then_resume_ends_bit_identical_to_an_uninterrupted_jax_run") else []
    started = prefetch.Prefetch(lambda key: make[key], wanted)
    yield started.get
    started.close()


def test_a_jax_run_writes_the_tensorflow_engines_run_directory_and_learns(runs):
    model_dir = runs("whole")
    metrics = read_json(os.path.join(model_dir, "metrics.json"))
    assert metrics["engine"] == "jax" and metrics["steps"] == 44 and metrics["strategy"] == "jax_data_parallel"
    assert metrics["eval_weights"] == "ema" and "raw_top1_err" in metrics
    compilation = metrics["compilation"]  # the persistent cache was on (default folder) and the compiles counted
    assert compilation["cache_dir"] and compilation["cache_hits"] + compilation["cache_misses"] >= 3, compilation
    assert compilation["compile_s"] > 0
    history = read_json(os.path.join(model_dir, "progress.json"))["history"]
    assert [h["step"] for h in history] == [22, 44]
    # Learning: the held-out loss falls over the two epochs and the error leaves chance (90%).
    assert history[1]["loss"] < history[0]["loss"] - 0.2 and metrics["top1_err"] < 80.0, history
    assert read_json(os.path.join(model_dir, "config.json"))["spec"]["name"] == "regnetx_digits"
    names = sorted(os.listdir(os.path.join(model_dir, "checkpoints")))
    assert names == ["ckpt-30.npz", "ckpt-40.npz", "ckpt-44.npz"]  # every 10 steps and each epoch end; 3 kept
    for split in ("train", "eval"):
        assert glob.glob(os.path.join(model_dir, "logs", split, "events.out.tfevents.*")), split


def test_a_jax_run_exports_a_model_that_tensorflow_and_tflite_read_with_the_same_outputs(tmp_path, runs):
    import keras

    import keras_regnet  # noqa: F401 (registers the custom layers)

    model_dir = runs("whole")
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    np.save(tmp_path / "x.npy", images)
    jax_outputs(os.path.join(model_dir, "model.keras"), str(tmp_path / "x.npy"), str(tmp_path / "jax.npy"))
    expected = np.load(tmp_path / "jax.npy")
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-5)  # a classifier: probabilities
    assert np.ptp(expected) > 5e-3  # not the uniform 0.1: a comparison below can fail
    on_tf = keras.saving.load_model(os.path.join(model_dir, "model.keras"))(images, training=False).numpy()
    np.testing.assert_allclose(on_tf, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    # The export CLI reads the JAX run directory as it reads a TensorFlow one.
    out_dir = str(tmp_path / "export")
    cmd = [sys.executable, "-m", "tflite.export", "--model=regnetx_digits", f"--weights={model_dir}",
           "--image_size=16", "--formats=float32", "--eval_images=8", f"--output_dir={out_dir}"]
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from tflite.report import tflite_predict

    (path,) = glob.glob(os.path.join(out_dir, "tflite", "*_float32.tflite"))
    np.testing.assert_allclose(tflite_predict(path, images), expected, rtol=1e-4, atol=1e-6)


def _weights(model_dir: str) -> list[np.ndarray]:
    import keras

    import keras_regnet  # noqa: F401

    return keras.saving.load_model(os.path.join(model_dir, "model.keras")).get_weights()


def test_sigkill_then_resume_ends_bit_identical_to_an_uninterrupted_jax_run(runs):
    killed, resumed_at, out = runs("killed")
    whole = runs("whole")
    metrics = read_json(os.path.join(killed, "metrics.json"))
    assert metrics["resumed_from_step"] == resumed_at and metrics["steps"] == 44, out.stdout[-500:]
    for a, b in zip(_weights(killed), _weights(whole)):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_jax_run_names_a_checkpoint_that_holds_only_finite_values(tmp_path):
    """Issue 35 item 1: with a huge LR the state overflows before the loss does; the checkpoint the stop
    message names must still resume (the run used to name one with 218 of 228 arrays non-finite)."""
    model_dir = str(tmp_path / "nan")
    cmd = [sys.executable, "-m", "training.main", "--engine=jax", *SMALL, "--epochs", "2", "--lr", "1e6",
           "--warmup_epochs", "0", "--checkpoint_every", "1", "--model_dir", model_dir]
    proc = subprocess.run(cmd, cwd=ROOT, env=jax_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = [l for l in proc.stderr.splitlines() if re.search("training (loss|state) became", l)][-1]
    assert "--lr" in line and "Traceback" not in proc.stderr
    good = re.search(r"Last good checkpoint: (\S+)$", line).group(1)
    stopped_at = int(re.search(r" at step (\d+) ", line).group(1))
    assert max(_checkpoints(model_dir)) == int(re.search(r"ckpt-(\d+)\.npz$", good).group(1)) < stopped_at
    assert non_finite_arrays(good)[0] == 0, non_finite_arrays(good)
