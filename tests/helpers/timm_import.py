"""Import timm beside torch 2.13.0 where torchvision is absent (PyPI's does not import beside it).

timm imports torchvision at package import (transforms, datasets, FrozenBatchNorm2d) but its RegNet
never calls it; `import_timm` puts an inert stand-in for torchvision on the import path only when
the real one cannot be imported, then imports timm. None when torch or timm are not installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any


class _Inert(type):
    """A stand-in class whose attributes are names (InterpolationMode.NEAREST -> a string)."""

    def __getattr__(cls, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"


class _InertModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(name, (), {})


class _InertFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _InertModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def import_timm() -> Any:
    """The timm module, or None when torch or timm is not installed."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("timm") is None:
        return None
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or a wheel built for another torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        if not any(isinstance(f, _InertFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _InertFinder())
    import timm

    return timm
