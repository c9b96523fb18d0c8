"""Test stand-ins, no network: the ImageNet checkpoint of RegNetX-200MF (the golden case's seeded
reference weights in timm naming, placed in the Keras cache as if downloaded by hand) and a small
folder of generated photos, one sub-folder per class."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from tests.golden import equivalence as eq

MODEL = "regnetx_200mf"


def place_imagenet_standin(keras_home: pathlib.Path, model: str = MODEL) -> str:
    """Write the stand-in .safetensors of `model` (a golden case) where weights="imagenet" looks first;
    returns its path."""
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import cached_paths

    os.environ["KERAS_HOME"] = str(keras_home)
    raw, _ = cached_paths(default_preset(model))
    return write_reference_checkpoint(raw, model)


def write_reference_checkpoint(path: str, model: str = MODEL) -> str:
    """The golden case's seeded reference weights of `model`, in timm naming, as a .safetensors file."""
    from safetensors.numpy import save_file

    meta, arrays = eq.load_case(model)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = eq.to_timm(eq.reference_state(meta, arrays))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, path)
    return path


def make_image_folder(root: pathlib.Path, classes: int = 3, per_class: int = 8, size: int = 32,
                      seed: int = 0) -> pathlib.Path:
    """PNG images in root/class_<k>/img_<i>.png; class k is brightest in colour channel k % 3."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (size, size, 3)).astype("uint8")
            image[..., k % 3] += 150
            (folder / f"img_{i:02d}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root
