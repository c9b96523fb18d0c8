"""Regenerate the output-stride golden file from timm's RegNet (the dilated reference).

    pip install torch==2.13.0 && pip install --no-deps timm    # timm 1.0.31 made the committed file
    python tests/golden/make_dilated_golden.py                  # from the repository root; ~10 s

timm's `regnety_006` built with `output_stride=16` (its `_get_stage_args` rule: stride 1 and doubling
dilation once the network stride is reached, the first block of a stage keeping the previous dilation)
gets the deterministic synthetic weights of `synthetic.py` in timm's naming, is put in eval mode, and its
`forward_features` (the last stage, NCHW, stored NHWC) is recorded at a square and a non-square size.
Output: regnety_600mf_os16.json (seed, state-dict manifest, sizes, versions) and regnety_600mf_os16.npz.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.golden.synthetic import synthetic_images, synthetic_state  # noqa: E402
from tests.helpers.timm_import import import_timm  # noqa: E402

CASE = "regnety_600mf_os16"
TIMM_MODEL, ZOO_MODEL, OUTPUT_STRIDE, SEED = "regnety_006", "regnety_600mf", 16, 21
SIZES = [(1, 96, 96), (1, 80, 112)]


def timm_features(state: dict[str, np.ndarray], images: np.ndarray, output_stride: int = OUTPUT_STRIDE) -> np.ndarray:
    """timm's dilated last-stage features (NHWC) of `images` (NHWC, normalized) with `state` loaded."""
    timm = import_timm()
    import torch

    model = timm.create_model(TIMM_MODEL, pretrained=False, output_stride=output_stride)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.eval()
    with torch.no_grad():
        out = model.forward_features(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))))
    return out.numpy().transpose(0, 2, 3, 1)


def timm_manifest() -> list[tuple[str, list[int]]]:
    """(key, shape) of every entry of timm's state dict for the case's model."""
    timm = import_timm()
    model = timm.create_model(TIMM_MODEL, pretrained=False, output_stride=OUTPUT_STRIDE)
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def main() -> None:
    import torch

    timm = import_timm()
    manifest = timm_manifest()
    state = synthetic_state(SEED, manifest)
    arrays, outputs = {}, []
    for batch, h, w in SIZES:
        key = f"features_{batch}x{h}x{w}"
        arrays[key] = timm_features(state, synthetic_images(SEED, batch, h, w))
        outputs.append({"key": key, "batch": batch, "height": h, "width": w})
    meta = {"case": CASE, "timm_model": TIMM_MODEL, "zoo_model": ZOO_MODEL, "output_stride": OUTPUT_STRIDE,
            "seed": SEED, "reference": f"timm {timm.__version__} forward_features, torch {torch.__version__}, "
                                       "float32, eval", "outputs": outputs, "state_dict": manifest}
    with open(os.path.join(HERE, f"{CASE}.json"), "w") as f:
        json.dump(meta, f)
    np.savez_compressed(os.path.join(HERE, f"{CASE}.npz"), **arrays)
    print({k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
