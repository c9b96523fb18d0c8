"""Preemption notices: SIGTERM mid-epoch stops at a step with its checkpoint; the rerun loses no step.

Both engines: the interrupted and resumed run ends with the weights of an uninterrupted --deterministic
one. The notice handling itself (SIGUSR1 / --preemption_signal, the grace bound) is checked in-process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_regnet.errors import ConfigError
from tests.helpers import prefetch
from tests.helpers.paths import REPO_ROOT
from tests.helpers.run_dir import logged_train_scalars, signal_when
from training.core.preemption import PREEMPTED_EXIT_CODE, Notices, check_signal, parse_signal

ROOT = str(REPO_ROOT)
TIMEOUT = 600  # as test_jax_engine: CI machines shared by parallel runs are slow
# 1433 digits / batch 32 = 44 steps an epoch, capped at 20; no scheduled mid-epoch checkpoint.
ARGS = ["--model", "regnetx_digits", "--image_size", "16", "--epochs", "1", "--batch_size", "32",
        "--checkpoint_every", "1000", "--max_steps", "20", "--verbose", "0", "--deterministic"]
ENGINES = ["tensorflow", "jax"] if importlib.util.find_spec("jax") else ["tensorflow"]


def _env(engine: str) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": engine}
    env.pop("TF_CONFIG", None)
    return env


def _command(engine: str, model_dir: str) -> list[str]:
    return [sys.executable, "-m", "training.main", f"--engine={engine}", *ARGS, "--model_dir", model_dir]


def _preempted_then_resumed(engine: str, model_dir: str):
    """SIGTERM once step 10 is logged; (the stopped process's stderr and code, the rerun)."""
    proc = subprocess.Popen(_command(engine, model_dir), cwd=ROOT, env=_env(engine), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        first: list[int] = []

        def step_ten_logged() -> bool:  # the event file's size once seen, then its growth (step 10's scalars)
            size = logged_train_scalars(model_dir)
            if not first and size:
                first.append(size)
            return bool(first) and size > first[0]

        signal_when(proc, signal.SIGTERM, step_ten_logged, TIMEOUT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    files = sorted(os.listdir(os.path.join(model_dir, "checkpoints")))
    rerun = subprocess.run(_command(engine, model_dir), cwd=ROOT, env=_env(engine), capture_output=True, text=True,
                           timeout=TIMEOUT)
    return proc.returncode, err, files, rerun


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("preempt")
    keys = [(e, kind) for e in prefetch.selected_params(request, "test_sigterm_mid_epoch_then_rerun_loses_no_step",
                                                         "engine") for kind in ("whole", "preempted")]

    def make(key):
        engine, kind = key
        model_dir = str(root / f"{engine}-{kind}")
        if kind == "whole":
            return prefetch.run(_command(engine, model_dir), cwd=ROOT, env=_env(engine), timeout=TIMEOUT)
        return lambda: (model_dir, _preempted_then_resumed(engine, model_dir))

    started = prefetch.Prefetch(make, keys)
    yield lambda engine, kind: started.get((engine, kind)), root
    started.close()


def _weights(model_dir: str) -> list[np.ndarray]:
    import keras

    import keras_regnet  # noqa: F401 (registers the custom layers)

    return keras.saving.load_model(os.path.join(model_dir, "model.keras")).get_weights()


@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_mid_epoch_then_rerun_loses_no_step(engine, runs):
    get, root = runs
    model_dir, (code, err, files, rerun) = get(engine, "preempted")
    assert code == PREEMPTED_EXIT_CODE, err[-3000:]
    line = err.strip().splitlines()[-1]
    found = re.fullmatch(r"preempted by SIGTERM: stopped after step (\d+) of 20 with checkpoint (\S+) written; "
                         r"rerun the same command \(same --model_dir=(\S+)\) to resume from it", line)
    assert found, err[-3000:]
    step = int(found.group(1))
    assert 10 <= step < 20 and "Traceback" not in err  # mid-epoch, past the logged step 10
    assert found.group(2).endswith(f"ckpt-{step}" + (".npz" if engine == "jax" else ""))
    assert any(f.startswith(f"ckpt-{step}.") for f in files), files  # written at the step it stopped after
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert metrics["resumed_from_step"] == step and metrics["steps"] == 20
    whole = get(engine, "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    for a, b in zip(_weights(model_dir), _weights(str(root / f"{engine}-whole")), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical: no step lost or repeated


def test_a_notice_is_a_flag_and_the_extra_signal_counts_too():
    with Notices("SIGUSR1", grace_s=60) as notices:
        assert not notices.requested()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert notices.requested() and notices.received == "SIGUSR1"
        assert notices.requested(lambda flag: False) is False  # the engines' agreement decides
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_no_step_boundary_within_the_grace_period_exits_anyway():
    fired = []
    with Notices("none", grace_s=0.1, on_timeout=fired.append):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
    assert fired == ["SIGTERM"]
    with Notices("none", grace_s=0.1, on_timeout=fired.append) as notices:  # stopped in time: no exit
        os.kill(os.getpid(), signal.SIGTERM)
        assert notices.requested()
    time.sleep(0.3)
    assert fired == ["SIGTERM"]


def test_preemption_signal_flag_values():
    assert parse_signal("USR2") == signal.SIGUSR2 and parse_signal("sigusr1") == signal.SIGUSR1
    assert parse_signal("none") is None and parse_signal("10") == signal.Signals(10)
    with pytest.raises(ConfigError, match="--preemption_signal='SIGFOO' is not a signal"):
        parse_signal("SIGFOO")
    with pytest.raises(ConfigError, match="--preemption_signal='SIGKILL' cannot be caught"):
        check_signal("SIGKILL")
