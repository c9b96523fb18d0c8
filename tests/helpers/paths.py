"""Where the tests' files are: the repository root, the golden reference cases and the reference data."""

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
GOLDEN = TESTS_DIR / "golden"
DATA_DIR = TESTS_DIR / "data"
