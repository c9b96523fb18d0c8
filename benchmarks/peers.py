"""timm on PyTorch as a side-by-side peer for the benchmarks (optional: torch and timm need not be installed).

timm imports torchvision at module level only for FrozenBatchNorm2d, data transforms and feature
extraction, none of which a RegNet forward/backward pass touches. Where torchvision is not
importable (it is absent or built for another torch), `import_timm` installs an import stub for
`torchvision.*` before importing timm; the RegNet itself is timm's own code.

PyTorch's OpenMP threads spin for a while between parallel regions before they sleep (libgomp's
default). That is what timm's users get, and on a quiet machine it is the fast setting: RegNetY-600MF
at batch 1, 2 threads, takes 18.7 ms with the default and 38.1 ms with OMP_WAIT_POLICY=PASSIVE
(batch 32: 635 vs 610 ms, no difference). On a machine shared with other busy processes the spinning
collapses instead (189 ms vs 31 ms at load 8). So the peer runs with OpenMP's default unless
OMP_WAIT_POLICY is set before the benchmark starts: set OMP_WAIT_POLICY=PASSIVE when the load average
is above the core count. `omp_wait_policy()` names the setting, and the benchmarks print it beside
timm's figures.
"""

from __future__ import annotations

import importlib.abc
import os
import importlib.machinery
import sys
import types
from typing import Any


class _Placeholder(type):
    """A class whose every attribute is another placeholder class (enums, functions never called)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _TorchvisionStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finder serving a stub module for every torchvision.* import."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def import_timm() -> tuple[Any, Any] | str:
    """(torch, timm) modules, or the reason they cannot be used."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or compiled against another torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _TorchvisionStub())
    try:
        import timm
    except Exception as err:  # noqa: BLE001  (any import failure makes the peer unavailable)
        return f"timm is not importable ({type(err).__name__}: {err})"
    return torch, timm


def omp_wait_policy() -> str:
    """How PyTorch's OpenMP threads wait between parallel regions in this process, for the reports."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip()
    return f"OMP_WAIT_POLICY={policy}" if policy else "OpenMP's default wait (spin, then sleep)"


def timm_name(zoo_name: str) -> str | None:
    """timm's name of a zoo RegNet (regnety_600mf -> regnety_006), None for a model outside the zoo."""
    from keras_regnet import resolve_model

    _, entry = resolve_model(zoo_name, label="--model")
    return None if entry is None else entry.timm_name


def timm_model(zoo_name: str, threads: int = 2) -> tuple[Any, Any] | str:
    """(torch, timm RegNet with random weights in eval mode) for a zoo name, or why not."""
    found = import_timm()
    if isinstance(found, str):
        return found
    name = timm_name(zoo_name)
    if name is None:
        return f"{zoo_name} is not a zoo model: timm has no peer for it"
    torch, timm = found
    torch.set_num_threads(threads)
    return torch, timm.create_model(name, pretrained=False).eval()
