"""PyPI's `tflite` flatbuffer parser shares our top-level name: installed beside us it is reported
with a warning; when it has overwritten our `tflite/__init__.py`, the export CLI stops with advice
instead of failing somewhere inside the parser."""

import os
import pathlib
import shutil
import subprocess
import sys
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


def _fake_foreign_distribution(site: pathlib.Path) -> None:
    """A dist-info for PyPI's `tflite` 2.18.0, as pip leaves it (importlib.metadata reads it)."""
    info = site / "tflite-2.18.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tflite\nVersion: 2.18.0\n")


def _run(code: str, pythonpath: list[pathlib.Path], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath), PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(cwd))


def test_no_warning_without_the_parser(tmp_path):
    result = _run("import tflite, tflite.name_clash as n; print(n.foreign_version())", [ROOT], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    assert "TfliteNameClash" not in result.stderr


def test_installed_parser_is_reported_with_what_to_do(tmp_path):
    _fake_foreign_distribution(tmp_path / "site")
    result = _run("import tflite", [ROOT, tmp_path / "site"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "TfliteNameClash" in result.stderr and "tflite` 2.18.0" in result.stderr
    assert "pip uninstall -y tflite" in result.stderr


def test_export_stops_with_advice_when_the_parser_replaced_our_init(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(ROOT / "tflite", site / "tflite", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "tflite" / "__init__.py").write_text("from tflite.Model import Model\n")  # the parser's easy import
    (site / "tflite" / "Model.py").write_text("class Model:\n    pass\n")
    _fake_foreign_distribution(site)
    result = _run("import runpy; runpy.run_module('tflite.export', run_name='__main__')", [site, ROOT], tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the `tflite` package imported from"), result.stderr[-2000:]
    assert "not keras-regnet's" in last and "2.18.0" in last and "pip uninstall -y tflite" in last
