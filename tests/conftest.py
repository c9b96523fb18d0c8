"""Shared test setup: quiet TensorFlow, two logical CPUs available, reference data at hand, parallel workers."""

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


def pytest_xdist_auto_num_workers(config) -> int:
    """Workers for `-n auto` (pytest.ini): one per core, at most 4, and one per 6 GiB of memory.

    Test files go to workers whole (`--dist loadfile`), so a module's shared runs stay in one process. Each
    worker imports TensorFlow, JAX and Keras and starts training subprocesses, hence the memory bound.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = 12.0
    return max(1, min(cores, 4, int(memory_gib // 6)))
