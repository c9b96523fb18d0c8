"""Design spaces: every sampler honours its constraints, is reproducible, unique, and costed exactly."""

import subprocess
import sys

import numpy as np
import pytest

from keras_regnet.complexity import complexity
from keras_regnet.design_space import SPACES, get_space, sample, scaled_flops_range
from keras_regnet.design_space.fast_complexity import StageArrays, batch_complexity
from keras_regnet.design_space.spaces import adjust_compatibility
from keras_regnet.regnet import RegNetParams, adjust_block_compatibility
from keras_regnet.spec import make_spec

ANYNETS = ["anynetx_a", "anynetx_b", "anynetx_c", "anynetx_d", "anynetx_e"]
REGNETS = ["regnetx", "regnety", "regnetx_constrained", "regnety_constrained"]


@pytest.fixture(scope="module")
def populations():
    """2,000 unconstrained-complexity samples of every space."""
    return {name: sample(name, 2000, seed=1) for name in SPACES}


def _is_sorted(xs):
    return all(a <= b for a, b in zip(xs, xs[1:]))


@pytest.mark.parametrize("name", ANYNETS)
def test_anynet_samples_honour_the_space(populations, name):
    space = get_space(name)
    for s in populations[name]:
        p, spec = s.params, s.spec
        assert spec.validate() is spec and len(spec.stages) == 4 and spec.block == "x"
        assert all(1 <= d <= 16 for d in p["ds"]) and spec.depths == p["ds"]
        assert all(8 <= w <= 1024 and w % 8 == 0 for w in p["ws"])
        assert set(p["bs"]) <= {1.0, 2.0, 4.0} and set(p["gs"]) <= {1, 2, 4, 8, 16, 32}
        # Group widths are made compatible the reference way (clamp g, round w*b to a multiple of g).
        # bs are the paper's b (inner width w / b); the spec holds the multipliers 1 / b.
        widths, groups = adjust_block_compatibility(p["ws"], [1 / b for b in p["bs"]], p["gs"])
        assert spec.widths == widths and spec.group_widths == groups
        if space.shared_b:
            assert len(set(p["bs"])) == 1
        if space.shared_g:
            assert len(set(p["gs"])) == 1
        if space.increasing_widths:
            assert _is_sorted(p["ws"]) and _is_sorted(spec.widths)
        if space.increasing_depths:
            assert _is_sorted(p["ds"])


def test_unconstrained_anynet_does_mix_per_stage_values(populations):
    pop = populations["anynetx_a"]
    assert sum(len(set(s.params["bs"])) > 1 for s in pop) > len(pop) / 2
    assert sum(not _is_sorted(s.params["ws"]) for s in pop) > len(pop) / 2


@pytest.mark.parametrize("name", REGNETS)
def test_regnet_samples_follow_the_quantized_linear_rule(populations, name):
    space = get_space(name)
    for s in populations[name]:
        p = s.params
        assert space.depth_range[0] <= p["d"] <= space.depth_range[1] and p["d"] < 64
        assert 8 <= p["w0"] < 256 and p["w0"] % 8 == 0 and 8 <= p["wa"] < 256
        assert space.wm_range[0] <= p["wm"] <= space.wm_range[1] and 1.5 <= p["wm"] <= 3
        assert 1 / p["b"] in space.bottleneck_ratios and p["g"] in (1, 2, 4, 8, 16, 32)
        rule = RegNetParams(p["d"], p["w0"], p["wa"], p["wm"], p["g"], 1 / p["b"], space.se_ratio)
        assert s.spec == rule.to_spec(s.spec.name)
        assert rule.num_stages() == 4 == len(s.spec.stages)  # never skips or merges a stage
        assert s.spec.block == ("y" if "regnety" in name else "x")
    if "constrained" in name:
        assert all(s.params["b"] == 1 and s.params["d"] <= 40 and s.params["wm"] >= 2 for s in populations[name])


def test_samples_are_unique_and_reproducible_by_seed():
    a = sample("anynetx_c", 300, seed=5, flops=(100e6, 800e6))
    b = sample("anynetx_c", 300, seed=5, flops=(100e6, 800e6))
    c = sample("anynetx_c", 300, seed=6, flops=(100e6, 800e6))
    assert [s.spec for s in a] == [s.spec for s in b]
    assert [s.spec for s in a] != [s.spec for s in c]
    keys = {(s.spec.stages, s.spec.block) for s in a}
    assert len(keys) == len(a) and [s.index for s in a] == list(range(300))


@pytest.mark.parametrize("name", ["anynetx_a", "anynetx_e", "regnetx", "regnety"])
def test_complexity_constraints_are_met_exactly(name):
    pop = sample(name, 40 if name == "anynetx_e" else 150, seed=2, flops=(360e6, 400e6), params=(1e6, 6e6),
                 acts=(0, 8e6))
    for s in pop:
        cx = complexity(s.spec, 224)
        assert cx == s.complexity
        assert 360e6 <= cx.flops <= 400e6 and 1e6 <= cx.params <= 6e6 and cx.acts <= 8e6


def test_small_input_regime_with_stride_one_stem():
    lo, hi = scaled_flops_range(32, 1)
    assert 29e6 < lo < hi < 33e6
    pop = sample("regnetx", 100, seed=0, flops=(lo, hi), input_size=32, stem_stride=1, classes=10)
    for s in pop:
        assert s.spec.stem_stride == 1 and complexity(s.spec, 32, classes=10) == s.complexity
        assert lo <= s.complexity.flops <= hi


def test_table1_design_space_sizes():
    paper = {"anynetx_a": "1.8e+18", "anynetx_b": "6.8e+16", "anynetx_c": "3.2e+14",
             "anynetx_d": "1.3e+13", "anynetx_e": "5.5e+11", "regnetx": "3.0e+08"}
    for name, expected in paper.items():
        assert f"{get_space(name).size():.1e}" == expected, name
    # Exact counts: the ordering constraints remove less than 4! when values may repeat.
    assert get_space("anynetx_d").size("exact") == 131 * 130 * 129 * 128 // 24 * 16**4 * 18
    assert get_space("anynetx_c").size("exact") == get_space("anynetx_c").size("paper")
    with pytest.raises(ValueError, match="method"):
        get_space("regnetx").size("approx")


def test_batch_complexity_equals_complexity_on_random_specs():
    rng = np.random.default_rng(0)
    for block, se in (("x", 0.0), ("y", 0.25)):
        for stem_stride, size in ((2, 224), (1, 32), (2, (64, 48))):
            specs = []
            for _ in range(600):
                n = int(rng.integers(1, 6))
                b = float(rng.choice([1, 2, 4]))
                widths = list(rng.integers(1, 60, n) * 8)
                g = int(rng.choice([1, 2, 4, 8]))
                specs.append(make_spec(list(rng.integers(1, 6, n)), widths, g, b, block=block, se_ratio=se,
                                       stem_stride=stem_stride))
            f, p, a = batch_complexity(StageArrays.from_specs(specs), size, 32, stem_stride, se, classes=100)
            ref = np.array([[c.flops, c.params, c.acts] for c in (complexity(s, size, classes=100) for s in specs)])
            np.testing.assert_array_equal(ref, np.stack([f, p, a], axis=1))


def test_vectorized_compatibility_matches_the_reference():
    rng = np.random.default_rng(3)
    w = rng.integers(1, 129, (500, 4)) * 8
    b = rng.choice([0.5, 1.0, 2.0, 4.0], (500, 4))
    g = rng.choice([1, 2, 3, 4, 8, 16, 24, 32, 48, 120], (500, 4))
    vw, vg = adjust_compatibility(w, b, g)
    for i in range(500):
        rw, rg = adjust_block_compatibility(list(w[i]), list(b[i]), list(g[i]))
        assert list(vw[i]) == rw and list(vg[i]) == rg


def test_reject_mode_keeps_only_directly_buildable_networks():
    from keras_regnet.design_space.spaces import AnyNetSpace

    space = AnyNetSpace(name="anynetx_a_reject", compatibility="reject")
    for s in sample(space, 500, seed=0):
        assert s.spec.widths == s.params["ws"] and s.spec.group_widths == s.params["gs"]


def test_bad_inputs_raise_value_errors_naming_the_problem():
    with pytest.raises(ValueError, match="unknown design space"):
        sample("anynetx_z", 3)
    with pytest.raises(ValueError, match="flops"):
        sample("regnetx", 3, flops=(400e6, 360e6))
    with pytest.raises(ValueError, match="widen the ranges"):
        sample("regnetx", 3, flops=(1, 2), max_candidates=100_000)
    with pytest.raises(ValueError, match="num_samples"):
        sample("regnetx", -1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # used to raise TypeError: object of type 'float' has no len()
        (dict(flops=400e6), r"flops must be \(low, high\) with 0 <= low <= high, got 400000000.0"),
        # used to return networks costed at a 0x0 input
        (dict(input_size=0), "input_size must be a positive integer or \\(height, width\\) of them, got 0"),
        (dict(input_size=(32, -1)), "input_size must be a positive integer"),
        (dict(input_size=32.5), "input_size must be a positive integer"),
    ],
)
def test_bad_budget_and_input_size_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample("regnetx", 2, max_candidates=10_000, **kwargs)


def test_design_space_imports_neither_tensorflow_nor_matplotlib():
    code = ("import sys, keras_regnet.design_space as d; d.sample('regnetx', 5); "
            "print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_regnet_rows_are_checked_against_the_rule_and_fall_back_to_it():
    space = get_space("regnetx")
    cands = space.draw(np.random.default_rng(0), 4096)
    rows = np.arange(50)
    fast = space.stage_specs(cands, rows, 32, 2)
    assert all(isinstance(t, tuple) for t in fast)  # the closed form agrees with the rule
    cands.params["_stage_widths"][:50] += 8  # pretend the closed form had gone wrong
    slow = space.stage_specs(cands, rows, 32, 2)
    for i, spec in zip(rows, slow):
        assert spec == space.regnet_params(cands, int(i), 32, 2).to_spec() and spec.stages == fast[i]


def test_batch_complexity_reproduces_the_zoo():
    from keras_regnet.zoo import get_entry, list_models

    for se in (0.0, 0.25):
        specs = [s for s in (get_entry(m).spec() for m in list_models()) if s.se_ratio == se]
        f, p, a = batch_complexity(StageArrays.from_specs(specs), 224, se_ratio=se)
        assert [(c.flops, c.params, c.acts) for c in map(complexity, specs)] == list(zip(f, p, a))
