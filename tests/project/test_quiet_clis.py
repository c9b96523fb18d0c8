"""Quiet CLIs: each CLI prints its own progress and results, and TensorFlow's C++ logs, LiteRT's notices
and absl's INFO lines stay out unless `--verbosity`/`-v` asks for them (keras_regnet.cli_help.run).

The other CLIs' quietness is asserted on the runs their own tests already make (tests.helpers.quiet):
`python -m keras_regnet` (tests/project/test_pure_imports.py), keras_regnet.convert
(tests/keras_regnet/test_convert.py), design_lab.sweep (tests/design_lab/test_sweep.py),
design_lab.analyze (tests/design_lab/test_analyze.py), training.evaluate (tests/training/test_api.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from keras_regnet.cli_help import NATIVE_NOISE, requested_verbosity, wants_library_logs
from tests.helpers.paths import REPO_ROOT
from tests.helpers.quiet import assert_quiet, foreign_lines

ROOT = str(REPO_ROOT)

# Lines design_lab.latency printed on 2026-12-07 (81 lines, 3 of them its own).
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796644289.675306    5874 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796644289.675728    5874 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
    "E0000 00:00:1796644291.355787    5874 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "I0000 00:00:1796644300.694586    5874 single_machine.cc:376] Starting new session",
    "W0000 00:00:1796644322.875640    5874 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "I0000 00:00:1796644326.249765    5874 loader.cc:471] SavedModel load for tags { serve }; Status: success",
    "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: UINT8",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
]
KEPT = [
    "model 0: 94MF float32@1 7.35ms, float32@2 8.98ms, int8@1 5.95ms, int8@2 7.88ms (96s); 1/2 measured",
    "latency: sweeps/latency/latency.jsonl (2/2 networks measured)",
    "E0000 00:00:1796644291.355787    5874 bfc_allocator.cc:52] Allocator ran out of memory",
    "F0000 00:00:1796644291.355787    5874 check.cc:52] Check failed: x",
    "W1207 11:51:51.034789 139803846691712 xla_bridge.py:440] a Python warning through absl",
    "Traceback (most recent call last):",
    "FATAL config error: --lr must be a finite number > 0",
]


def test_verbosity_is_read_in_absls_spellings():
    for argv, value in ([["--verbosity=0"], 0], [["--verbosity", "1"], 1], [["-v", "0"], 0], [["-v=2"], 2],
                        [["--v=-1"], -1], [["-verbosity=0"], 0], [["--model=x"], None], [["--", "-v", "0"], None],
                        [["-v", "x"], None]):
        assert requested_verbosity(argv) == value, argv
    assert not wants_library_logs([], {}) and not wants_library_logs(["-v", "-1"], {})
    assert wants_library_logs(["-v", "0"], {}) and wants_library_logs([], {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert not wants_library_logs([], {"TF_CPP_MIN_LOG_LEVEL": "2"})


def test_the_filter_drops_native_info_and_warnings_and_keeps_the_clis_lines_and_errors():
    noise = re.compile(NATIVE_NOISE)
    assert [line for line in NOISE if not noise.match(line.encode())] == []
    assert [line for line in KEPT if noise.match(line.encode())] == []
    assert len(foreign_lines("\n".join(NOISE + KEPT[:2]))) == len(NOISE)  # the test's own counter agrees


FAKE_CLI = r"""
import os, sys
from keras_regnet import cli_help
from absl import logging

def main(argv):
    print("own progress", flush=True)
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                b"I0000 00:00:1796644289.675306    5874 port.cc:153] oneDNN custom operations are on.\n"
                b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    logging.info("Writing fingerprint to /tmp/x/fingerprint.pb")
    sys.stderr.write("10/10 [====] partial progress\r")
    sys.stderr.flush()
    print("own error line", file=sys.stderr)
    print("own result", flush=True)

cli_help.run(main)
"""


@pytest.mark.parametrize("verbosity", [None, "-v=0"])
def test_a_cli_drops_native_and_absl_info_lines_unless_verbosity_asks(verbosity):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-c", FAKE_CLI, *([verbosity] if verbosity else [])], cwd=ROOT,
                         env={**env, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["own progress", "own result"]
    assert run.stderr.index("10/10 [====] partial progress") < run.stderr.index("own error line")
    assert len(foreign_lines(run.stderr)) == (0 if verbosity is None else 4), run.stderr


LATENCY = ["-m", "design_lab.latency", "--space=regnetx", "--num_models=1", "--image_size=32",
           "--stem_width=8", "--num_classes=10", "--formats=float32", "--threads=1", "--tf_batch_size=0",
           "--warmup=0", "--min_runs=2", "--max_runs=2"]
EVALUATE = ["-m", "training.evaluate", "--model=regnetx_digits", "--weights=none", "--dataset=digits",
            "--image_size=16"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest sets it
    return {**env, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}


def test_latency_cli_prints_only_its_own_lines(tmp_path):
    """The issue's example (SavedModel export, conversion, LiteRT) with TF_CPP_MIN_LOG_LEVEL unset."""
    run = subprocess.run([sys.executable, *LATENCY, f"--sweep_dir={tmp_path}"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_quiet(run)
    assert "1/1 measured" in run.stdout and "latency:" in run.stdout


def test_verbosity_0_brings_tensorflows_info_lines_back():
    run = subprocess.run([sys.executable, *EVALUATE, "-v", "0"], cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "top-1 error" in run.stdout
    noise = foreign_lines(run.stdout, run.stderr)
    assert sum(".cc:" in line for line in noise) >= 2, noise  # absl's INFO lines: the fake CLI above
