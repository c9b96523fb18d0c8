"""Deterministic synthetic weights and images shared by make_golden.py (torch side) and the
equivalence tests (Keras side), so golden files store only a seed, the state-dict manifest and the
reference logits, never the weights. Pure numpy: every value depends only on (seed, key)."""

from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import numpy as np


def _rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def synthetic_tensor(seed: int, key: str, shape: Sequence[int]) -> np.ndarray:
    """Random values for one state-dict entry, scaled like a trained net so activations stay O(1).

    conv: N(0, sqrt(2 / fan_out)) (the reference init); linear: N(0, 0.05); BN gamma U(0.4, 1.0)
    (smaller on the last BN of a residual branch), beta / biases N(0, 0.1), running mean N(0, 0.2),
    running var U(0.5, 2.0).
    """
    rng = _rng(seed, key)
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.float32)
    if key.endswith("running_var"):
        values = rng.uniform(0.5, 2.0, shape)
    elif key.endswith("running_mean"):
        values = rng.normal(0.0, 0.2, shape)
    elif key.endswith("bias"):
        values = rng.normal(0.0, 0.1, shape)
    elif len(shape) == 4:
        fan_out = shape[0] * shape[2] * shape[3]
        values = rng.normal(0.0, np.sqrt(2.0 / fan_out), shape)
    elif len(shape) == 2:
        values = rng.normal(0.0, 0.05, shape)
    else:  # BN gamma; the last BN of a residual branch is kept small so depth does not blow up
        last = key.endswith(("f.c_bn.weight", "conv3.bn.weight"))
        values = rng.uniform(0.1, 0.4, shape) if last else rng.uniform(0.4, 1.0, shape)
    return values.astype(np.float32)


def synthetic_state(seed: int, manifest: Iterable[tuple[str, Sequence[int]]]) -> dict[str, np.ndarray]:
    """A whole state dict from a manifest of (key, shape)."""
    return {key: synthetic_tensor(seed, key, shape) for key, shape in manifest}


def synthetic_images(seed: int, batch: int, height: int, width: int, raw: bool = False) -> np.ndarray:
    """NHWC RGB float32 images with structure (per-image channel offsets, blobs 16 px wide, fine
    noise), so logits depend strongly on the input and on its channel order. Normalized scale
    (about N(0, 1)) or, with raw=True, integer pixel values in 0-255."""
    rng = _rng(seed, f"images-{batch}x{height}x{width}-{raw}")
    coarse = rng.normal(0.0, 1.0, (batch, height // 16 + 1, width // 16 + 1, 3))
    blobs = coarse.repeat(16, axis=1).repeat(16, axis=2)[:, :height, :width, :]
    offsets = rng.normal(0.0, 1.0, (batch, 1, 1, 3))
    images = offsets + blobs + 0.5 * rng.normal(0.0, 1.0, (batch, height, width, 3))
    if raw:
        return np.clip(np.round(127.5 + 50.0 * images), 0, 255).astype(np.float32)
    return images.astype(np.float32)
