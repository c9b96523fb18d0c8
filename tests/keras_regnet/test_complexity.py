"""Analytic complexity equals the reference's integers for the whole zoo."""

import pytest

from keras_regnet import complexity
from keras_regnet.complexity import layer_table
from keras_regnet.spec import make_spec
from keras_regnet.zoo import ZOO


@pytest.mark.parametrize("name", [n for n, e in ZOO.items() if not e.beyond_paper])
def test_flops_params_acts_equal_the_reference(name, reference_zoo):
    ref = reference_zoo[ZOO[name].display_name]
    cx = complexity(name)
    assert (cx.flops, cx.params, cx.acts) == (ref["flops"], ref["params"], ref["acts"])


def test_complexity_is_the_sum_of_the_layer_table():
    spec = ZOO["regnety_800mf"].spec()
    rows = layer_table(spec, 160)
    cx = complexity(spec, 160)
    assert cx.flops == sum(r.flops for r in rows)
    assert cx.params == sum(r.params for r in rows)
    assert cx.acts == sum(r.acts for r in rows)


def test_flops_scale_with_input_area_but_params_do_not():
    spec = ZOO["regnetx_400mf"].spec()
    small, large = complexity(spec, 224), complexity(spec, 448)
    assert small.params == large.params
    assert 3.9 < large.flops / small.flops < 4.1


def test_non_square_input_and_stem_stride_1():
    spec = make_spec([1, 1], [16, 32], group_widths=8, stem_stride=1, name="cifar")
    rows = layer_table(spec, (32, 48))
    stem = rows[0]
    assert (stem.height, stem.width) == (32, 48)
    assert rows[-2].height == 8 and rows[-2].width == 12  # two stride-2 stages


def test_se_width_uses_the_block_input_width():
    spec = make_spec([1], [64], group_widths=8, block="y", se_ratio=0.25, stem_width=32)
    reduce = next(r for r in layer_table(spec) if r.name == "s1_b1_se_reduce")
    assert (reduce.channels_in, reduce.channels_out) == (64, 8)  # round(0.25 * 32), not 0.25 * 64


def test_complexity_without_top():
    spec = ZOO["regnetx_200mf"].spec()
    assert complexity(spec).params - complexity(spec, include_top=False).params == 368 * 1000 + 1000
