"""The packages stack one way: design_lab -> training, tflite -> keras_regnet. keras_regnet imports
none of the others, training (the trainer) and tflite (the export) do not import each other nor the
lab (function-level imports included), so an export machine needs only the library and a training
machine no exporter; both read their shared data through keras_regnet.data."""

import ast

import numpy as np
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


def _imported_packages(package: str) -> dict[str, set[str]]:
    """file -> top-level packages it imports anywhere (module level, functions, __main__ guards)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = found
    return out


def test_the_walk_finds_function_level_imports():
    # design_lab.latency_bench imports tflite.to_tflite inside a function: the walk must see it.
    assert "tflite" in _imported_packages("design_lab")["design_lab/latency_bench.py"]


FORBIDDEN = {
    "keras_regnet": {"training", "tflite", "design_lab"},
    "training": {"tflite", "design_lab"},
    "tflite": {"training", "design_lab"},
}


def test_packages_import_only_downwards():
    offenders = {f: sorted(p & banned) for package, banned in FORBIDDEN.items()
                 for f, p in _imported_packages(package).items() if p & banned}
    assert offenders == {}


def test_export_and_training_share_one_digits_split():
    from tflite.calibration import digits_rgb
    from training.data.digits_stream import make_source

    source = make_source()
    _, test_labels = digits_rgb(8, "test")
    eval_labels = np.concatenate([y.numpy() for _, y in source.eval_records(None).batch(512)])
    assert len(test_labels) == source.num_eval == len(eval_labels)
    np.testing.assert_array_equal(test_labels, eval_labels)
