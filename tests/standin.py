"""A local stand-in for the ImageNet checkpoint of RegNetX-200MF (no network): the golden case's
seeded reference weights in timm naming, placed in the Keras cache as if downloaded by hand."""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np

GOLDEN = pathlib.Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))

import equivalence as eq  # noqa: E402

MODEL = "regnetx_200mf"


def place_imagenet_standin(keras_home: pathlib.Path) -> str:
    """Write the stand-in .safetensors where weights="imagenet" looks first; returns its path."""
    from safetensors.numpy import save_file

    from keras_regnet.pretrained import SOURCES, cached_paths

    os.environ["KERAS_HOME"] = str(keras_home)
    meta, arrays = eq.load_case(MODEL)
    raw, _ = cached_paths(SOURCES[MODEL])
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    state = eq.to_timm(eq.reference_state(meta, arrays))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, raw)
    return raw
