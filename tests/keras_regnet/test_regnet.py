"""The RegNet rule reproduces the published zoo, and the quantized linear fit inverts it."""

import numpy as np
import pytest

from keras_regnet.regnet import (
    RegNetParams,
    adjust_block_compatibility,
    fit_quantized_linear,
    quantized_block_widths,
    stages_from_block_widths,
)
from keras_regnet.zoo import ZOO, get_entry, list_models


def test_zoo_has_the_24_published_models_then_six_beyond_the_paper():
    assert len(list_models(beyond_paper=False)) == 24
    assert list_models()[0] == "regnetx_200mf" and "regnety_600mf" in list_models()
    assert list_models()[24:] == ["regnety_64gf", "regnety_128gf", "regnety_256gf", "regnetx_400mf_tv",
                                  "regnety_800mf_tv", "regnety_8.0gf_tv"]
    assert all(ZOO[name].beyond_paper for name in list_models()[24:])


@pytest.mark.parametrize("name", list_models(beyond_paper=False))
def test_zoo_stage_widths_depths_and_groups_match_the_reference(name, reference_zoo):
    entry = ZOO[name]
    ref = reference_zoo[entry.display_name]
    spec = entry.spec()
    assert spec.widths == ref["widths"]
    assert spec.depths == ref["depths"]
    assert spec.group_widths == ref["group_widths"]
    assert spec.block == ("y" if ref["SE_ON"] else "x")
    assert entry.top1_err == ref["top1_err"] and entry.batch_size == ref["batch_size"]


def test_regnetx_8gf_first_stage_has_one_group():
    first = get_entry("RegNetX-8.0GF").spec().stages[0]
    assert (first.width, first.group_width, first.groups) == (80, 80, 1)


def test_rounding_is_half_to_even():
    # block 1: u = 8 + 12 = 20, s = 1, w = 8 * round(20 / 8 = 2.5) = 16 (half-up would give 24)
    assert quantized_block_widths(2, 8, 12.0, 2.5) == [8, 16]


def test_stages_are_runs_of_equal_widths():
    assert stages_from_block_widths([8, 8, 16, 16, 16, 32]) == ([8, 16, 32], [2, 3, 1])


def test_compatibility_clamps_group_width_and_rounds_bottleneck():
    widths, groups = adjust_block_compatibility([80, 240], [1.0, 1.0], [120, 120])
    assert (widths, groups) == ([80, 240], [80, 120])
    widths, groups = adjust_block_compatibility([100], [2.0], [16])
    assert widths[0] * 2 % groups[0] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(w0=20), "w0 must be a positive multiple of 8, got 20"),
        (dict(wm=1.0), "wm must be a finite number > 1, got 1.0"),
        (dict(wa=-1.0), "wa must be a finite number >= 0, got -1.0"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(group_width=0), "group_width must be a positive integer, got 0"),
        (dict(bottleneck_ratio=0.0), "bottleneck_ratio must be a finite number > 0, got 0.0"),
        # infinities used to crash inside numpy (wa) or silently give a one-stage net (wm)
        (dict(wa=float("inf")), "wa must be a finite number >= 0, got inf"),
        (dict(wm=float("inf")), "wm must be a finite number > 1, got inf"),
        (dict(bottleneck_ratio=float("inf")), "bottleneck_ratio must be a finite number > 0, got inf"),
    ],
)
def test_invalid_parameters_name_the_value(kwargs, message):
    params = dict(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8)
    params.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RegNetParams(**params).to_spec()


def test_numpy_integers_are_accepted_like_python_ints():
    """Samplers and configs hand over numpy scalars; depth and w0 took them, group_width did not."""
    spec = RegNetParams(np.int64(13), np.int64(24), 36.44, 2.49, np.int64(8)).to_spec()
    assert spec == RegNetParams(13, 24, 36.44, 2.49, 8).to_spec()
    assert all(type(v) is int for s in spec.stages for v in (s.depth, s.width, s.group_width))


@pytest.mark.parametrize("name", list(ZOO))
def test_a_true_regnet_fits_with_zero_error(name):
    widths = ZOO[name].params.block_widths()
    fit = fit_quantized_linear(widths)
    assert fit.e_fit == 0.0
    assert list(fit.predicted) == widths


def test_random_regnets_fit_exactly():
    rng = np.random.default_rng(0)
    for _ in range(30):
        w0 = int(rng.integers(2, 32)) * 8
        widths = quantized_block_widths(int(rng.integers(4, 30)), w0, float(rng.uniform(8, 64)),
                                        float(rng.uniform(1.5, 3.0)))
        assert fit_quantized_linear(widths).e_fit == 0.0


def test_perturbed_widths_fit_with_positive_error():
    widths = get_entry("regnety_600mf").params.block_widths()
    widths[5] += 40  # break one block's width
    fit = fit_quantized_linear(widths)
    assert fit.e_fit > 0.0
    assert fit.e_fit < np.mean(np.abs(np.log(np.array(widths) / widths[0])))


def test_fit_rejects_empty_or_non_positive_widths():
    with pytest.raises(ValueError, match="non-empty list of positive widths"):
        fit_quantized_linear([])
    with pytest.raises(ValueError, match="non-empty list of positive widths"):
        fit_quantized_linear([8, 0])


@pytest.mark.parametrize("alias", ["RegNetY-1.6GF", "regnety_1_6gf", "RegNetY1_6GF", "RegNetY016", "regnety_016"])
def test_every_spelling_finds_the_model(alias):
    assert get_entry(alias).name == "regnety_1.6gf"


def test_16gf_is_not_confused_with_1_6gf():
    assert get_entry("RegNetX16GF").name == "regnetx_16gf"
    assert get_entry("RegNetX160").name == "regnetx_16gf"


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown model 'regnetz_600mf'; available: regnetx_200mf"):
        get_entry("regnetz_600mf")
