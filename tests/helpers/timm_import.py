"""timm for the reference tests, through the benchmarks' importer (one torchvision stand-in in the project).

PyPI's torchvision does not import beside torch 2.13.0; `benchmarks.peers.import_timm` puts an inert
stand-in for it on the import path when needed, then imports timm (whose RegNet never calls torchvision).
"""

from __future__ import annotations

from typing import Any

from benchmarks.peers import import_timm as _import_peer


def import_timm() -> Any:
    """The timm module, or None when torch or timm is not installed or importable."""
    found = _import_peer()
    return None if isinstance(found, str) else found[1]
