"""Reading reference (PyTorch) checkpoints into plain numpy state dicts, without unpickling.

Formats: `.safetensors` (what timm re-hosts the pycls weights as), `.npz`, and torch pickles
(`.pth` / `.pyth` / `.pt` / `.bin`) only when torch is installed, loaded with `weights_only=True`
so no arbitrary code runs. The two reference naming schemes are told apart by their keys.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import numpy as np

from keras_regnet.errors import WeightsError

SAFETENSORS_SUFFIXES = (".safetensors",)
NUMPY_SUFFIXES = (".npz",)
TORCH_SUFFIXES = (".pth", ".pyth", ".pt", ".bin")
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + NUMPY_SUFFIXES + TORCH_SUFFIXES
NAMINGS = ("pycls", "timm")

# Wrappers around the model state in training checkpoints: pycls saves {"model_state": ...},
# DeiT / timm training scripts {"model": ...} or {"state_dict": ...}.
_STATE_KEYS = ("model_state", "state_dict", "model")
# pycls blocks: f.a / f.a_bn (bottleneck and basic), a / a_bn (vanilla); timm: conv1.conv, downsample.
_PYCLS_BLOCK = re.compile(r"^s\d+\.b\d+\.(f\.)?a(_bn)?\.")
_TIMM_BLOCK = re.compile(r"^s\d+\.b\d+\.(conv1|downsample)\.")


def is_checkpoint_path(path: str | os.PathLike) -> bool:
    """True if `path` has a reference-checkpoint suffix this module can read."""
    return os.fspath(path).lower().endswith(CHECKPOINT_SUFFIXES)


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Tensors of a reference checkpoint as float32 numpy arrays keyed by state-dict name."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"checkpoint file {path!r} does not exist")
    lower = path.lower()
    if lower.endswith(SAFETENSORS_SUFFIXES):
        state = _read_safetensors(path)
    elif lower.endswith(NUMPY_SUFFIXES):
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
    elif lower.endswith(TORCH_SUFFIXES):
        state = _read_torch(path)
    else:
        raise WeightsError(
            f"unsupported checkpoint {path!r}: expected one of {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as err:
        raise WeightsError(
            f"reading {path!r} needs the 'safetensors' package: pip install safetensors"
        ) from err
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{path!r} is not a valid safetensors file: {err}") from err


def _read_torch(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as err:
        raise WeightsError(
            f"reading the torch checkpoint {path!r} needs PyTorch (pip install torch); "
            "or pass the .safetensors version of the weights"
        ) from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; report them uniformly
        raise WeightsError(f"could not load {path!r} with torch.load(weights_only=True): {err}") from err
    state = unwrap_state(obj, source=path)
    return {k: v.detach().float().numpy() for k, v in state.items() if isinstance(v, torch.Tensor)}


def unwrap_state(obj: Any, source: str = "checkpoint") -> Mapping[str, Any]:
    """The model state dict inside a training checkpoint (pycls `model_state`, `model`, ...)."""
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source} holds a {type(obj).__name__}, expected a state dict")
    for key in _STATE_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            return inner
    return obj


def detect_naming(keys: Any) -> str:
    """'pycls' (s1.b1.f.a.weight) or 'timm' (s1.b1.conv1.conv.weight), from the state-dict keys."""
    keys = list(keys)
    if any(_PYCLS_BLOCK.match(k) for k in keys):
        return "pycls"
    if any(_TIMM_BLOCK.match(k) for k in keys):
        return "timm"
    sample = ", ".join(sorted(keys)[:5]) or "(no keys)"
    raise WeightsError(
        f"cannot tell the naming of this state dict (keys start {sample}); expected pycls keys "
        "like 's1.b1.f.a.weight' or timm keys like 's1.b1.conv1.conv.weight'"
    )
