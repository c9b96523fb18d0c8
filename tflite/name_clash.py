"""Detect PyPI's unrelated `tflite` distribution (a TFLite flatbuffer parser) sharing our top-level name.

Both install a top-level package called `tflite`: whichever is installed second overwrites the
other's `__init__.py`, and uninstalling either deletes files of the other. We keep the name (the
design card fixes `python -m tflite.export`), so we say what happened and what to do instead of
failing later with an AttributeError deep inside the parser's modules.
"""

from __future__ import annotations

import importlib.metadata
import sys
import warnings

FOREIGN_DISTRIBUTION = "tflite"
MARKER = "__keras_regnet__"
ADVICE = ("keep the parser in another virtual environment, or remove it and restore keras-regnet's files: "
          "`pip uninstall -y tflite && pip install --force-reinstall --no-deps keras-regnet` "
          "(a TFLite flatbuffer can also be read with `ai_edge_litert` or `tensorflow.lite`); see README, "
          "'The tflite name'")


class TfliteNameClash(UserWarning):
    """PyPI's `tflite` parser is installed beside keras-regnet's `tflite` package."""


def foreign_version() -> str | None:
    """Version of PyPI's `tflite` distribution when it is installed, else None."""
    try:
        return importlib.metadata.version(FOREIGN_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def require_ours() -> None:
    """ImportError with advice when the imported `tflite` package is not keras-regnet's (the parser replaced it)."""
    package = sys.modules.get("tflite")
    if package is not None and not getattr(package, MARKER, False):
        version = foreign_version()
        where = getattr(package, "__file__", None) or "an unknown location"
        raise ImportError(
            f"the `tflite` package imported from {where} is not keras-regnet's: PyPI's `tflite` flatbuffer "
            f"parser{f' {version}' if version else ''} has overwritten it, so keras-regnet's export cannot run; "
            f"{ADVICE}")


def warn_if_installed() -> None:
    """A TfliteNameClash warning when PyPI's `tflite` distribution is installed too."""
    version = foreign_version()
    if version is not None:
        warnings.warn(
            f"PyPI's `tflite` {version} (a flatbuffer parser) is installed beside keras-regnet and uses the same "
            f"top-level package name `tflite`; installing or uninstalling either breaks the other. {ADVICE}",
            TfliteNameClash, stacklevel=3)
