"""Command-line budgets shared by the sweep CLIs: 'low,high' ranges and a named fitted latency model."""

from __future__ import annotations

import re
from typing import Optional, Sequence

from absl import flags

from keras_regnet.design_space.latency_model import load_model
from keras_regnet.design_space.sampler import scaled_flops_range

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_range(text: str, flag: str) -> Optional[tuple[float, float]]:
    """'low,high' with optional K/M/G suffixes -> (low, high); 'none' -> None."""
    if str(text).strip().lower() in ("none", ""):
        return None
    parts = str(text).split(",")
    values = []
    for p in parts:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGkmg]?)\s*", p)
        if not m:
            break
        values.append(float(m.group(1)) * _SUFFIX[m.group(2).upper()])
    if len(parts) != 2 or len(values) != 2 or not 0 <= values[0] <= values[1]:
        raise flags.ValidationError(f"--{flag} must be low,high with 0 <= low <= high (suffixes K/M/G "
                                    f"allowed) or 'none', got {text!r}")
    return values[0], values[1]


def flops_budget(text: str, image_size: int, stem_stride: int, base: Sequence[float]
                 ) -> Optional[tuple[float, float]]:
    """--flops_range: 'auto' -> `base` (flops at 224px, stride-2 stem) rescaled to this input and stem
    stride by `scaled_flops_range`; an explicit 'low,high' is taken as given; 'none' -> None."""
    if str(text).strip().lower() == "auto":
        low, high = scaled_flops_range(image_size, stem_stride, base)
        return round(low), round(high)
    return parse_range(text, "flops_range")


def latency_budget(range_text: str, model_ref: str, image_size: int
                   ) -> tuple[Optional[tuple[float, float]], Optional[dict]]:
    """--latency_range and --latency_model=PATH#KEY -> (range, the model's dict) or (None, None)."""
    rng = parse_range(range_text, "latency_range")
    if rng is None:
        return None, None
    path, _, key = str(model_ref).rpartition("#")
    if not path or not key:
        raise flags.ValidationError(f"--latency_range needs --latency_model=PATH#KEY (e.g. "
                                    f"latency_models.json#int8@1), got --latency_model={model_ref!r}")
    try:
        model = load_model(path, key)
    except (OSError, ValueError) as e:
        raise flags.ValidationError(f"--latency_model={model_ref!r}: {e}") from e
    if model.input_size != image_size:
        raise flags.ValidationError(f"--latency_model {key} was fitted at {model.input_size}px, not "
                                    f"--image_size={image_size}")
    return rng, model.to_dict()
