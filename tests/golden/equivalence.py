"""Keras side of the golden equivalence proof: rebuild each case's weights from its seed, convert
them with keras_regnet.checkpoint_converter, run our model and compare with the reference logits.

    python -m tests.golden.equivalence     # prints max |keras - pycls| per model and input size
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from tests.golden.synthetic import synthetic_images, synthetic_state

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = ("regnetx_200mf", "regnety_200mf", "regnety_600mf", "regnetx_8.0gf", "tiny_regnety")
TOLERANCE = 1e-4  # max abs logit difference allowed, float32


def load_case(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, arrays) of a golden case."""
    with open(os.path.join(HERE, f"{name}.json")) as f:
        meta = json.load(f)
    with np.load(os.path.join(HERE, f"{name}.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return meta, arrays


def case_spec(meta: dict) -> Any:
    """Our NetSpec for the case: the zoo model, or the RegNet rule applied to the pycls cfg values."""
    from keras_regnet import RegNetParams, get_entry

    if meta["zoo_model"]:
        return get_entry(meta["zoo_model"]).spec()
    c = meta["pycls_regnet_cfg"]
    return RegNetParams(c["DEPTH"], c["W0"], c["WA"], c["WM"], c["GROUP_W"],
                        se_ratio=0.25 if c["SE_ON"] else 0.0, stem_width=c["STEM_W"]).to_spec(meta["case"])


def reference_state(meta: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The exact state dict the reference ran with (seeded tensors + stored BN statistics)."""
    state = synthetic_state(meta["seed"], meta["state_dict"])
    state.update({k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")})
    return state


def keras_model(meta: dict, arrays: dict[str, np.ndarray], include_preprocessing: bool = False) -> Any:
    """Our model with the case's weights converted from the pycls state dict (logits out)."""
    from keras_regnet import build
    from keras_regnet.checkpoint_converter import load_state_dict

    spec = case_spec(meta)
    model = build(spec, include_top=True, classifier_activation=None,
                  include_preprocessing=include_preprocessing)
    load_state_dict(model, reference_state(meta, arrays), spec)
    return model


# pycls module -> timm module inside a block (timm's names read from its regnet.py / layers).
_TIMM_BLOCK_NAMES = (
    ("f.a_bn.", "conv1.bn."), ("f.a.", "conv1.conv."), ("f.b_bn.", "conv2.bn."), ("f.b.", "conv2.conv."),
    ("f.se.f_ex.0.", "se.fc1."), ("f.se.f_ex.2.", "se.fc2."), ("f.c_bn.", "conv3.bn."),
    ("f.c.", "conv3.conv."), ("proj.", "downsample.conv."), ("bn.", "downsample.bn."),
)


def to_timm(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What timm did to the pycls checkpoints: rename keys, reverse the stem's input channels."""
    out = {}
    for key, value in state.items():
        match = re.match(r"^(s\d+\.b\d+)\.(.*)$", key)
        if match:
            block, rest = match.groups()
            for old, new in _TIMM_BLOCK_NAMES:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = f"{block}.{rest}"
        out[key] = value[:, ::-1].copy() if key == "stem.conv.weight" else value
    return out


def case_inputs(meta: dict, output: dict) -> np.ndarray:
    return synthetic_images(meta["seed"], output["batch"], output["height"], output["width"],
                            raw=output["raw"])


def max_diffs(name: str) -> dict[str, float]:
    """max |keras - reference| for every output of a case (raw outputs via include_preprocessing)."""
    meta, arrays = load_case(name)
    plain = keras_model(meta, arrays)
    with_pre = None
    diffs = {}
    for output in meta["outputs"]:
        x = case_inputs(meta, output)
        if output["raw"]:
            with_pre = with_pre or keras_model(meta, arrays, include_preprocessing=True)
            got = np.asarray(with_pre(x, training=False))
        else:
            got = np.asarray(plain(x, training=False))
        diffs[output["key"]] = float(np.abs(got - arrays[output["key"]]).max())
    return diffs


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in CASES:
        for key, diff in max_diffs(name).items():
            print(f"{name:15s} {key:24s} max|keras - pycls| = {diff:.2e}", flush=True)


if __name__ == "__main__":
    main()
