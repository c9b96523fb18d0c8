"""Batch costing is the walk: every block type, stem option and stride costs what `complexity()` says.

`batch_complexity` follows `keras_regnet.layer_records` with numpy arrays, so a block type or stem option the
walk knows is costed without a second formula; these specs exercise what the old closed form hard-coded
(X/Y blocks only, a stride-2 first block in every stage, a 3-channel input).
"""

import numpy as np
import pytest

from keras_regnet import layer_records
from keras_regnet.complexity import complexity
from keras_regnet.design_space import sample
from keras_regnet.design_space.fast_complexity import StageArrays, batch_complexity
from keras_regnet.design_space.spaces import AnyNetSpace
from keras_regnet.regnet import adjust_block_compatibility, block_stages, stage_ends
from keras_regnet.spec import BLOCK_TYPES, make_spec

SE_RATIOS = {"v": 0.0, "r": 0.0, "x": 0.0, "y": (0.25, 0.5, 1 / 16)}


def _random_stages(rng: np.random.Generator, block: str) -> dict:
    """Per-stage lists for one network: repeated widths with stride 1 make identity shortcuts."""
    n = int(rng.integers(1, 6))
    widths, strides = [int(rng.integers(1, 40)) * 8], [int(rng.choice([1, 2]))]
    for _ in range(n - 1):
        same = rng.random() < 0.3
        widths.append(widths[-1] if same else int(rng.integers(1, 40)) * 8)
        strides.append(1 if same else int(rng.choice([1, 2])))
    ratios = [float(rng.choice([0.25, 0.5, 1.0, 2.0])) for _ in range(n)]
    groups = [int(rng.choice([1, 2, 3, 8, 16])) for _ in range(n)]
    if block in ("x", "y"):
        widths, groups = adjust_block_compatibility(widths, ratios, groups)
    return dict(depths=[int(d) for d in rng.integers(1, 5, n)], widths=widths, strides=strides,
                bottleneck_ratios=ratios, group_widths=groups)


@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_batch_complexity_equals_complexity_for_every_block_type_and_stem(block):
    rng = np.random.default_rng(24)
    mixed_shortcuts = 0
    for _ in range(5):  # 5 stems x 60 networks per block type
        se = float(rng.choice(SE_RATIOS[block])) if block == "y" else 0.0
        stem = dict(stem_width=int(rng.integers(3, 65)), stem_stride=int(rng.choice([1, 2])))
        channels, classes, top = int(rng.choice([1, 3, 4])), int(rng.integers(2, 50)), bool(rng.random() < 0.7)
        size = int(rng.integers(17, 97)) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(17, 97, 2))
        specs = [make_spec(**_random_stages(rng, block), block=block, se_ratio=se, **stem) for _ in range(60)]
        got = batch_complexity(StageArrays.from_specs(specs), size, se_ratio=se, classes=classes,
                               include_top=top, block=block, channels=channels, **stem)
        want = [complexity(s, size, top, classes, channels) for s in specs]
        assert [(c.flops, c.params, c.acts) for c in want] == list(zip(*(v.tolist() for v in got)))
        mixed_shortcuts += sum(not layer_records.needs_projection(site.c_in, site.stage.width, site.stride)
                               for s in specs for site in layer_records.block_sites(s) if site.index == 1)
    assert mixed_shortcuts > 20  # first blocks with an identity shortcut were in the batches


def test_batch_complexity_refuses_what_netspec_refuses():
    stages = StageArrays.from_specs([make_spec([1, 2], [16, 32])])
    with pytest.raises(ValueError, match=r"block must be one of \('v', 'r', 'x', 'y'\), got 'z'"):
        batch_complexity(stages, 32, block="z")
    with pytest.raises(ValueError, match="se_ratio=0.25 is only allowed with block 'y'"):
        batch_complexity(stages, 32, se_ratio=0.25, block="r")
    with pytest.raises(ValueError, match="stem_stride must be 1 or 2, got 3"):
        batch_complexity(stages, 32, stem_stride=3)


class _ResidualAnyNet(AnyNetSpace):
    """AnyNet stages of residual basic blocks: a space whose block type is not X/Y."""

    @property
    def block(self) -> str:
        return "r"


class _UnknownBlockAnyNet(AnyNetSpace):
    @property
    def block(self) -> str:
        return "q"


def test_a_sampler_costs_its_own_block_type_or_refuses_it():
    pop = sample(_ResidualAnyNet(name="anynetr"), 30, seed=0, flops=(50e6, 2e9), input_size=64)
    assert len(pop) == 30
    for s in pop:
        assert s.spec.block == "r" and complexity(s.spec, 64) == s.complexity
    with pytest.raises(ValueError, match="block must be one of .*got 'q'"):
        sample(_UnknownBlockAnyNet(name="anynetq"), 3, seed=0)


def test_stage_ends_invert_the_rules_stage_of_each_block():
    rng = np.random.default_rng(5)
    n = 3000
    d = rng.integers(1, 64, n)
    w0 = rng.integers(1, 32, n) * 8.0
    wa = np.round(rng.uniform(8, 256, n), 1)
    wm = np.round(rng.uniform(1.5, 3.0, n), 3)
    ends = stage_ends(w0, wa, wm, range(6), d)
    j = np.arange(63)[None, :]
    stages = block_stages(w0[:, None], wa[:, None], wm[:, None], j)
    in_net = j < d[:, None]
    for k in range(6):
        np.testing.assert_array_equal(ends[:, k], np.sum(in_net & (stages <= k), axis=1))
