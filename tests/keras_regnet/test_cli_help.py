"""`--help` on every CLI lists that CLI's own flags, grouped by defining module, none of absl's, exit 0."""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

from keras_regnet.cli_help import wants_help
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)
CLIS = {  # module -> flags its --help must list
    "training.main": ("--model", "--batch_size", "--dataset", "--data_dir", "--weights", "--model_dir"),
    "training.evaluate": ("--model", "--weights", "--dataset", "--data_dir"),
    "design_lab.sweep": ("--space", "--num_models", "--sweep_dir", "--flops_range"),
    "design_lab.latency": ("--formats", "--image_size", "--flops_range"),
    "design_lab.analyze": ("--out_dir", "--bootstrap_repeats"),
    "design_lab.study": ("--spaces", "--n", "--study_dir", "--shard", "--engine"),
    "tflite.export": ("--model", "--weights", "--formats", "--calibration_data", "--output_dir"),
    "tflite.predict": ("--tflite", "--images", "--class_names", "--top_k"),
    "keras_regnet.convert": ("--model", "--checkpoint", "--output", "--naming"),
}


@pytest.mark.parametrize("module", sorted(CLIS))
def test_help_lists_the_clis_own_flags_and_exits_0(module):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for flag in CLIS[module]:
        assert f"  {flag}:" in out or f"  --[no]{flag[2:]}:" in out, (flag, out[:3000])
    for absl_flag in ("--logtostderr", "--verbosity", "--flagfile", "--only_check_args"):
        assert absl_flag not in out, absl_flag
    source = pathlib.Path(importlib.util.find_spec(module).origin).read_text()
    assert out.startswith(ast.get_docstring(ast.parse(source)).splitlines()[0]), out[:200]  # its docstring first


def test_wants_help_reads_only_the_help_flags_before_a_double_dash():
    assert wants_help(["--model=x", "--help"]) and wants_help(["-h"]) and wants_help(["--helpshort"])
    assert not wants_help(["--helpfull"]) and not wants_help(["--model=help"])
    assert not wants_help(["--", "--help"])
