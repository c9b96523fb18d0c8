"""Register keras_regnet's custom layers with Keras as soon as Keras is (or gets) imported.

A saved `model.keras` names `keras_regnet>GroupedConv2D` and `keras_regnet>ImageNetNormalization`;
`keras.saving.load_model` finds them only if `keras_regnet.layers` has been imported (Keras imports
modules by itself only for its own packages). `import keras_regnet` must stay free of TensorFlow,
so it cannot import the layers eagerly. Instead:

- if Keras is already imported, the layers are registered right away (Keras is loaded anyway);
- otherwise a one-shot import hook registers them right after `import keras` completes.

Either way `import keras_regnet` is enough for `keras.saving.load_model` without `custom_objects`,
in whichever order the two packages are imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any, Sequence

LAYERS_MODULE = "keras_regnet.layers"


def register_layers() -> None:
    """Import keras_regnet.layers (its decorators register the classes); warn instead of failing."""
    try:
        importlib.import_module(LAYERS_MODULE)
    except Exception as err:  # never break the user's `import keras` because of us
        warnings.warn(
            f"keras_regnet could not register its Keras layers ({type(err).__name__}: {err}); "
            f"`import {LAYERS_MODULE}` before keras.saving.load_model",
            stacklevel=2,
        )


class _RegisterAfterExec(importlib.abc.Loader):
    """Delegating loader: runs the real loader, then registers keras_regnet's layers."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        uninstall_hook()
        register_layers()

    def __getattr__(self, name: str) -> Any:  # is_package, get_code, get_resource_reader, ...
        return getattr(self._loader, name)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of the top-level `keras` package.

    It stays installed until Keras is really executed: `importlib.util.find_spec("keras")`
    (TensorFlow probes for Keras this way) also calls it, without loading anything.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "keras":
            return None
        for finder in [f for f in sys.meta_path if not isinstance(f, _KerasImportHook)]:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterExec(spec.loader)
                return spec
        return None


def uninstall_hook() -> None:
    """Remove the import hook (a no-op if it is not installed)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _KerasImportHook)]


def register_when_keras_is_imported() -> None:
    """Register now if Keras is loaded, else once `import keras` finishes."""
    keras = sys.modules.get("keras")
    if keras is not None:
        if getattr(keras, "saving", None) is not None:  # fully imported, not mid-import
            register_layers()
        return
    if not any(isinstance(f, _KerasImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())
