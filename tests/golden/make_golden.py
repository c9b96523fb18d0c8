"""Regenerate the equivalence golden files from the reference implementation (pycls on PyTorch).

    pip install torch==2.13.0 pycls==0.1.1     # pycls pulls yacs, simplejson and opencv-python
    python tests/golden/make_golden.py         # from the repository root; ~1 min on 2 CPU cores

For each case it builds pycls's own RegNet from the published parameters (so pycls's width rule is
exercised too), fills every tensor with the deterministic synthetic values of `synthetic.py`
(random weights and randomized BN statistics), puts it in eval mode and records float32 logits
at a square and a non-square size. Weights are treated as an original pycls checkpoint: the
reference is fed BGR images, our converted model (stem flipped) the same images in RGB. One case
also feeds raw 0-255 RGB pixels through pycls's own normalization (BGR mean/std of its ImageNet
loader) to prove include_preprocessing / preprocess_input parity. Output per case: <case>.json
(parameters, seed, state-dict manifest, pycls stage widths) and <case>.npz (logits, plus the BN
running statistics, which are calibrated on synthetic images and then randomized; see calibrate_bn).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from synthetic import synthetic_images, synthetic_state  # noqa: E402

# name, zoo model (or None), RegNet params (pycls cfg.REGNET names), seed, (batch, h, w) sizes
CASES = [
    ("regnetx_200mf", "regnetx_200mf", None, 11, [(2, 224, 224), (2, 193, 257)]),
    ("regnety_200mf", "regnety_200mf", None, 12, [(2, 224, 224), (2, 193, 257)]),
    ("regnety_600mf", "regnety_600mf", None, 13, [(2, 224, 224), (2, 193, 257)]),
    ("regnetx_8.0gf", "regnetx_8.0gf", None, 14, [(1, 224, 224), (1, 193, 257)]),
    ("tiny_regnety", None,
     {"DEPTH": 5, "W0": 16, "WA": 12.0, "WM": 2.0, "GROUP_W": 8, "SE_ON": True, "STEM_W": 16},
     15, [(2, 64, 64), (2, 48, 80)]),
]
RAW_CASE = "regnety_200mf"  # also gets logits for raw 0-255 input through pycls's normalization


def zoo_params(model: str) -> dict:
    """pycls cfg.REGNET values of a zoo model, from our published-parameter table."""
    from keras_regnet.zoo import get_entry

    p = get_entry(model).params
    return {"DEPTH": p.depth, "W0": p.w0, "WA": p.wa, "WM": p.wm, "GROUP_W": p.group_width,
            "SE_ON": p.se_ratio > 0, "STEM_W": p.stem_width}


def build_reference(params: dict):
    """pycls's RegNet for the given cfg.REGNET values, in eval mode."""
    from pycls.core.config import cfg, reset_cfg
    from pycls.models.regnet import RegNet

    reset_cfg()
    for key, value in params.items():
        setattr(cfg.REGNET, key, value)
    cfg.REGNET.SE_R = 0.25
    cfg.MODEL.NUM_CLASSES = 1000
    return RegNet().eval(), RegNet.get_args()


def reference_logits(model, images_nhwc: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return model(x).numpy().astype(np.float32)


def calibrate_bn(model, seed: int) -> dict[str, np.ndarray]:
    """Set BN running statistics near the true ones, then randomize them; return them.

    Purely random statistics make a deep random net nearly input-independent; statistics measured
    on synthetic images (one train-mode pass) and then perturbed (mean + N(0, 0.1 sd), var x
    U(0.8, 1.25)) keep activations O(1) so the logits depend on the input and its channel order.
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(synthetic_images(seed + 1000, 8, 128, 128).transpose(0, 3, 1, 2).copy()))
    model.eval()
    rng = np.random.default_rng([seed, 2020])
    stats = {}
    for key, value in model.state_dict().items():
        if key.endswith("running_mean"):
            var = model.state_dict()[key.replace("running_mean", "running_var")].numpy()
            noise = rng.normal(0.0, 0.1, value.shape) * np.sqrt(var)
            stats[key] = (value.numpy() + noise).astype(np.float32)
        elif key.endswith("running_var"):
            stats[key] = (value.numpy() * rng.uniform(0.8, 1.25, value.shape)).astype(np.float32)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in stats.items()}, strict=False)
    return stats


def pycls_normalize(raw_rgb: np.ndarray) -> np.ndarray:
    """pycls's test-time normalization of 0-255 images: BGR, /255, its _MEAN/_SD per channel."""
    import pycls.datasets.imagenet as pycls_imagenet
    import pycls.datasets.transforms as pycls_transforms

    out = []
    for im in raw_rgb:
        chw = im[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0  # RGB -> BGR, CHW
        chw = pycls_transforms.color_norm(chw, pycls_imagenet._MEAN, pycls_imagenet._SD)
        out.append(chw.transpose(1, 2, 0))
    return np.stack(out)  # NHWC, BGR


def make_case(name: str, zoo: str | None, params: dict | None, seed: int, sizes: list) -> dict:
    import pycls
    import torch

    params = zoo_params(zoo) if zoo else params
    model, args = build_reference(params)
    manifest = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    state = synthetic_state(seed, manifest)
    model.load_state_dict({k: torch.from_numpy(v).to(model.state_dict()[k].dtype) for k, v in state.items()})
    arrays = {f"state/{k}": v for k, v in calibrate_bn(model, seed).items()}
    outputs = []
    for batch, h, w in sizes:
        rgb = synthetic_images(seed, batch, h, w)
        key = f"logits_{batch}x{h}x{w}"
        arrays[key] = reference_logits(model, rgb[..., ::-1])  # original pycls weights take BGR
        outputs.append({"key": key, "batch": batch, "height": h, "width": w, "raw": False})
    if name == RAW_CASE:
        batch, h, w = sizes[0]
        raw = synthetic_images(seed, batch, h, w, raw=True)
        key = f"logits_raw_{batch}x{h}x{w}"
        arrays[key] = reference_logits(model, pycls_normalize(raw))
        outputs.append({"key": key, "batch": batch, "height": h, "width": w, "raw": True})
    meta = {
        "case": name, "zoo_model": zoo, "pycls_regnet_cfg": params, "seed": seed,
        "reference": f"pycls {getattr(pycls, '__version__', '0.1.1')} RegNet, torch {torch.__version__}, float32, eval",
        "pycls_stages": {"depths": args["ds"], "widths": args["ws"], "group_widths": args["gws"]},
        "outputs": outputs, "state_dict": manifest,
    }
    _write_atomic(os.path.join(HERE, f"{name}.npz"), lambda f: np.savez_compressed(f, **arrays))
    _write_atomic(os.path.join(HERE, f"{name}.json"), lambda f: f.write(json.dumps(meta, indent=1).encode()))
    return {k: (float(np.abs(v).max()), float((v[0] - v[-1]).std())) for k, v in arrays.items()
            if k.startswith("logits")}


def _write_atomic(path: str, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=HERE, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        write(f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    import torch

    torch.set_num_threads(2)
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # repository root, for keras_regnet.zoo
    for name, zoo, params, seed, sizes in CASES:
        peaks = make_case(name, zoo, params, seed, sizes)
        print(name, {k: f"max|logit| {m:.3f}, sd(first - last image) {d:.3f}" for k, (m, d) in peaks.items()},
              flush=True)


if __name__ == "__main__":
    main()
