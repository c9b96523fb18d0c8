"""Exact flops / params / acts of a whole batch of X/Y-block networks at once (numpy, int64).

Samplers reject most candidates on complexity, so costing them one NetSpec at a time (tens of
microseconds each in `keras_regnet.complexity.complexity`) would dominate sampling. This module
evaluates the same closed-form per-layer counts on (N, S) arrays of stage parameters; a test holds
it equal to `complexity()` on thousands of random specs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_regnet.complexity import InputSize
from keras_regnet.spec import NetSpec


@dataclass(frozen=True)
class StageArrays:
    """Per-stage parameters of N networks with up to S stages; depth 0 marks an absent stage."""

    depths: np.ndarray  # (N, S) int
    widths: np.ndarray  # (N, S) int, already compatible with the group widths
    bottleneck_ratios: np.ndarray  # (N, S) float
    group_widths: np.ndarray  # (N, S) int

    @classmethod
    def from_specs(cls, specs: list[NetSpec]) -> "StageArrays":
        """Stack specs (padding short ones with depth-0 stages) for batch costing."""
        s = max(len(spec.stages) for spec in specs)
        arr = np.zeros((4, len(specs), s))
        arr[2] = 1.0
        arr[3] = 1
        for i, spec in enumerate(specs):
            for j, st in enumerate(spec.stages):
                arr[:, i, j] = (st.depth, st.width, st.bottleneck_ratio, st.group_width)
        return cls(arr[0].astype(np.int64), arr[1].astype(np.int64), arr[2], arr[3].astype(np.int64))


def _halve(h: np.ndarray) -> np.ndarray:
    """Output size of a stride-2 conv with 'same' padding (3x3 pad 1 or 1x1 pad 0): ceil(h / 2)."""
    return (h - 1) // 2 + 1


def batch_complexity(
    stages: StageArrays,
    input_size: InputSize = 224,
    stem_width: int = 32,
    stem_stride: int = 2,
    se_ratio: float = 0.0,
    classes: int = 1000,
    include_top: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flops, params, acts) int64 arrays for N networks of X blocks (Y blocks if se_ratio > 0).

    All stages after the stem use stride 2 in their first block, as in the paper's design spaces.
    """
    h_in, w_in_px = (input_size, input_size) if isinstance(input_size, int) else input_size
    d = np.asarray(stages.depths, dtype=np.int64)
    n, s_count = d.shape
    h = np.full(n, (int(h_in) - 1) // stem_stride + 1, dtype=np.int64)
    w = np.full(n, (int(w_in_px) - 1) // stem_stride + 1, dtype=np.int64)
    hw = h * w
    flops = 27 * stem_width * hw
    params = np.full(n, 27 * stem_width + 2 * stem_width, dtype=np.int64)
    acts = stem_width * hw
    c_in = np.full(n, stem_width, dtype=np.int64)
    for k in range(s_count):
        dk = d[:, k]
        present = dk > 0
        c_out = np.asarray(stages.widths[:, k], dtype=np.int64)
        w_b = np.round(c_out * np.asarray(stages.bottleneck_ratios[:, k], dtype=np.float64)).astype(np.int64)
        gw = np.asarray(stages.group_widths[:, k], dtype=np.int64)
        h2, w2 = _halve(h), _halve(w)
        hw_in, hw_out = h * w, h2 * w2
        # First block: stride 2, projection shortcut always (stride != 1).
        f1, p1, a1 = _x_block(c_in, c_out, w_b, gw, hw_in, hw_out, se_ratio, True)
        # Remaining depth-1 blocks: stride 1, identity shortcut, c_out -> c_out at hw_out.
        f2, p2, a2 = _x_block(c_out, c_out, w_b, gw, hw_out, hw_out, se_ratio, False)
        rest = np.maximum(dk - 1, 0)
        flops = flops + np.where(present, f1 + rest * f2, 0)
        params = params + np.where(present, p1 + rest * p2, 0)
        acts = acts + np.where(present, a1 + rest * a2, 0)
        h, w = np.where(present, h2, h), np.where(present, w2, w)
        c_in = np.where(present, c_out, c_in)
    if include_top:
        flops = flops + c_in * classes + classes
        params = params + c_in * classes + classes
        acts = acts + classes
    return flops, params, acts


def _x_block(c_in: np.ndarray, c_out: np.ndarray, w_b: np.ndarray, gw: np.ndarray, hw_in: np.ndarray,
             hw_out: np.ndarray, se_ratio: float, proj: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form costs of one X/Y block (conv_a at the input size, conv_b strided, conv_c)."""
    flops = c_in * w_b * hw_in + 9 * w_b * gw * hw_out + w_b * c_out * hw_out
    params = c_in * w_b + 9 * w_b * gw + w_b * c_out + 2 * (2 * w_b + c_out)
    acts = w_b * hw_in + w_b * hw_out + c_out * hw_out
    if proj:
        flops = flops + c_in * c_out * hw_out
        params = params + c_in * c_out + 2 * c_out
        acts = acts + c_out * hw_out
    if se_ratio > 0:
        w_se = np.maximum(1, np.round(c_in * se_ratio)).astype(np.int64)
        se = 2 * w_b * w_se + w_se + w_b
        flops, params, acts = flops + se, params + se, acts + w_se + w_b
    return flops, params, acts
