"""`import_timm()`: timm beside torch 2.13 without torchvision.

timm imports torchvision at import time, for names its RegNet never uses (FrozenBatchNorm2d, data
transforms); PyPI's torchvision does not import beside the cached torch 2.13 wheel. Where torchvision
is missing, any `torchvision.*` resolves to an empty module whose attributes are placeholder classes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return name  # enum-like members (InterpolationMode.NEAREST) as plain, hashable strings

class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Meta(name, (), {})

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None
    def create_module(self, spec):
        m = _Module(spec.name); m.__path__ = []; return m
    def exec_module(self, module):
        pass

def import_timm() -> Any:
    """The timm module (torchvision placeholders installed first if torchvision is absent); ImportError without timm."""
    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("torch") is None:
        raise ImportError("timm and torch are needed")
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        sys.meta_path.insert(0, _Finder())
    import timm

    return timm
