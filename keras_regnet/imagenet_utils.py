"""ImageNet input normalization and class-name decoding, keras.applications style (no download)."""

from __future__ import annotations

import functools
import json
import numbers
import os
from typing import Any

import numpy as np

from keras_regnet.errors import ConfigError

IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.json")


def preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """RGB [0, 255] -> ImageNet-normalized input, for models built with include_preprocessing=False.

    Accepts numpy arrays and backend tensors (channels_last, or channels_first if data_format says).
    """
    if data_format not in (None, "channels_last", "channels_first"):
        raise ConfigError(
            f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    shape = (3, 1, 1) if data_format == "channels_first" else (3,)
    scale = (1.0 / (255.0 * IMAGENET_STD_RGB)).reshape(shape)
    shift = (IMAGENET_MEAN_RGB / IMAGENET_STD_RGB).reshape(shape)
    if isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        return np.asarray(x, dtype=np.float32) * scale - shift
    from keras import ops

    x = ops.cast(x, "float32")
    return x * ops.convert_to_tensor(scale) - ops.convert_to_tensor(shift)


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> list[tuple[str, str]]:
    """The 1000 (WordNet id, class name) pairs in the standard ImageNet-1k label order."""
    with open(_CLASSES_FILE) as f:
        return [(wnid, name) for wnid, name in json.load(f)]


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Top-`top` (wnid, name, score) per row of a (batch, 1000) prediction array."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ConfigError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, 1000)). Received array with shape: {preds.shape}"
        )
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or not 1 <= top <= 1000:
        raise ConfigError(f"`top` must be an integer in [1, 1000]. Received: top={top!r}")
    top = int(top)
    classes = imagenet_classes()
    results = []
    for row in preds:
        order = np.argsort(row)[::-1][:top]
        results.append([(*classes[i], float(row[i])) for i in order])
    return results
