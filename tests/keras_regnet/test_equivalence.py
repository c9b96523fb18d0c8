"""Our converted models compute the reference's function: pycls 0.1.1 logits (golden files made by
tests/golden/make_golden.py) are matched within 1e-4 in float32, at a square and a non-square
size, for RegNetX-200MF, RegNetY-200MF, RegNetY-600MF, RegNetX-8.0GF and a tiny non-zoo RegNetY."""

import importlib.util

import numpy as np
import pytest

from tests.golden import equivalence as eq
from tests.golden.synthetic import synthetic_images, synthetic_state


@pytest.mark.parametrize("case", eq.CASES)
def test_logits_match_reference_within_tolerance(case):
    diffs = eq.max_diffs(case)
    assert len(diffs) >= 2  # a square and a non-square size at least
    worst = max(diffs.values())
    assert worst <= eq.TOLERANCE, f"{case}: max abs logit differences {diffs}"


@pytest.mark.parametrize("case", eq.CASES)
def test_our_rule_gives_the_reference_stages(case):
    meta, _ = eq.load_case(case)
    spec = eq.case_spec(meta)
    assert spec.depths == meta["pycls_stages"]["depths"]
    assert spec.widths == meta["pycls_stages"]["widths"]
    assert spec.group_widths == meta["pycls_stages"]["group_widths"]


def test_regnetx_8gf_first_stage_group_width_is_clamped_to_its_width():
    meta, _ = eq.load_case("regnetx_8.0gf")
    assert meta["pycls_regnet_cfg"]["GROUP_W"] == 120
    assert eq.case_spec(meta).stages[0].group_width == eq.case_spec(meta).stages[0].width == 80


@pytest.fixture(scope="module")
def y200():
    """RegNetY-200MF golden case: metadata, arrays, reference state and our converted model."""
    meta, arrays = eq.load_case("regnety_200mf")
    return meta, arrays, eq.reference_state(meta, arrays), eq.keras_model(meta, arrays)


def _square(meta):
    return next(o for o in meta["outputs"] if not o["raw"])


def test_without_the_bgr_flip_the_logits_differ(y200):
    from keras_regnet import build
    from keras_regnet.checkpoint_converter import load_state_dict

    meta, arrays, state, _ = y200
    spec = eq.case_spec(meta)
    model = build(spec, classifier_activation=None, include_preprocessing=False)
    load_state_dict(model, state, spec, bgr_to_rgb=False)
    out = _square(meta)
    diff = np.abs(np.asarray(model(eq.case_inputs(meta, out))) - arrays[out["key"]]).max()
    assert diff > 100 * eq.TOLERANCE


def test_timm_named_checkpoint_gives_the_same_function(y200):
    from keras_regnet import build
    from keras_regnet.pretrained.state_dict import detect_naming
    from keras_regnet.checkpoint_converter import load_state_dict

    meta, arrays, state, _ = y200
    timm_state = eq.to_timm(state)
    assert detect_naming(timm_state) == "timm"
    spec = eq.case_spec(meta)
    model = build(spec, classifier_activation=None, include_preprocessing=False)
    load_state_dict(model, timm_state, spec)  # auto: timm naming, no flip (timm is RGB already)
    out = _square(meta)
    diff = np.abs(np.asarray(model(eq.case_inputs(meta, out))) - arrays[out["key"]]).max()
    assert diff <= eq.TOLERANCE


def test_preprocess_input_matches_the_reference_normalization(y200):
    from keras_regnet import preprocess_input

    meta, arrays, _, model = y200
    raw_out = next(o for o in meta["outputs"] if o["raw"])
    raw = eq.case_inputs(meta, raw_out)
    assert raw.min() >= 0 and raw.max() <= 255
    got = np.asarray(model(preprocess_input(raw)))
    assert np.abs(got - arrays[raw_out["key"]]).max() <= eq.TOLERANCE


def test_decode_predictions_on_converted_logits(y200):
    from keras_regnet import decode_predictions
    from keras_regnet.imagenet_utils import imagenet_classes

    meta, arrays, _, model = y200
    out = _square(meta)
    logits = np.asarray(model(eq.case_inputs(meta, out)))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    decoded = decode_predictions(probs, top=5)
    classes = imagenet_classes()
    for row, ref in zip(decoded, arrays[out["key"]]):
        assert [wnid for wnid, _, _ in row] == [classes[i][0] for i in np.argsort(-ref)[:5]]
        scores = [score for _, _, score in row]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1


def _reference_available():
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "pycls", "yacs"))


@pytest.mark.skipif(not _reference_available(), reason="live check needs torch + pycls")
@pytest.mark.parametrize("block_type,se", [("res_bottleneck_block", True), ("res_basic_block", False),
                                           ("vanilla_block", False)])
def test_live_against_pycls_anynet(block_type, se):
    """With torch and pycls installed: random AnyNets of all block types at an odd input size."""
    import torch
    from pycls.core.config import reset_cfg
    from pycls.models.anynet import AnyNet

    from keras_regnet import build, make_spec
    from keras_regnet.checkpoint_converter import load_state_dict

    reset_cfg()
    bottleneck = block_type == "res_bottleneck_block"
    depths, widths, strides = [1, 2], [16, 32], [2, 1]
    ref = AnyNet(stem_type="simple_stem_in", stem_w=8, block_type=block_type, ds=depths, ws=widths,
                 ss=strides, bms=[0.5, 0.5] if bottleneck else None, gws=[4, 8] if bottleneck else None,
                 se_r=0.25 if se else None, nc=10).eval()
    block = {"res_bottleneck_block": "y" if se else "x", "res_basic_block": "r", "vanilla_block": "v"}[block_type]
    spec = make_spec(depths, widths, group_widths=[4, 8] if bottleneck else 1,
                     bottleneck_ratios=0.5 if bottleneck else 1.0, strides=strides, block=block,
                     se_ratio=0.25 if se else 0.0, stem_width=8)
    state = synthetic_state(7, [(k, tuple(v.shape)) for k, v in ref.state_dict().items()])
    ref.load_state_dict({k: torch.from_numpy(v).to(ref.state_dict()[k].dtype) for k, v in state.items()})
    model = build(spec, classes=10, classifier_activation=None, include_preprocessing=False)
    load_state_dict(model, state, spec)
    x = synthetic_images(7, 2, 37, 53)
    with torch.no_grad():
        want = ref(torch.from_numpy(np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2)))).numpy()
    assert np.abs(np.asarray(model(x)) - want).max() <= eq.TOLERANCE


@pytest.mark.skipif(not _reference_available(), reason="live check needs torch + pycls")
def test_live_all_24_zoo_models_have_pycls_stages_and_state_dict_keys():
    """With torch and pycls installed: every zoo spec equals pycls's, and the converter expects
    exactly pycls's state-dict keys (models built on the meta device: no memory, no time)."""
    import torch
    from pycls.core.config import cfg, reset_cfg
    from pycls.models.regnet import RegNet

    from keras_regnet import ZOO
    from keras_regnet.checkpoint_converter import layer_map

    for name, entry in ((n, e) for n, e in ZOO.items() if not e.beyond_paper):  # pycls has the paper's 24
        reset_cfg()
        p = entry.params
        cfg.REGNET.DEPTH, cfg.REGNET.W0, cfg.REGNET.WA, cfg.REGNET.WM = p.depth, p.w0, p.wa, p.wm
        cfg.REGNET.GROUP_W, cfg.REGNET.SE_ON = p.group_width, p.se_ratio > 0
        args = RegNet.get_args()
        spec = entry.spec()
        assert (spec.depths, spec.widths, spec.group_widths) == (args["ds"], args["ws"], args["gws"]), name
        with torch.device("meta"):
            keys = {k for k in RegNet().state_dict() if not k.endswith("num_batches_tracked")}
        assert keys == {k for e in layer_map(spec, "pycls") for k in e.keys()}, name
