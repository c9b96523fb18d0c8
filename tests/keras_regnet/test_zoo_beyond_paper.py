"""The six zoo models beyond the paper: RegNetY-64GF/128GF/256GF (timm's regnety_640/1280/2560, the
SEER/SWAG sizes) and the three on torchvision's width rounding (timm's regnetx_004_tv, regnety_008_tv,
regnety_080_tv). Figures are the published ones: torchvision's `num_params` / `_ops` (GFLOPs at the
weights' crop) in torchvision/models/regnet.py, timm's params (M) and `infer_gmacs` in
results/benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv. The SEER sizes are checked analytically,
never built (281M-1283M parameters)."""

import numpy as np
import pytest

import keras_regnet
from keras_regnet import complexity, get_entry
from keras_regnet.regnet import RegNetParams, torchvision_group_rounding

# name: params (exact where torchvision publishes them, else timm's 2 decimals in M),
#       {input size: published GFLOPs and the decimals it is given to}
PUBLISHED = {
    "regnety_64gf": (281.38, {}),
    "regnety_128gf": (644_812_894, {224: (127.5, 1), 384: (374.6, 1)}),  # RegNet_Y_128GF_Weights
    "regnety_256gf": (1282.6, {}),
    "regnetx_400mf_tv": (5_495_976, {224: (0.4, 1)}),  # RegNet_X_400MF_Weights
    "regnety_800mf_tv": (6_432_512, {224: (0.8, 1)}),  # RegNet_Y_800MF_Weights
    "regnety_8.0gf_tv": (39_381_472, {224: (8.5, 1)}),  # RegNet_Y_8GF_Weights
}
# timm's benchmark csv, infer_gmacs at (size), for the sizes torchvision does not publish: its counter
# also counts elementwise ops (SE scaling, residual adds), within 0.2% of the multiply-adds at this scale.
TIMM_GMACS = {("regnety_64gf", 224): 64.16, ("regnety_64gf", 384): 188.47, ("regnety_128gf", 224): 127.66,
              ("regnety_128gf", 384): 374.99, ("regnety_256gf", 384): 747.83}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_params_and_flops_equal_the_published_figures(name):
    params, flops = PUBLISHED[name]
    cx = complexity(name, 224)
    if isinstance(params, int):
        assert cx.params == params
    else:
        assert round(cx.params / 1e6, 2) == params
    for size, (gflops, decimals) in flops.items():
        assert round(complexity(name, size).flops / 1e9, decimals) == gflops


@pytest.mark.parametrize("key", list(TIMM_GMACS))
def test_flops_agree_with_timms_benchmark_within_its_counting(key):
    name, size = key
    assert complexity(name, size).flops / 1e9 == pytest.approx(TIMM_GMACS[key], rel=2e-3)


def _torchvision_make_divisible(v, divisor, round_limit=0.9):
    """torchvision/ops/misc.py `_make_divisible` (min_value = divisor), the rule of its RegNet widths."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("name,paper", [("regnetx_400mf_tv", "regnetx_400mf"), ("regnety_800mf_tv", "regnety_800mf"),
                                        ("regnety_8.0gf_tv", "regnety_8.0gf")])
def test_tv_models_are_the_papers_parameters_rounded_as_torchvision(name, paper):
    tv, ref = get_entry(name), get_entry(paper)
    assert (tv.params.depth, tv.params.w0, tv.params.wa, tv.params.wm, tv.params.group_width) == (
        ref.params.depth, ref.params.w0, ref.params.wa, ref.params.wm, ref.params.group_width)
    raw = sorted(set(ref.params.block_widths()))
    groups = [min(ref.params.group_width, w) for w in raw]
    assert tv.spec().widths == [_torchvision_make_divisible(w, g) for w, g in zip(raw, groups)]
    assert tv.spec().widths != ref.spec().widths and tv.spec().depths == ref.spec().depths


def test_the_rounding_rules_differ_where_torchvision_does():
    assert torchvision_group_rounding([392, 192, 160], [16, 56, 16]) == ([400, 224, 160], [16, 56, 16])
    with pytest.raises(ValueError, match="group_rounding='torch' is not one of pycls, torchvision"):
        RegNetParams(13, 24, 36.44, 2.49, 8, group_rounding="torch").to_spec()


def test_names_aliases_and_builders():
    assert get_entry("regnety_1280").name == get_entry("RegNetY128GF").name == "regnety_128gf"
    assert get_entry("RegNetY-8.0GF-tv").timm_name == "regnety_080_tv"
    assert get_entry("RegNetX004_tv").function_name == "RegNetX400MF_tv"
    assert get_entry("regnety_080").name == "regnety_8.0gf"  # the paper's model keeps its name
    for entry in map(get_entry, ["regnety_64gf", "regnety_256gf", "regnety_800mf_tv"]):
        builder = getattr(keras_regnet, entry.function_name)
        assert getattr(keras_regnet, entry.keras2_name) is builder
        assert "beyond the paper" in builder.__doc__ and "no pycls weights" in builder.__doc__


def test_a_tv_model_builds_with_torchvisions_parameter_count():
    model = keras_regnet.RegNetX400MF_tv(input_shape=(32, 32, 3))
    assert int(sum(np.prod(w.shape) for w in model.trainable_weights)) == 5_495_976
    assert model.output_shape == (None, 1000)


def test_imagenet_is_refused_for_models_without_pycls_weights():
    with pytest.raises(ValueError, match="no pycls_in1k weights for RegNetY-800MF-tv"):
        keras_regnet.RegNetY800MF_tv(weights="imagenet", input_shape=(32, 32, 3))
