"""Typed errors: each kind is a ValueError (old `except ValueError` keeps working), causes are chained,
every CLI prints one line whose prefix names the kind, and no library code drops a cause."""

import ast
import subprocess
import sys

import pytest

from keras_regnet.errors import ConfigError, DataError, ExportError, RegNetError, WeightsError, cli_boundary, one_line
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


@pytest.mark.parametrize("kind,prefix", [(ConfigError, "config error"), (WeightsError, "weights error"),
                                         (DataError, "data error"), (ExportError, "export error")])
def test_each_kind_is_a_value_error_with_its_own_prefix(kind, prefix):
    assert issubclass(kind, RegNetError) and issubclass(kind, ValueError)
    assert one_line(kind("bad --x=3; use 1 or 2")) == f"FATAL {prefix}: bad --x=3; use 1 or 2"


def test_one_line_folds_the_message_and_names_the_cause():
    try:
        try:
            int("seven")
        except ValueError as err:
            raise DataError("shard train-00001\n is corrupt") from err
    except DataError as err:
        line = one_line(err)
    assert "\n" not in line
    assert line == ("FATAL data error: shard train-00001 is corrupt "
                    "(cause: ValueError: invalid literal for int() with base 10: 'seven')")


def test_the_boundary_turns_errors_into_one_line_and_exit_code_2(capsys):
    def main(argv):
        raise WeightsError(f"no weights for {argv[1]}")

    assert cli_boundary(main)(["prog", "regnetx_200mf"]) == 2
    assert capsys.readouterr().err == "FATAL weights error: no weights for regnetx_200mf\n"
    assert cli_boundary(lambda argv: 0)(["prog"]) == 0


def test_library_code_never_drops_a_cause_with_from_none():
    dropped = []
    for package in ("keras_regnet", "training", "tflite"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Raise) and isinstance(node.cause, ast.Constant) and node.cause.value is None:
                    dropped.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert dropped == []


def test_library_raises_typed_errors_not_bare_value_errors():
    bare = []
    for package in ("keras_regnet", "training", "tflite"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                exc = node.exc if isinstance(node, ast.Raise) else None
                if isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name) and exc.func.id == "ValueError":
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bare == []


def test_a_cli_prints_the_kind_on_one_line_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "design_lab.analyze", str(tmp_path / "missing")],
                            capture_output=True, text=True, cwd=str(ROOT))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("FATAL")]
    assert len(lines) == 1 and lines[0].startswith("FATAL data error: ") and "is not a sweep directory" in lines[0]
