"""Design spaces draw the paper's b (inner width w / b) and every quantity from its stated law.

The laws are transcribed from the paper (section 3.2: d_i, w_i, g_i log-uniform, b_i in {1, 2, 4};
section 3.3 and pycls/sweep/samplers.py `regnet_sampler`: d uniform, w0, wa, wm log-uniform
quantized to 8, 0.1, 0.001) and from pycls/sweep/random.py `log_uniform(low, high, q)`: a
continuous log-uniform on (low - min(q, low / 2), high] rounded up to a multiple of q. Each test
compares the samples with that law's exact CDF by a Kolmogorov-Smirnov test on the randomized
probability integral transform, which is exactly uniform for a discrete law.
"""

import math

import numpy as np
import pytest
from scipy import stats

from keras_regnet.design_space import SPACES, get_space, sample
from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import bottleneck_width

P_MIN = 1e-3  # fixed seeds: each test is deterministic; a correct sampler passes with a wide margin
ANYNETS = ["anynetx_a", "anynetx_b", "anynetx_c", "anynetx_d", "anynetx_e"]
REGNETS = ["regnetx", "regnety", "regnetx_constrained", "regnety_constrained"]


def log_uniform_cdf(lo: float, hi: float, q: float):
    """CDF of pycls's quantized log-uniform: P(X <= v) = P(f <= v), f log-uniform on (lo - q*, hi]."""
    lo_open = lo - min(q, lo / 2)

    def cdf(v: np.ndarray) -> np.ndarray:
        v = np.maximum(np.asarray(v, dtype=np.float64), lo_open)
        return np.clip((np.log(v) - math.log(lo_open)) / (math.log(hi) - math.log(lo_open)), 0.0, 1.0)

    return cdf


def ks_pvalue(x: np.ndarray, cdf, step: float, seed: int = 0) -> float:
    """KS p-value of samples x (on a grid of the given step) against a discrete law with this CDF."""
    x = np.asarray(x, dtype=np.float64).ravel()
    below, at = cdf(x - step), cdf(x)  # P(X < x) and P(X <= x): the grid's cells are (v - step, v]
    u = below + np.random.default_rng(seed).uniform(size=x.size) * (at - below)
    return stats.kstest(u, "uniform").pvalue


def set_pvalue(x: np.ndarray, values: tuple, seed: int = 0) -> float:
    """KS p-value of samples x against the uniform law over a finite set of values."""
    x = np.asarray(x, dtype=np.float64).ravel()
    ordered = np.array(sorted(values), dtype=np.float64)
    idx = np.searchsorted(ordered, x)
    assert np.all(ordered[np.minimum(idx, len(ordered) - 1)] == x), "a value outside the set"
    u = (idx + np.random.default_rng(seed).uniform(size=x.size)) / len(ordered)
    return stats.kstest(u, "uniform").pvalue


def on_grid(x: np.ndarray, lo: float, hi: float, q: float) -> bool:
    k = np.asarray(x, dtype=np.float64) / q
    return bool(np.all((x >= lo) & (x <= hi)) and np.allclose(k, np.round(k), atol=1e-6))


@pytest.fixture(scope="module")
def anynet_a():
    return get_space("anynetx_a").draw(np.random.default_rng(11), 20000).params


@pytest.mark.parametrize("name", sorted(SPACES))
def test_inner_width_never_exceeds_width_in_any_space(name):
    space = get_space(name)
    cands = space.draw(np.random.default_rng(3), 20000)  # every candidate the sampler could accept
    st = cands.stages
    present = st.depths > 0
    inner = np.round(st.widths * st.bottleneck_ratios)
    assert np.all(inner[present] <= st.widths[present]) and np.all(inner[present] >= 1)
    assert set(np.unique(1 / st.bottleneck_ratios[present])) <= {1.0, 2.0, 4.0}
    for s in sample(name, 300, seed=4):  # and the accepted networks, through the spec's own rule
        assert all(bottleneck_width(w.width, w.bottleneck_ratio) <= w.width for w in s.spec.stages)
        b = s.params["bs"] if name.startswith("anynet") else [s.params["b"]] * len(s.spec.stages)
        assert s.spec.paper_bottlenecks == b and s.spec.bottleneck_ratios == [1 / x for x in b]


def test_paper_b_of_two_halves_the_inner_width():
    s = next(s for s in sample("regnetx", 200, seed=0) if s.params["b"] == 2)
    p = s.params
    ref = RegNetParams(p["d"], p["w0"], p["wa"], p["wm"], p["g"], bottleneck_ratio=0.5).to_spec(s.spec.name)
    assert s.spec == ref
    assert all(bottleneck_width(st.width, st.bottleneck_ratio) * 2 == st.width for st in s.spec.stages)


def test_anynet_depths_and_widths_are_log_uniform(anynet_a):
    d, w = anynet_a["ds"], anynet_a["ws"]
    assert on_grid(d, 1, 16, 1) and on_grid(w, 8, 1024, 8)
    assert ks_pvalue(d, log_uniform_cdf(1, 16, 1), 1) > P_MIN
    assert ks_pvalue(w, log_uniform_cdf(8, 1024, 8), 8) > P_MIN
    # Stages are drawn independently: stage 1 and stage 4 widths are uncorrelated.
    assert abs(stats.spearmanr(w[:, 0], w[:, 3]).statistic) < 0.03


def test_anynet_b_and_g_are_uniform_per_stage(anynet_a):
    assert set_pvalue(anynet_a["bs"], (1, 2, 4)) > P_MIN
    assert set_pvalue(anynet_a["gs"], (1, 2, 4, 8, 16, 32)) > P_MIN
    assert np.mean(np.ptp(anynet_a["bs"], axis=1) > 0) > 0.5  # per stage, not shared


@pytest.mark.parametrize("name, key", [("anynetx_b", "bs"), ("anynetx_c", "bs"), ("anynetx_c", "gs")])
def test_shared_values_are_one_uniform_draw_per_network(name, key):
    x = get_space(name).draw(np.random.default_rng(5), 20000).params[key]
    assert np.all(x == x[:, :1])
    values = (1, 2, 4) if key == "bs" else (1, 2, 4, 8, 16, 32)
    assert set_pvalue(x[:, 0], values) > P_MIN


@pytest.mark.parametrize("name", ["anynetx_d", "anynetx_e"])
def test_ordering_constraints_condition_the_c_distribution(name):
    c = get_space("anynetx_c").draw(np.random.default_rng(9), 5000)
    x = get_space(name).draw(np.random.default_rng(9), 5000)
    for k in ("ds", "ws", "bs", "gs"):
        np.testing.assert_array_equal(c.params[k], x.params[k])
    ordered = np.all(np.diff(x.params["ws"], axis=1) >= 0, axis=1)
    if name == "anynetx_e":
        ordered &= np.all(np.diff(x.params["ds"], axis=1) >= 0, axis=1)
    np.testing.assert_array_equal(x.valid, ordered)


@pytest.mark.parametrize("name", REGNETS)
def test_regnet_parameters_follow_the_reference_sampler(name):
    space = get_space(name)
    d, w0, wa, wm = space.draw_rule(np.random.default_rng(7), 20000)
    (dlo, dhi), (wm_lo, wm_hi) = space.depth_range, space.wm_range
    assert on_grid(d, dlo, dhi, 1) and on_grid(w0, 8, 248, 8) and on_grid(wa, 8.0, 255.9, 0.1)
    assert on_grid(wm, wm_lo, wm_hi, 0.001)
    assert set_pvalue(d, tuple(range(dlo, dhi + 1))) > P_MIN  # uniform, not log-uniform
    assert ks_pvalue(w0, log_uniform_cdf(8, 248, 8), 8) > P_MIN
    assert ks_pvalue(wa, log_uniform_cdf(8.0, 255.9, 0.1), 0.1) > P_MIN
    assert ks_pvalue(wm, log_uniform_cdf(wm_lo, wm_hi, 0.001), 0.001) > P_MIN
    kept = space.draw(np.random.default_rng(8), 100000).params  # b, g drawn for the kept networks
    assert len(kept["b"]) > 2000
    bs = (1,) if "constrained" in name else (1, 2, 4)
    assert set_pvalue(kept["b"], bs) > P_MIN if len(bs) > 1 else set(kept["b"]) == {1.0}
    assert set_pvalue(kept["g"], (1, 2, 4, 8, 16, 32)) > P_MIN


def test_the_law_tests_reject_a_wrong_quantization_or_law():
    """The KS checks above have the power to tell nearby laws apart at these sample sizes."""
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(math.log(8), math.log(1024), 80000))
    nearest = np.clip(np.round(x / 8) * 8, 8, 1024)  # log-uniform on [lo, hi], rounded to nearest
    assert ks_pvalue(nearest, log_uniform_cdf(8, 1024, 8), 8) < 1e-6
    assert ks_pvalue(np.ceil(x / 8) * 8, log_uniform_cdf(8, 1024, 8), 8) < 1e-6  # no (lo - q*) margin
    uniform_d = rng.integers(1, 17, 80000)
    assert ks_pvalue(uniform_d, log_uniform_cdf(1, 16, 1), 1) < 1e-6
    assert set_pvalue(rng.choice([1, 1, 2, 4], 20000), (1, 2, 4)) < 1e-6
