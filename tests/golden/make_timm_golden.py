"""Regenerate the timm golden files (tests/golden/timm/<model>.json + .npz) from timm on PyTorch.

    pip install torch==2.13.0 && pip install timm --no-deps    # plus huggingface_hub, safetensors, pyyaml
    python -m tests.golden.make_timm_golden                     # from the repository root; ~1 min

For each case timm builds its own model from its `model_cfgs` (so timm's width rounding, e.g. the
torchvision rule of the `*_tv` models, is exercised), every tensor is filled with the seeded synthetic
values of `synthetic.py` (random weights and BN statistics), and float32 eval logits are recorded
for a square and a non-square input. The files hold the seed, the state-dict manifest and the
logits only; the Keras side (tests/keras_regnet/test_timm_equivalence.py) rebuilds the weights.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tests.golden.synthetic import synthetic_images, synthetic_state
from tests.helpers.timm_import import import_timm

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "timm")

# timm architecture, seed, (batch, height, width) inputs
CASES = [
    ("regnetx_004_tv", 21, [(2, 64, 64), (2, 48, 80)]),
    ("regnety_008_tv", 22, [(2, 64, 64), (2, 48, 80)]),
    ("regnety_080_tv", 23, [(1, 64, 64), (1, 48, 80)]),
]


def make_case(name: str, seed: int, sizes: list[tuple[int, int, int]]) -> None:
    import torch

    timm = import_timm()
    model = timm.create_model(name, pretrained=False).eval()
    manifest = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    state = synthetic_state(seed, manifest)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    logits, outputs = {}, []
    for batch, height, width in sizes:
        x = synthetic_images(seed, batch, height, width)
        with torch.no_grad():
            out = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        key = f"logits_{batch}x{height}x{width}"
        logits[key] = out.astype(np.float32)
        outputs.append({"key": key, "batch": batch, "height": height, "width": width})
    meta = {"case": name, "timm_model": name, "seed": seed,
            "reference": f"timm {timm.__version__} RegNet, torch {torch.__version__}, float32, eval",
            "params": int(sum(p.numel() for p in model.parameters())),
            "state_dict": manifest, "outputs": outputs}
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=0)
    np.savez(os.path.join(HERE, f"{name}.npz"), **logits)
    print(f"{name}: {meta['params']} params, logits {[o['key'] for o in outputs]}", flush=True)


def main() -> None:
    for name, seed, sizes in CASES:
        make_case(name, seed, sizes)


if __name__ == "__main__":
    main()
