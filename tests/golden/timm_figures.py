"""Print the timm equivalence figures: max |keras - timm| and its ratio to max |timm| per case.

    python -m tests.golden.timm_figures     # golden cases always; live cases with torch and timm installed
"""

from __future__ import annotations

import json
import os

import numpy as np

from tests.golden.synthetic import synthetic_images, synthetic_state

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "timm")
LIVE = ("regnetx_004_tv", "regnety_008_tv", "regnety_080_tv", "regnetx_008", "regnety_032")


def _line(label: str, got: np.ndarray, want: np.ndarray) -> str:
    diff = float(np.abs(got - want).max())
    return f"{label}: max|d|={diff:.2e} rel={diff / float(np.abs(want).max()):.2e} max|timm|={np.abs(want).max():.3g}"


def golden() -> None:
    from keras_regnet import build, get_entry
    from keras_regnet.pretrained.assign import assign_by_name
    from keras_regnet.pretrained.to_keras import convert_state_dict

    for case in ("regnetx_004_tv", "regnety_008_tv", "regnety_080_tv"):
        with open(os.path.join(HERE, f"{case}.json")) as f:
            meta = json.load(f)
        logits = np.load(os.path.join(HERE, f"{case}.npz"))
        spec = get_entry(case).spec()
        model = build(spec, classifier_activation=None, include_preprocessing=False)
        state = synthetic_state(meta["seed"], meta["state_dict"])
        assign_by_name(model, convert_state_dict(state, spec, naming="timm", bgr_to_rgb=False), case)
        for out in meta["outputs"]:
            x = synthetic_images(meta["seed"], out["batch"], out["height"], out["width"])
            print(_line(f"golden {case} {out['key']}", np.asarray(model(x, training=False)), logits[out["key"]]))


def live() -> None:
    from tests.helpers.timm_import import import_timm

    timm = import_timm()
    if timm is None:
        print("live: torch/timm not installed")
        return
    import tempfile

    import torch
    from safetensors.torch import save_file

    from keras_regnet import build, get_entry

    for arch in LIVE:
        torch.manual_seed(0)
        reference = timm.create_model(arch, pretrained=False).eval()
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.4, 1.0)
                module.bias.data.uniform_(-0.1, 0.1)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"{arch}.safetensors")
            save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
            model = build(get_entry(arch).spec(), weights=path, classifier_activation=None,
                          include_preprocessing=False)
        x = synthetic_images(3, 2, 64, 96)
        with torch.no_grad():
            want = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        print(_line(f"live {arch} 2x64x96", np.asarray(model(x, training=False)), want))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    golden()
    live()
