"""Data before tensors: the pure modules never import TensorFlow or Keras."""

import subprocess
import sys

from tests.helpers.quiet import assert_quiet

PURE = ["keras_regnet", "keras_regnet.spec", "keras_regnet.regnet", "keras_regnet.complexity",
        "keras_regnet.zoo", "keras_regnet.presets", "keras_regnet.pretrained.tags", "keras_regnet.__main__",
        "keras_regnet.design_space.latency_model"]


def test_pure_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PURE)
        + "heavy = sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules)\n"
        + "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_zoo_table_cli_prints_every_model_with_reference_figures():
    out = subprocess.run([sys.executable, "-m", "keras_regnet"], capture_output=True, text=True, check=True)
    assert_quiet(out)
    lines = out.stdout.strip().splitlines()
    lines = lines[:lines.index("")]  # the zoo table; the weights table follows
    assert len(lines) == 2 + 30
    y600 = next(line for line in lines if line.startswith("| RegNetY-600MF "))
    assert "| 601.2 | 6.06 | 4.33 | 24.54 |" in y600
