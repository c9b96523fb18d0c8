"""keras-regnet: RegNetX/RegNetY and AnyNet for Keras 3 (Radosavovic et al., CVPR 2020).

The pure-Python parts (specs, the RegNet rule, complexity, the zoo, design spaces) import without
TensorFlow; the Keras builders are loaded on first use, so `import keras_regnet` stays cheap.
The custom layers are registered with Keras as soon as Keras is imported (before or after this
package), so `keras.saving.load_model` needs no `custom_objects` after `import keras_regnet`.
"""

from __future__ import annotations

import importlib
from typing import Any

from keras_regnet._registration import register_when_keras_is_imported
from keras_regnet.complexity import Complexity, complexity
from keras_regnet.regnet import RegNetParams, adjust_block_compatibility, fit_quantized_linear
from keras_regnet.resolve import resolve_model, resolve_spec
from keras_regnet.spec import NetSpec, StageSpec, make_spec
from keras_regnet.zoo import ZOO, get_entry, list_models

__version__ = "0.1.0"

register_when_keras_is_imported()

_ZOO_FUNCTIONS = [e.function_name for e in ZOO.values()] + [e.keras2_name for e in ZOO.values()]
_LAZY = {
    **{name: "keras_regnet.applications" for name in _ZOO_FUNCTIONS + ["RegNet", "AnyNet"]},
    "build": "keras_regnet.model",
    "feature_extractor": "keras_regnet.features",
    "freeze": "keras_regnet.freezing",
    "pyramid_outputs": "keras_regnet.features",
    "preprocess_input": "keras_regnet.imagenet_utils",
    "decode_predictions": "keras_regnet.imagenet_utils",
    "GroupedConv2D": "keras_regnet.layers",
    "ImageNetNormalization": "keras_regnet.layers",
    "GhostBatchNormalization": "keras_regnet.layers",
}

__all__ = [
    "Complexity", "NetSpec", "RegNetParams", "StageSpec", "ZOO", "adjust_block_compatibility",
    "complexity", "fit_quantized_linear", "get_entry", "list_models", "make_spec",
    "resolve_model", "resolve_spec",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the Keras-dependent parts on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_regnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
