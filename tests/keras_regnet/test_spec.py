"""NetSpec: validation that names the bad value, and a lossless JSON round-trip."""

import pytest

from keras_regnet.spec import NetSpec, StageSpec, make_spec


def test_json_round_trip_preserves_every_field():
    spec = make_spec([1, 2, 3], [16, 32, 64], [8, 16, 16], [1.0, 2.0, 1.0], [2, 2, 1], block="y",
                     se_ratio=0.25, stem_width=24, stem_stride=1, name="tiny")
    again = NetSpec.from_json(spec.to_json())
    assert again == spec
    assert again.stages[1] == StageSpec(2, 32, 2, 2.0, 16)


def test_numpy_arrays_and_ranges_are_per_stage_lists():
    """A numpy array of group widths used to be broadcast as one 'scalar' and then rejected."""
    np = pytest.importorskip("numpy")
    spec = make_spec(np.array([1, 2]), np.array([16, 32]), group_widths=np.array([8, 16]),
                     bottleneck_ratios=np.array([1.0, 1.0]), strides=range(1, 3))
    assert spec == make_spec([1, 2], [16, 32], [8, 16], [1.0, 1.0], [1, 2])
    assert all(type(s.group_width) is int for s in spec.stages)


def test_scalars_broadcast_to_every_stage():
    spec = make_spec([1, 1], [16, 32], group_widths=8, bottleneck_ratios=1.0)
    assert spec.group_widths == [8, 8] and spec.bottleneck_ratios == [1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depths=[0, 1], widths=[16, 32]), "stage 1 depth must be an integer >= 1, got 0"),
        (dict(depths=[1, 1], widths=[16, 30], group_widths=8), "group_width 8 must divide the bottleneck width 30"),
        (dict(depths=[1], widths=[16], block="z"), "block must be one of"),
        (dict(depths=[1], widths=[16], block="y"), "block 'y' needs 0 < se_ratio <= 1, got se_ratio=0.0"),
        (dict(depths=[1], widths=[16], block="x", se_ratio=0.25), "se_ratio=0.25 is only allowed with block 'y'"),
        (dict(depths=[1], widths=[16], stem_stride=4), "stem_stride must be 1 or 2, got 4"),
        (dict(depths=[1], widths=[16], strides=3), "stage 1 stride must be 1 or 2, got 3"),
        (dict(depths=[1, 2], widths=[16]), "widths has 1 entries but depths has 2"),
        (dict(depths=[1.5], widths=[16]), "stage 1 depth must be an integer >= 1, got 1.5"),
        (dict(depths=[], widths=[]), "at least one stage"),
        (dict(depths=2, widths=[16]), "depths must be a list with one value per stage, got 2"),
        (dict(depths=[1], widths="16"), "widths must be a list with one value per stage, got '16'"),
    ],
)
def test_invalid_specs_name_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_spec(**kwargs)


def test_from_dict_rejects_unknown_keys():
    data = make_spec([1], [16]).to_dict()
    data["stages"][0]["widht"] = 3
    with pytest.raises(ValueError, match="unknown keys \\['widht'\\]"):
        NetSpec.from_dict(data)


def test_vanilla_and_residual_blocks_ignore_group_compatibility():
    # v and r blocks have no grouped conv, so widths need not be multiples of the group width
    make_spec([1], [30], group_widths=8, block="r")
    make_spec([1], [30], group_widths=8, block="v")


def test_total_stride_and_block_widths():
    spec = make_spec([2, 1], [16, 32], strides=[1, 2], stem_stride=1)
    assert spec.total_stride == 2
    assert spec.block_widths() == [16, 16, 32]
