"""Preemption: SIGKILL mid-epoch, restart, finish with the right step count; NaN stops cleanly."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import prefetch
from tests.helpers.run_dir import committed_step, non_finite_arrays, sigkill_when
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)
TIMEOUT = 480
# 1433 digits / batch 64 = 22 steps per epoch; 2 epochs = 44 steps; checkpoint every 4 steps.
ARGS = ["--model", "regnetx_digits", "--image_size", "16", "--epochs", "2", "--batch_size", "64",
        "--checkpoint_every", "4", "--verbose", "0"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    return env


def _checkpoints(model_dir: str) -> list[int]:
    names = glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index"))
    return sorted(int(re.search(r"ckpt-(\d+)\.index$", n).group(1)) for n in names)


def _final_weights(model_dir: str) -> list:
    import keras

    import keras_regnet  # noqa: F401 (registers the custom layers)

    return keras.saving.load_model(os.path.join(model_dir, "model.keras")).get_weights()


def _nan_command(model_dir: str) -> list[str]:
    """A diverging run (issue 35): the state overflows steps before the loss shows it."""
    return [sys.executable, "-m", "training.main", *ARGS, "--lr", "1e6", "--warmup_epochs", "0",
            "--checkpoint_every", "1", "--model_dir", model_dir]


@pytest.fixture(scope="module", autouse=True)
def nan_run(request, tmp_path_factory):
    """The diverging run, started with the module (when its test is selected) beside the kill/resume runs."""
    model_dir = str(tmp_path_factory.mktemp("nan") / "nan")
    runs = prefetch.Prefetch(lambda _: prefetch.run(_nan_command(model_dir), cwd=ROOT, env=_env(), timeout=TIMEOUT),
                             ["nan"] if prefetch.selected(
                                 request, "test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint") else [])
    yield lambda: (model_dir, runs.get("nan"))
    runs.close()


@pytest.mark.parametrize("recipe", [[], ["--augment=randaugment", "--random_erasing=0.25"]],
                         ids=["paper", "randaugment"])
def test_sigkill_mid_epoch_then_resume_finishes_without_lost_or_repeated_work(tmp_path, recipe):
    model_dir = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "training.main", *ARGS, *recipe, "--deterministic", "--model_dir", model_dir]
    # The same run, uninterrupted, side by side: the resumed run must end with its weights.
    whole_dir = str(tmp_path / "whole")
    whole = subprocess.Popen(cmd[:-1] + [whole_dir], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_when(proc, lambda: 4 <= committed_step(model_dir) < 22, TIMEOUT, poll=0.1)
    killed_at = committed_step(model_dir)
    assert 4 <= killed_at < 44 and not os.path.exists(os.path.join(model_dir, "metrics.json"))
    assert os.path.exists(os.path.join(model_dir, "run.lock"))  # the killed run's lock: taken over below

    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["steps"] == 44 and max(_checkpoints(model_dir)) == 44
    assert metrics["resumed_from_step"] == killed_at  # nothing lost beyond the last checkpoint
    # Every epoch's eval once: none repeated, and one finished before the kill is not lost.
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    assert "Done:" in done.stdout and "metrics.json" in done.stdout
    assert not os.path.exists(os.path.join(model_dir, "run.lock"))  # released at the end

    again = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0 and json.load(open(os.path.join(model_dir, "metrics.json")))["steps"] == 44

    try:
        _, err = whole.communicate(timeout=TIMEOUT)
    finally:
        if whole.poll() is None:
            whole.kill()
            whole.wait()
    assert whole.returncode == 0, err.decode()[-3000:]
    resumed, uninterrupted = _final_weights(model_dir), _final_weights(whole_dir)
    assert len(resumed) == len(uninterrupted)
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(a, b)  # bit-identical: same data, same draws, same order


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(nan_run):
    model_dir, result = nan_run()
    assert result.returncode == 3, result.stderr[-3000:]
    line = [l for l in result.stderr.splitlines() if re.search("training (loss|state) became", l)][-1]
    assert "--lr" in line and "Traceback" not in result.stderr
    good = re.search(r"Last good checkpoint: (\S+)$", line).group(1)
    assert os.path.exists(good + ".index")
    stopped_at = int(re.search(r" at step (\d+) ", line).group(1))
    assert max(_checkpoints(model_dir)) == int(re.search(r"ckpt-(\d+)$", good).group(1)) < stopped_at
    # The named checkpoint resumes: every weight, BN statistic, optimizer slot in it is finite.
    assert non_finite_arrays(good)[0] == 0, non_finite_arrays(good)


def test_resume_with_an_edited_json_spec_is_refused_naming_the_model_flag(tmp_path):
    """Same --model path, different network inside: a one-line --model error, not a restore error."""
    from training.core.config import TrainConfig
    from keras_regnet.resolve import BUILTIN
    from training.run import run

    spec = BUILTIN["regnetx_digits"].to_spec(name="tiny").to_dict()
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    cfg = TrainConfig(model=str(path), image_size=16, epochs=1, batch_size=64, max_steps=1,
                      model_dir=str(tmp_path / "run"), verbose=0, strategy="one_device")
    run(cfg)
    spec["stages"][-1]["width"] = 64  # edit the file in place, then resume the same model_dir
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"--model=.*spec\.json' builds a different network .*--model_dir"):
        run(cfg.replace(max_steps=2))


def test_resume_check_compares_networks_not_spellings_and_counts_classes():
    from keras_regnet.zoo import get_entry
    from training.core.config import TrainConfig
    from training.core.run_identity import check_same_run

    def config(name: str, classes: int = 10) -> dict:
        return {"model": name, "spec": get_entry(name).spec().to_dict(), "num_classes": classes,
                "epochs": 1, "batch_size": 8}

    cfg = TrainConfig(model="RegNetY-600MF", dataset="folder", data_dir="/data/flowers", model_dir="/run")
    check_same_run(json.loads(json.dumps(config("regnety_600mf"))), config("RegNetY-600MF"), cfg)
    with pytest.raises(ValueError, match="--model='RegNetY-600MF' builds a different network"):
        check_same_run(json.loads(json.dumps(config("regnety_800mf"))), config("RegNetY-600MF"), cfg)
    with pytest.raises(ValueError, match="--data_dir='/data/flowers' has 11 classes but .* has 10"):
        check_same_run(json.loads(json.dumps(config("regnety_600mf"))), config("RegNetY-600MF", 11), cfg)
    with pytest.raises(ValueError, match=r"--warmup_factor=0.5 differs from the run being resumed .*\(0.1\)"):
        check_same_run({**config("regnety_600mf"), "warmup_factor": 0.1},
                       {**config("regnety_600mf"), "warmup_factor": 0.5}, cfg)


def test_resumed_run_keeps_the_history_and_time_of_epochs_finished_before(tmp_path):
    """Stop after epoch 1 (as a preemption at the epoch end would), resume: metrics cover both epochs."""
    from training.core.config import TrainConfig
    from training.run import run

    cfg = TrainConfig(model="regnetx_digits", image_size=8, epochs=2, batch_size=128,
                      model_dir=str(tmp_path / "run"), verbose=0, strategy="one_device")
    first = run(cfg.replace(max_steps=11))  # 1433 // 128 = 11 steps per epoch
    assert [h["step"] for h in first["history"]] == [11]
    resumed = run(cfg)
    assert resumed["resumed_from_step"] == 11 and resumed["steps"] == 22
    assert [(h["epoch"], h["step"]) for h in resumed["history"]] == [(1, 11), (2, 22)]
    assert resumed["history"][0]["top1_err"] == first["history"][0]["top1_err"]
    assert resumed["train_time_s"] > first["train_time_s"] > 0
    with open(os.path.join(cfg.model_dir, "metrics.json")) as f:
        assert [h["epoch"] for h in json.load(f)["history"]] == [1, 2]



def test_a_config_json_written_before_the_config_groups_still_admits_its_run(tmp_path):
    """tests/data/config_2026_12_07.json is what the flat TrainConfig of 2026-12-07 (commit 50b99f1) wrote
    for this run: the grouped TrainConfig reads it, resumes the same run and refuses a changed flag."""
    import shutil

    import pytest

    from training.core.config import TrainConfig
    from training.core.run_identity import admit_resume, run_identity
    from training.run import prepare

    model_dir = tmp_path / "run"
    model_dir.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "data" / "config_2026_12_07.json", model_dir / "config.json")
    cfg, spec, _ = prepare(TrainConfig(model="regnetx_digits", image_size=16, batch_size=32, epochs=2,
                                       ema_decay=0.5, model_dir=str(model_dir)))
    latest = str(model_dir / "checkpoints" / "ckpt-4")
    assert admit_resume(cfg, run_identity(cfg, spec, 10), latest, is_chief=True)
    changed, _, _ = prepare(cfg.replace(ema_decay=0.25))
    with pytest.raises(ValueError, match=r"--ema_decay=0.25 differs from the run being resumed .*\(0.5\)"):
        admit_resume(changed, run_identity(changed, spec, 10), latest, is_chief=True)
