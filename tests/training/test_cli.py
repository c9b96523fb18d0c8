"""CLI errors: one line naming the flag and what is allowed, never a stack trace."""

from __future__ import annotations

import os
import sys

import pytest
from tests.helpers import prefetch
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)
EVALUATE = ("training.evaluate", "--model", "regnety_600mf", "--weights", "/nope.weights.h5", "--dataset", "digits")


def _command(key: tuple[str, ...], timeout: int = 120):
    """`python -m MODULE ARGS...` for key (MODULE, *ARGS), deferred; each is its own process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    return prefetch.run([sys.executable, "-m", *key], cwd=ROOT, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def cli(request):
    """The module's CLI runs, started together (half of them import TensorFlow before they fail)."""
    keys = [("training.main", *args) for args in prefetch.selected_params(
        request, "test_bad_flags_give_one_line_errors", "args")]
    keys += [("training.main", "--helpfull")] if prefetch.selected(request, "test_helpfull_documents_the_flags") else []
    keys += [EVALUATE] if prefetch.selected(request, "test_evaluate_needs_existing_weights") else []
    runs = prefetch.Prefetch(_command, keys)
    yield lambda *key: runs.get(tuple(key))
    runs.close()


@pytest.mark.parametrize("args, flag, allowed", [
    (["--model", "regnety_7gf"], "--model", "regnety_600mf"),
    (["--model", "missing.json"], "--model", "no such JSON spec file"),
    (["--dataset", "imagenet2012"], "--data_dir", "needs --data_dir"),
    (["--dataset", "folder", "--data_dir", "/nonexistent/dir"], "--data_dir", "not an existing directory"),
    (["--strategy", "horovod"], "--strategy", "one_device"),
    (["--xla", "maybe"], "--xla", "auto"),
    (["--epochs", "2", "--warmup_epochs", "3"], "--warmup_epochs", "<= --epochs"),
    (["--batch_size", "0"], "--batch_size", "positive integer"),
    (["--lr", "-1"], "--lr", "> 0"),
    (["--lr", "inf"], "--lr", "finite number > 0"),
    (["--weight_decay", "nan"], "--weight_decay", "finite number >= 0"),
    (["--model", "regnety_200mf", "--image_size", "16"], "--image_size", ">= 32"),
    (["--sync_bn", "--xla", "on"], "--sync_bn", "--xla=off"),
    (["--strategy", "multi_worker_mirrored"], "--strategy=multi_worker_mirrored", "TF_CONFIG"),
    (["--strategy", "tpu"], "--strategy=tpu", "--tpu=NAME"),  # no TPU here: resolver error, named
    (["--model_dir", "setup.py", "--max_steps", "1"], "--model_dir='setup.py'", "writable directory"),
    (["--ema_decay", "1.0"], "--ema_decay", "[0, 1)"),
    (["--mixup_alpha", "-0.2"], "--mixup_alpha", ">= 0"),
    (["--cutmix_alpha", "1", "--mixup_switch_prob", "2"], "--mixup_switch_prob", "[0, 1]"),
])
def test_bad_flags_give_one_line_errors(cli, args, flag, allowed):
    result = cli("training.main", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    message = [line for line in result.stderr.splitlines() if "FATAL" in line or "Error" in line]
    assert message and flag in message[-1] and allowed in message[-1], result.stderr[-2000:]


def test_helpfull_documents_the_flags(cli):
    out = cli("training.main", "--helpfull").stdout
    for flag in ("--model", "--dataset", "--data_dir", "--epochs", "--batch_size", "--lr", "--strategy",
                 "--xla", "--mixed_precision", "--model_dir", "--[no]resume", "--seed", "--image_size",
                 "--[no]sync_bn", "--label_smoothing", "--checkpoint_every", "--ema_decay",
                 "--mixup_alpha", "--cutmix_alpha", "--mixup_switch_prob"):
        assert flag in out, flag


def test_evaluate_needs_existing_weights(cli):
    result = cli(*EVALUATE)
    assert result.returncode == 2 and "--weights" in result.stderr and "Traceback" not in result.stderr
