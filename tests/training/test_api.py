"""training.api.train (the sweep runner's entry point) and the evaluation CLI on its output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from keras_regnet.spec import make_spec
from tests.helpers.paths import REPO_ROOT
from tests.helpers.quiet import assert_quiet

ROOT = str(REPO_ROOT)


def test_train_a_spec_briefly_returns_the_published_keys(tmp_path):
    from training.api import train

    spec = make_spec([1, 1], [16, 32], group_widths=8, stem_width=8, stem_stride=1, name="tiny")
    result = train(spec, epochs=1, batch_size=64, image_size=16, max_steps=4, seed=1)
    for key in ("top1_err", "top5_err", "train_time_s", "epochs", "steps", "images_per_s",
                "params", "flops", "model_dir"):
        assert key in result, key
    assert result["steps"] == 4 and result["model_dir"] is None
    assert 0.0 <= result["top5_err"] <= result["top1_err"] <= 100.0
    json.dumps(result)  # JSON-serialisable, for the sweep's JSONL


def test_evaluate_cli_reproduces_the_final_eval_of_a_run(tmp_path):
    from training.api import train

    model_dir = str(tmp_path / "run")
    result = train("regnetx_digits", epochs=1, batch_size=64, image_size=16, model_dir=model_dir)
    assert result["steps"] == 22 and os.path.exists(os.path.join(model_dir, "model.keras"))
    assert result["top1_err"] < 90.0  # above chance after one epoch
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-m", "training.evaluate", "--model", "regnetx_digits", "--dataset", "digits",
         "--weights", os.path.join(model_dir, "model.keras"), "--image_size", "16"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    top1, top5 = map(float, re.search(r"top-1 error ([\d.]+)%\s+top-5 error ([\d.]+)%", out.stdout).groups())
    assert abs(top1 - result["top1_err"]) < 0.01 and abs(top5 - result["top5_err"]) < 0.01
    assert "364 images" in out.stdout
    assert_quiet(out)


def test_evaluate_refuses_a_saved_model_of_a_different_network(tmp_path):
    """A RegNetY .keras scored as --model regnetx_digits used to load silently (SE layers ignored)."""
    import pytest

    from training.core import config as C
    from training.evaluate import evaluate
    from keras_regnet import resolve_spec
    from training.core.models import build_model

    path = str(tmp_path / "y.keras")
    build_model(resolve_spec("regnety_digits"), 16, 10).save(path)
    cfg = C.TrainConfig(model="regnetx_digits", dataset="digits", batch_size=64, image_size=16, verbose=0,
                        strategy="one_device", xla="off", mixed_precision="off")
    with pytest.raises(ValueError, match=r"--weights='.*y\.keras' holds a different network than "
                                         r"--model='regnetx_digits' \(24 layers it lacks: s1_b1_se_"):
        evaluate("regnetx_digits", path, cfg)
    assert evaluate("regnety_digits", path, cfg.replace(model="regnety_digits"))["examples"] == 364


def test_train_without_model_dir_writes_no_checkpoint_logs_or_model(tmp_path, monkeypatch):
    """Its directory is thrown away, so saving there only costs time (a study's model: seconds of ~20)."""
    import shutil
    import tempfile

    from training import api

    scratch = tmp_path / "scratch"
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **_: str(scratch))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # keep it, to look inside
    spec = make_spec([1, 1], [16, 32], group_widths=8, stem_width=8, stem_stride=1, name="tiny")
    result = api.train(spec, epochs=2, batch_size=64, image_size=16, max_steps=30, seed=1)
    assert result["steps"] == 30 and len(result["history"]) == 2  # an epoch end (22 steps) was passed
    assert result["checkpoint"] is None and result["model_path"] is None
    written = sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file())
    assert not [p for p in written if p.startswith(("checkpoints", "logs")) or p.endswith(".keras")], written
    assert result["seconds"]["checkpoint"] == 0.0
