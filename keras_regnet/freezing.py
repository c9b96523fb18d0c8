"""Freezing for fine-tuning and dense-prediction backbones: `freeze(model, "stem,s1", bn_inference=...)`.

Frozen layers get `trainable=False`: the optimizer never sees their weights, and their BatchNorm
layers run in inference mode (moving statistics used and not updated, Keras' transfer-learning
rule), Detectron2's / mmdetection's `frozen_stages`. `bn_inference=True` does the same to every BN
layer while the convolutions train (mmdetection's `norm_eval`; the BN scale and offset stay fixed as
in Detectron2's FrozenBatchNorm2d). Pure Python at import: the trainer's backend-free core uses it.
"""

from __future__ import annotations

import re
from typing import Any

from keras_regnet.errors import ConfigError
from keras_regnet.layer_records import CLASSIFIER

_STAGE = re.compile(r"^s?(\d+)$")


def parse_freeze(freeze: str, num_stages: int | None = None) -> tuple[str, ...]:
    """The --freeze syntax as layer-name prefixes: () for "none", ("backbone",), or ("stem", "s1_", ...)."""
    if not isinstance(freeze, str) or not freeze.strip():
        raise ConfigError(f"--freeze must be none, backbone or a list like stem,s1,s2; got {freeze!r}")
    text = freeze.strip().lower()
    if text in ("none", "backbone"):
        return () if text == "none" else ("backbone",)
    out = []
    for part in (p.strip() for p in text.split(",")):
        match = _STAGE.match(part)
        if part == "stem":
            out.append("stem")
        elif match and int(match.group(1)) >= 1 and (num_stages is None or int(match.group(1)) <= num_stages):
            out.append(f"s{int(match.group(1))}_")
        else:
            stages = f"s1..s{num_stages}" if num_stages else "s1, s2, ..."
            raise ConfigError(f"--freeze={freeze!r}: {part!r} is not allowed; use none, backbone or a "
                              f"comma-separated list of stem and stages ({stages})")
    return tuple(out)


def count_stages(model: Any) -> int:
    """Number of stages of a keras_regnet model, from its layer names (s{s}_b1_...)."""
    names = {layer.name.split("_", 1)[0] for layer in model.layers}
    return sum(1 for s in range(1, len(names) + 1) if f"s{s}" in names)


def frozen_layers(model: Any, freeze: str, num_stages: int | None = None) -> list[str]:
    """Names of the weighted layers of `model` that `freeze` (the --freeze syntax) holds fixed."""
    prefixes = parse_freeze(freeze, count_stages(model) if num_stages is None else num_stages)
    names = [layer.name for layer in model.layers if layer.weights]
    if prefixes == ("backbone",):
        return [n for n in names if n != CLASSIFIER]
    return [n for n in names if any(n.startswith(p) for p in prefixes)]


def freeze(model: Any, layers: str = "none", bn_inference: bool = False, num_stages: int | None = None) -> list[str]:
    """Freeze the stem and/or stages of a keras_regnet model (built, loaded, or a `RegNetBackbone`).

    Args:
        model: a keras_regnet model or backbone; change it before `compile`.
        layers: the trainer's --freeze syntax: "none", "backbone" (all but the classifier) or a
            comma-separated list of "stem" and stages ("s1".."sN", or "1".."N"), e.g. "stem,s1".
        bn_inference: also keep every other BatchNorm layer in inference mode (trainable=False).
        num_stages: the model's stage count (default: read from its layer names).

    Returns:
        The names of the layers made untrainable, in model order.

    Raises:
        ValueError: for a `layers` string outside that syntax (naming the bad part and what is allowed).
    """
    import keras

    if not isinstance(bn_inference, bool):
        raise ConfigError(f"bn_inference must be True or False, got bn_inference={bn_inference!r}")
    names = set(frozen_layers(model, layers, num_stages))
    if bn_inference:
        names |= {layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    for layer in model.layers:
        if layer.name in names:
            layer.trainable = False
    return [layer.name for layer in model.layers if layer.name in names]
