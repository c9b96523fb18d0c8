"""Reference (pycls / timm) state dicts -> Keras weight arrays keyed by layer name (numpy only).

Every Keras layer with weights maps to one reference module (`layer_map`); tensors are transposed
from PyTorch's layouts (conv OIHW -> HWIO, grouped conv [out, in/g, kh, kw] -> [kh, kw, in/g, out],
dense [out, in] -> [in, out]) and BN statistics are copied. Original pycls checkpoints were trained
on BGR input, so by default their stem kernel's input channels are reversed to take RGB; timm's
re-hosted copies were already flipped to RGB by timm and are taken as they are.

A leaf of the loader: it is handed the model and never builds one (the file-writing converter
and its CLI live in keras_regnet.checkpoint_converter).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from keras_regnet import layer_records
from keras_regnet.pretrained.assign import assign_layer_weights
from keras_regnet.pretrained.state_dict import NAMINGS, detect_naming, read_state_dict
from keras_regnet.errors import ConfigError, WeightsError
from keras_regnet.spec import NetSpec

_IGNORED_SUFFIXES = (".num_batches_tracked",)
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")  # = Keras gamma, beta, mean, var
_MAX_LISTED = 25


@dataclass(frozen=True)
class LayerMap:
    """One Keras layer and the reference module holding its weights."""

    layer: str  # Keras layer name, e.g. "s1_b1_conv_b"
    kind: str  # "conv", "conv_bias", "bn" or "dense"
    module: str  # reference module prefix, e.g. "s1.b1.f.b" (pycls) or "s1.b1.conv2.conv" (timm)

    def keys(self) -> list[str]:
        """State-dict keys of this module, in Keras weight order."""
        params = {"conv": ("weight",), "conv_bias": ("weight", "bias"), "bn": _BN_PARAMS,
                  "dense": ("weight", "bias")}[self.kind]
        return [f"{self.module}.{p}" for p in params]


def layer_map(spec: NetSpec, naming: str, include_top: bool = True) -> list[LayerMap]:
    """Every weighted Keras layer of `spec` with its reference module, in network order.

    A view of `keras_regnet.layer_records`: each weighted record names its module under both namings.
    """
    if naming not in NAMINGS:
        raise ConfigError(f"naming must be one of {NAMINGS}, got {naming!r}")
    out = []
    for record in layer_records.network(spec, include_top):
        if record.kind not in layer_records.WEIGHTED_KINDS:
            continue
        module = getattr(record, naming)
        if module is None:
            raise ConfigError(
                f"{naming} naming has no module for layer {record.name!r}: it exists only for "
                f"X/Y blocks; spec {spec.name!r} has block {spec.block!r}"
            )
        kind = "conv_bias" if record.kind == "conv" and record.bias else record.kind
        out.append(LayerMap(record.name, kind, module))
    return out


def _to_keras(entry: LayerMap, tensors: list[np.ndarray], flip_stem: bool) -> list[np.ndarray]:
    """PyTorch layouts -> Keras layouts for one layer."""
    if entry.kind in ("conv", "conv_bias"):
        kernel = tensors[0]
        if kernel.ndim != 4:
            raise WeightsError(
                f"layer {entry.layer!r}: {entry.module}.weight has shape {kernel.shape}, expected a "
                "4-D conv weight [out, in/groups, kh, kw]"
            )
        kernel = np.transpose(kernel, (2, 3, 1, 0))
        if flip_stem and entry.layer == "stem_conv":
            kernel = kernel[:, :, ::-1, :]
        return [np.ascontiguousarray(kernel), *tensors[1:]]
    if entry.kind == "dense":
        weight = tensors[0]
        if weight.ndim != 2:
            raise WeightsError(
                f"layer {entry.layer!r}: {entry.module}.weight has shape {weight.shape}, expected "
                "a 2-D linear weight [out, in]"
            )
        return [np.ascontiguousarray(weight.T), tensors[1]]
    return list(tensors)


def convert_state_dict(
    state: Mapping[str, np.ndarray],
    spec: NetSpec,
    *,
    naming: str | None = None,
    include_top: bool = True,
    bgr_to_rgb: bool | None = None,
    source: str = "checkpoint",
) -> dict[str, list[np.ndarray]]:
    """Keras weight lists by layer name from a reference state dict.

    `naming` None detects pycls/timm from the keys; `bgr_to_rgb` None flips the stem for pycls
    naming (original checkpoints, trained on BGR) and not for timm (already RGB). Missing keys
    and leftover keys are errors listing them; with include_top=False the classifier is dropped.
    """
    naming = naming or detect_naming(state.keys())
    flip = naming == "pycls" if bgr_to_rgb is None else bool(bgr_to_rgb)
    entries = layer_map(spec, naming, include_top)
    wanted = [k for e in entries for k in e.keys()]
    missing = [k for k in wanted if k not in state]
    optional = set() if include_top else {"head.fc.weight", "head.fc.bias"}
    leftover = sorted(set(state) - set(wanted) - optional)
    leftover = [k for k in leftover if not k.endswith(_IGNORED_SUFFIXES)]
    if missing or leftover:
        raise WeightsError(
            f"{source} ({naming} naming) does not match {spec.name!r}: "
            f"{_listing('missing keys', missing)}{'; ' if missing and leftover else ''}"
            f"{_listing('unexpected keys', leftover)}"
        )
    return {e.layer: _to_keras(e, [np.asarray(state[k], np.float32) for k in e.keys()], flip)
            for e in entries}


def _listing(label: str, keys: Sequence[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f" ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return f"{len(keys)} {label}: {shown}{more}"


def assign(model: Any, weights: Mapping[str, list[np.ndarray]], source: str = "checkpoint") -> None:
    """Set converted weights by layer name; every weighted layer must be covered, shapes must match."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    uncovered = sorted(set(layers) - set(weights))
    unknown = sorted(set(weights) - set(layers))
    if uncovered or unknown:
        raise WeightsError(
            f"{source} does not fit model {model.name!r}: "
            f"{_listing('model layers without weights in the checkpoint', uncovered)}"
            f"{'; ' if uncovered and unknown else ''}{_listing('checkpoint layers not in the model', unknown)}"
        )
    for name, values in weights.items():
        assign_layer_weights(layers[name], values, source, model.name)


def load_state_dict(model: Any, state: Mapping[str, np.ndarray], spec: NetSpec, *,
                    naming: str | None = None, bgr_to_rgb: bool | None = None,
                    source: str = "checkpoint") -> None:
    """Convert a reference state dict and set it into `model` (with or without its classifier)."""
    include_top = any(layer.name == layer_records.CLASSIFIER for layer in model.layers)
    weights = convert_state_dict(state, spec, naming=naming, include_top=include_top,
                                 bgr_to_rgb=bgr_to_rgb, source=source)
    assign(model, weights, source=source)


def load_checkpoint(model: Any, path: str | os.PathLike, spec: NetSpec, **options: Any) -> None:
    """Read a reference checkpoint file and load it into `model` (see `load_state_dict`)."""
    path = os.fspath(path)
    load_state_dict(model, read_state_dict(path), spec, source=path, **options)
