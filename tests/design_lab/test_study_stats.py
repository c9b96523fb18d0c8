"""design_lab.study_compare / study_noise / study_plan: the study's statistics and plan, on synthetic numbers."""

import numpy as np
import pytest
from scipy import stats as sps

from design_lab.study_compare import compare, edf_area_between, exceeds_noise
from design_lab.study_noise import chosen, noise_floor
from design_lab.study_plan import StudyPlan, rounds


def test_edf_area_is_the_wasserstein_distance():
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 2, 5), rng.normal(12, 1, 4)  # unequal sizes; the 2000-point grid is exact for both
    assert edf_area_between(a, b) == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9)
    assert edf_area_between(a, a + 3.0) == pytest.approx(3.0)


def test_a_shift_down_helps_a_shift_up_hurts_and_a_reshuffle_cannot_be_told():
    rng = np.random.default_rng(0)
    a = rng.normal(20, 3, 60)
    b = a - 4 + rng.normal(0, 0.5, 60)
    better = compare(a, b, repeats=2000)
    assert better.verdict == "helped" and better.delta_mean_ci[1] < 0 < -better.delta_mean_ci[0]
    assert better.delta_mean == pytest.approx(-4, abs=0.3) and better.area == pytest.approx(4, abs=0.6)
    worse = compare(a, a + 4, repeats=2000)
    assert worse.verdict == "hurt" and worse.delta_mean_ci[0] > 0
    same = compare(a, rng.permutation(a)[:50], repeats=2000)
    assert same.verdict == "cannot tell" and same.delta_mean_ci[0] < 0 < same.delta_mean_ci[1]
    # the tests are the scipy ones named in the report, B against A
    assert better.mannwhitney_p == pytest.approx(sps.mannwhitneyu(b, a).pvalue) and better.mannwhitney_p < 1e-6
    assert worse.ks_stat == pytest.approx(sps.ks_2samp(a, a + 4).statistic)


def test_bootstrap_interval_of_the_mean_difference_has_the_normal_width():
    rng = np.random.default_rng(1)
    a, b = rng.normal(15, 4, 100), rng.normal(14, 2, 80)
    c = compare(a, b, repeats=4000)
    se = np.sqrt(a.var() / a.size + b.var() / b.size)
    width = c.delta_mean_ci[1] - c.delta_mean_ci[0]
    assert width == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert c.delta_mean == pytest.approx(b.mean() - a.mean())


def test_a_population_of_one_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="at least 2"):
        compare([10.0], [11.0, 12.0])


def test_noise_floor_pools_the_per_model_variances():
    recs = [{"slot": 0, "space": "regnetx", "index": 0, "original_top1_err": 10.0, "top1_err": 12.0},
            {"slot": 1, "space": "regnetx", "index": 0, "original_top1_err": 10.0, "top1_err": 14.0},
            {"slot": 2, "space": "anynetx_a", "index": 0, "original_top1_err": 30.0, "top1_err": 31.0},
            {"slot": 3, "space": "anynetx_a", "index": 0, "original_top1_err": 30.0, "top1_err": 29.0}]
    nf = noise_floor(recs)
    assert [m["errors"] for m in nf.per_model] == [[10.0, 12.0, 14.0], [30.0, 31.0, 29.0]]
    assert [m["sd"] for m in nf.per_model] == pytest.approx([2.0, 1.0])
    assert nf.pooled_sd == pytest.approx(np.sqrt((4 + 1) / 2)) and nf.runs == 6
    assert exceeds_noise(3.2, nf.pooled_sd) and not exceeds_noise(-3.1, nf.pooled_sd)


def test_every_space_shares_seed_budget_and_training():
    plan = StudyPlan(("anynetx_a", "anynetx_c", "regnetx"), 7, 5, (0.5e6, 2e6), train={"epochs": 3, "lr": 0.05})
    cfgs = [plan.sweep_config(s) for s in plan.spaces]
    assert [c.space for c in cfgs] == ["anynetx_a", "anynetx_c", "regnetx"]
    shared = [{k: v for k, v in c.to_dict().items() if k != "space"} for c in cfgs]
    assert shared[0] == shared[1] == shared[2] and shared[0]["seed"] == 5 and shared[0]["num_models"] == 7
    assert chosen(plan, 4) == [("anynetx_a", 0), ("anynetx_c", 0), ("regnetx", 0), ("anynetx_a", 1)]


def test_rounds_and_bad_plans():
    assert rounds(12, 5) == [5, 10, 12] and rounds(3, 5) == [3] and rounds(10, 5) == [5, 10]
    with pytest.raises(ValueError, match="unknown design space 'anynetx_z'"):
        StudyPlan(("anynetx_a", "anynetx_z"))
    with pytest.raises(ValueError, match="once"):
        StudyPlan(("regnetx", "regnetx"))
