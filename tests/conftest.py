"""Shared test setup: quiet TensorFlow, two logical CPUs available, reference data at hand."""

import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

DATA_DIR = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference_zoo() -> dict:
    """Published figures of the 24 zoo models, keyed by display name (RegNetY-600MF)."""
    with open(DATA_DIR / "regnet_zoo.json") as f:
        return {m["name"]: m for m in json.load(f)["models"]}


def pytest_collection_modifyitems(config, items):
    """Deselect the zoo harness's `zoo(full_only=True)` models unless the -m expression names zoo."""
    if "zoo" in (config.option.markexpr or ""):
        return
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("zoo")
        (drop if mark is not None and mark.kwargs.get("full_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
