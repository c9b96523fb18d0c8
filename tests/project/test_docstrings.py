"""The public API documents its arguments, result and an example (as keras-hub backbones do), the
zoo builders state their model's figures, and the examples run as written (doctest)."""

import doctest

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_regnet  # noqa: E402
from keras_regnet.zoo import ZOO  # noqa: E402

PUBLIC = ["build", "RegNet", "AnyNet", "feature_extractor", "pyramid_outputs",
          *[entry.function_name for entry in ZOO.values()]]
# Examples cheap enough to run: a zoo builder's example builds its model at 224x224.
RUN = ["build", "RegNet", "AnyNet", "feature_extractor", "pyramid_outputs", "RegNetX200MF", "RegNetY200MF"]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_functions_have_args_returns_and_example_sections(name):
    doc = getattr(keras_regnet, name).__doc__
    for section in ("\nArgs:\n", "\nReturns:\n", "\nExample:\n", "\n>>> "):
        assert section in doc.replace("\n    ", "\n"), f"{name}: no {section.strip()!r}"


@pytest.mark.parametrize("entry", [e for e in ZOO.values() if not e.beyond_paper], ids=lambda e: e.function_name)
def test_zoo_docstrings_state_the_models_figures(entry, reference_zoo):
    ref = reference_zoo[entry.display_name]
    doc = getattr(keras_regnet, entry.function_name).__doc__
    assert doc.startswith(entry.display_name)
    assert f"{ref['flops'] / 1e6:.1f}M multiply-adds and {ref['params'] / 1e6:.2f}M parameters" in doc
    assert f"top-1 accuracy {100 - ref['top1_err']:.1f}%" in doc
    assert f"`{entry.keras2_name}`" in doc
    assert f"(None, 7, 7, {ref['widths'][-1]})" in doc  # the example's output shape


@pytest.mark.parametrize("name", RUN)
def test_docstring_examples_run_as_written(name):
    obj = getattr(keras_regnet, name)
    test = doctest.DocTestFinder(recurse=False).find(obj, name, globs={"np": np})[0]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures = []
    result = runner.run(test, out=failures.append)
    assert result.attempted > 0 and result.failed == 0, "".join(failures)
    keras.backend.clear_session()
