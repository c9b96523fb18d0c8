"""EDF, complexity normalization, bootstrap and e_fit on inputs with known answers."""

import numpy as np
import pytest

from keras_regnet.design_space import (
    binned_trend, bootstrap_best, complexity_weights, edf, edf_area, model_parameters, sample, summarize,
)
from keras_regnet.regnet import RegNetParams, fit_quantized_linear


def test_edf_counts_strictly_smaller_errors():
    errors = [4.0, 1.0, 3.0, 2.0]
    np.testing.assert_allclose(edf(errors, [0, 1, 1.5, 4, 4.01, 9]), [0, 0, 0.25, 0.75, 1, 1])
    s = summarize(errors)
    assert (s.n, s.min_error, s.mean_error) == (4, 1.0, 2.5)


def test_weighted_edf_and_complexity_weights():
    # Three models around 1MF and one at 100MF: two log bins, each bin gets half the mass.
    w = complexity_weights([1e6, 1.1e6, 1.2e6, 1e8], bins=2)
    np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    np.testing.assert_allclose(edf([10, 20, 30, 40], [35, 45], weights=w), [0.5, 1.0])


def test_edf_area_is_the_integral_of_the_edf():
    assert edf_area([1.0, 3.0], 0.0, 4.0) == pytest.approx(2.0)
    grid = np.linspace(0, 4, 400001)
    numeric = np.trapezoid(edf([1.0, 3.0], grid), grid)
    assert numeric == pytest.approx(2.0, abs=1e-3)
    with pytest.raises(ValueError, match="lo < hi"):
        edf_area([1.0], 2.0, 2.0)


def test_bootstrap_finds_the_optimum_of_a_synthetic_trend():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 500)
    e = 30 + 2.0 * np.abs(x - 3.0) + rng.normal(0, 0.3, 500)
    band = bootstrap_best(x, e, repeats=4000, seed=1)
    assert band.low <= 3.0 <= band.high and abs(band.best - 3.0) < 0.5 and band.high - band.low < 2.0
    assert band == bootstrap_best(x, e, repeats=4000, seed=1)  # reproducible by seed
    flat = bootstrap_best(np.full(50, 7.0), rng.normal(size=50), repeats=100)
    assert (flat.low, flat.high, flat.best) == (7.0, 7.0, 7.0)


def test_bootstrap_ci_widens_when_best_models_are_spread():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, 400)
    sharp = bootstrap_best(x, np.abs(x - 5) + rng.normal(0, 0.05, 400), repeats=2000)
    noisy = bootstrap_best(x, np.abs(x - 5) + rng.normal(0, 3.0, 400), repeats=2000)
    assert sharp.high - sharp.low < noisy.high - noisy.low


def test_bad_statistics_inputs_are_value_errors():
    with pytest.raises(ValueError, match="errors"):
        edf([], [1.0])
    with pytest.raises(ValueError, match="same length"):
        bootstrap_best([1, 2], [1.0])
    with pytest.raises(ValueError, match="fraction"):
        bootstrap_best([1, 2], [1.0, 2.0], fraction=0)


def test_binned_trend_recovers_a_linear_trend():
    x = np.linspace(0, 10, 101)
    centers, means = binned_trend(x, 2 * x + 1, bins=5)
    np.testing.assert_allclose(means, 2 * centers + 1, atol=0.3)


def test_efit_is_zero_on_true_regnets_and_positive_on_perturbed_widths():
    for s in sample("regnetx", 8, seed=4):
        p = s.params
        widths = RegNetParams(p["d"], p["w0"], p["wa"], p["wm"], p["g"], 1 / p["b"]).block_widths()
        assert fit_quantized_linear(widths).e_fit == 0.0
        bumped = list(widths)
        bumped[len(bumped) // 2] += 8 if bumped[len(bumped) // 2] < bumped[-1] else -8
        reversed_ = widths[::-1]
        assert fit_quantized_linear(bumped).e_fit > 0 and fit_quantized_linear(reversed_).e_fit > 0


def test_model_parameters_use_the_sampled_regnet_values_and_fit_anynets():
    reg = sample("regnetx", 1, seed=0)[0]
    row = model_parameters(reg.spec, reg.params)
    assert {k: row[k] for k in ("d", "w0", "wa", "wm", "b", "g")} == {k: float(v) for k, v in reg.params.items()}
    anynet = sample("anynetx_a", 1, seed=0)[0]
    row = model_parameters(anynet.spec, anynet.params)
    assert row["d"] == anynet.spec.depth and row["w4"] == anynet.spec.widths[3] and row["e_fit"] >= 0
    assert np.isnan(row["b"]) == (len(set(anynet.spec.bottleneck_ratios)) > 1)
