"""Equivalence with timm for the architectures of the new weights (timm/models/regnet.py).

CI part: golden logits of timm's own `*_tv` models (tests/golden/timm, made by
tests/golden/make_timm_golden.py) against our converted model, within 1e-4 of the logits' scale.
Live part, where torch and timm are installed: timm's randomly initialised models (BN statistics
randomised too) saved as a timm-naming .safetensors file and loaded through `weights=<file>`, and
timm's parameter counts of the SEER sizes (built on the meta device, no memory)."""

import json
import os

import numpy as np
import pytest

from keras_regnet import build, get_entry
from keras_regnet.pretrained.assign import assign_by_name
from keras_regnet.pretrained.to_keras import convert_state_dict
from tests.golden.synthetic import synthetic_images, synthetic_state
from tests.helpers.timm_import import import_timm

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "golden", "timm")
CASES = ("regnetx_004_tv", "regnety_008_tv", "regnety_080_tv")
RELATIVE = 1e-4  # max |keras - timm| / max |timm|


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("case", CASES)
def test_converted_golden_weights_give_timms_logits(case):
    with open(os.path.join(GOLDEN, f"{case}.json")) as f:
        meta = json.load(f)
    with np.load(os.path.join(GOLDEN, f"{case}.npz"), allow_pickle=False) as data:
        logits = {k: data[k] for k in data.files}
    spec = get_entry(meta["timm_model"]).spec()
    state = synthetic_state(meta["seed"], meta["state_dict"])
    model = build(spec, classifier_activation=None, include_preprocessing=False)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == meta["params"]
    assign_by_name(model, convert_state_dict(state, spec, naming="timm", bgr_to_rgb=False), case)
    for output in meta["outputs"]:
        x = synthetic_images(meta["seed"], output["batch"], output["height"], output["width"])
        want = logits[output["key"]]
        assert np.abs(want).max() > 1e-2  # logits that say something
        assert _relative_error(np.asarray(model(x, training=False)), want) < RELATIVE, output["key"]


@pytest.fixture(scope="module")
def timm():
    module = import_timm()
    if module is None:
        pytest.skip("torch and timm are not installed (pip install torch==2.13.0 timm --no-deps)")
    return module


# Each new weight's architecture small enough for a CPU test: the *_tv models and two the tags share.
LIVE = ("regnetx_004_tv", "regnety_008_tv", "regnety_080_tv", "regnetx_008", "regnety_032")


@pytest.mark.parametrize("arch", LIVE)
def test_timms_random_weights_load_through_weights_file_with_its_logits(timm, arch, tmp_path):
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = timm.create_model(arch, pretrained=False).eval()
    for module in reference.modules():  # randomise BN statistics and affine so BN is not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.4, 1.0)
            module.bias.data.uniform_(-0.1, 0.1)
    path = str(tmp_path / f"{arch}.safetensors")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    model = build(get_entry(arch).spec(), weights=path, classifier_activation=None, include_preprocessing=False)
    x = synthetic_images(3, 2, 64, 96)
    with torch.no_grad():
        want = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert _relative_error(np.asarray(model(x, training=False)), want) < RELATIVE


@pytest.mark.parametrize("arch", ["regnety_640", "regnety_1280", "regnety_2560"])
def test_seer_sizes_have_timms_parameter_count(timm, arch):
    import torch

    from keras_regnet import complexity

    with torch.device("meta"):
        reference = timm.create_model(arch, pretrained=False)
    assert complexity(arch).params == sum(p.numel() for p in reference.parameters())
