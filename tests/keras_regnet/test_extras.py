"""A missing optional dependency ends a CLI with one line naming the pip extra (exit 2); any other
error before training keeps its own traceback (no UnboundLocalError from an except clause)."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import runpy
import subprocess
import sys

import pytest
import setuptools

from keras_regnet.errors import DataError, ExportError, cli_boundary
from keras_regnet.extras import EXTRA_OF_MODULE, install_command, missing_dependency_line
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)


def _setup_kwargs(monkeypatch) -> dict:
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(os.path.join(ROOT, "setup.py"))
    return captured


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_each_mapped_module_comes_with_the_extra_it_names(monkeypatch):
    kw = _setup_kwargs(monkeypatch)
    assert "ai-edge-litert" in _names(kw["install_requires"])  # every export verifies its files on LiteRT
    owners = md.packages_distributions()
    for module, extra in EXTRA_OF_MODULE.items():
        wanted = _names(kw["extras_require"][extra])
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        assert dists, f"{module} is not installed here (the test extra installs every extra)"
        pulled = set().union(*(_names(md.requires(d) or []) for d in wanted))  # one level down: jax -> jaxlib
        assert dists & (wanted | pulled), (module, extra, dists, wanted)


def test_the_line_names_the_extra_and_the_cause():
    err = ModuleNotFoundError("No module named 'tf2onnx.tfonnx'", name="tf2onnx.tfonnx")
    assert missing_dependency_line(err) == (
        "FATAL missing dependency: the optional module 'tf2onnx.tfonnx' is not installed (ModuleNotFoundError: "
        "No module named 'tf2onnx.tfonnx'); install it with: pip install \"keras-regnet[onnx]\"")
    assert install_command("torch") == "pip install torch"
    wrapped = RuntimeError("backend failed to load")
    wrapped.__cause__ = ModuleNotFoundError("No module named 'jax'", name="jax")
    assert missing_dependency_line(wrapped).endswith('pip install "keras-regnet[jax]"')
    assert missing_dependency_line(ModuleNotFoundError("No module named 'numpyy'", name="numpyy")) is None
    assert missing_dependency_line(ImportError("cannot import name 'x' from 'y'")) is None


def test_the_cli_boundary_prints_the_extra_and_reraises_other_import_errors(capsys):
    def needs_qat(argv):
        raise ModuleNotFoundError("No module named 'tensorflow_model_optimization'",
                                  name="tensorflow_model_optimization")

    assert cli_boundary(needs_qat, exit_code=1)(["prog"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith('install it with: pip install "keras-regnet[qat]"\n')

    def broken(argv):
        raise ImportError("cannot import name 'gone' from 'keras_regnet.spec'")

    with pytest.raises(ImportError, match="cannot import name 'gone'"):
        cli_boundary(broken)(["prog"])
    assert cli_boundary(lambda argv: (_ for _ in ()).throw(DataError("bad")), exit_code=1)(["prog"]) == 1
    capsys.readouterr()

    def needs_onnx(argv):
        try:
            raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
        except ImportError as err:
            raise ExportError("--formats=onnx needs onnx: pip install 'keras-regnet[onnx]'") from err

    assert cli_boundary(needs_onnx, exit_code=1)(["prog"]) == 2  # a typed error caused by a missing extra
    assert capsys.readouterr().err == ("FATAL export error: --formats=onnx needs onnx: pip install "
                                       "'keras-regnet[onnx]' (cause: ModuleNotFoundError: No module named 'onnx')\n")


DRIVER = """
import sys
import training.run
def prepare(cfg, spec=None):
    raise {error}
training.run.prepare = prepare
from absl import app
from training import main
sys.argv = ["training.main"]
app.run(main.main)
"""


@pytest.mark.parametrize("error, code, shown", [
    ('ModuleNotFoundError("No module named \'jax\'", name="jax")', 2,
     'FATAL missing dependency: the optional module \'jax\' is not installed (ModuleNotFoundError: No module '
     'named \'jax\'); install it with: pip install "keras-regnet[jax]"'),
    ('ImportError("cannot import name \'gone\' from \'keras_regnet.spec\'")', 1,
     "ImportError: cannot import name 'gone' from 'keras_regnet.spec'"),
    ('RuntimeError("the device vanished")', 1, "RuntimeError: the device vanished"),
    ('__import__("training.core.divergence").core.divergence.Diverged("training loss became nan at step 3")', 3,
     "FATAL training loss became nan at step 3"),
])
def test_training_main_shows_the_cause_of_an_error_in_prepare(error, code, shown):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", DRIVER.format(error=error)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == code, result.stderr[-3000:]
    assert "UnboundLocalError" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == shown, result.stderr[-3000:]
    assert ("Traceback" in result.stderr) == (code == 1)  # known kinds are one line; the unexpected keep theirs
