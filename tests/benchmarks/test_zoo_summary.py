"""benchmarks/zoo_summary.py: the ratios it prints from a zoo table (a tiny CSV written here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks import zoo_summary
from tests.helpers.paths import REPO_ROOT

REPO = str(REPO_ROOT)

CSV = """# Test CPU, 2 cores, TensorFlow 0.0; 224x224; 1 min for 3 models
model,tf_b1_ms,timm_b1_ms,train_step_s,timm_train_step_s,onnxruntime_b1_ms,seconds,failed
RegNetX-200MF,10.0,5.0,0.2,0.4,,20,
RegNetY-600MF,16.0,32.0,0.6,0.8,8.0,30,
RegNetY-32GF,400.0,500.0,,,,10,train (killed: out of memory?)
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "benchmarks.csv"
    path.write_text(CSV, encoding="utf-8")
    return str(path)


def test_ratios_divide_the_named_columns_and_skip_rows_missing_either(table):
    _, rows = zoo_summary.read_table(table)
    assert zoo_summary.ratios(rows, "tf_b1_ms", "timm_b1_ms") == [
        ("RegNetX-200MF", 2.0), ("RegNetY-600MF", 0.5), ("RegNetY-32GF", 0.8)]
    train = zoo_summary.ratios(rows, "train_step_s", "timm_train_step_s")
    assert [model for model, _ in train] == ["RegNetX-200MF", "RegNetY-600MF"]
    assert [value for _, value in train] == pytest.approx([0.5, 0.75])
    assert zoo_summary.ratios(rows, "onnxruntime_b1_ms", "tf_b1_ms") == [("RegNetY-600MF", 0.5)]


def test_summary_gives_range_median_losers_failures_and_the_machine(table):
    text = zoo_summary.summary(*zoo_summary.read_table(table))
    lines = text.splitlines()
    assert lines[0].startswith("Test CPU, 2 cores")
    assert "3 models, 1 min of row time" in text
    assert "failed stages: RegNetY-32GF (train (killed: out of memory?))" in text
    tf_line = next(line for line in lines if line.startswith("TF SavedModel batch 1 / timm"))
    assert "0.50-2.00x, median 0.80 (3 models)" in tf_line
    assert tf_line.endswith("slower than timm: RegNetX-200MF 2.00")
    train_line = next(line for line in lines if line.startswith("train step / timm"))
    assert train_line.endswith("median 0.62 (2 models)")  # nothing above 1: no losers listed
    assert "LiteRT int8 without / with XNNPACK: no rows with both figures" in text


def test_a_file_that_is_not_a_zoo_table_is_a_clear_cli_error(tmp_path):
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "zoo_summary.py"), f"--csv={bad}"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert f"{bad} holds no zoo rows" in result.stderr
    assert "Traceback" not in result.stderr
