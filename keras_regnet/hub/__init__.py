"""keras-hub adapters: `RegNetBackbone`, `RegNetImageClassifier` (with its preprocessor and image
converter) registered with Keras, so `keras_hub.models.Backbone.from_preset(dir)` and
`keras_hub.models.ImageClassifier.from_preset(dir)` load what `save_preset` writes.

Needs keras-hub (`pip install 'keras-regnet[hub]'`); importing this package without it is an
ImportError that says so.
"""

from __future__ import annotations

try:
    import keras_hub  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("keras_regnet.hub needs keras-hub: pip install 'keras-regnet[hub]'") from err

from keras_regnet.hub.backbone import RegNetBackbone
from keras_regnet.hub.preset import save_preset
from keras_regnet.hub.timm_loader import load_timm_preset
from keras_regnet.hub.task import RegNetImageClassifier, RegNetImageClassifierPreprocessor, RegNetImageConverter

__all__ = ["RegNetBackbone", "RegNetImageClassifier", "RegNetImageClassifierPreprocessor",
           "RegNetImageConverter", "load_timm_preset", "save_preset"]
