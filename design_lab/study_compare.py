"""Pairwise statistics of two error populations: did refining space A into space B help?

- Difference in mean error (B - A; negative = B better) with a bootstrap 95% interval (each population
  resampled with replacement, independently).
- Area between the two EDFs, integral of |F_A(e) - F_B(e)| de in percentage points of error (the
  1-Wasserstein distance; it equals |mean difference| when one EDF lies above the other everywhere),
  with a bootstrap 95% interval. It is never negative, so its interval says how far apart, not which side.
- Two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu; rank-based, no normality assumed) and the
  two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp, the largest vertical gap between the EDFs).

Verdict: "helped" when the mean difference's interval lies below 0 and the Mann-Whitney p < 0.05,
"hurt" when it lies above 0 and p < 0.05, otherwise "cannot tell" at this n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from keras_regnet.errors import ConfigError

ALPHA = 0.05
QUANTILE_GRID = 2000  # points of the common quantile grid the EDF area is integrated on


@dataclass(frozen=True)
class PairComparison:
    """B versus A (B the refined space): differences, intervals, tests and verdict."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    delta_mean: float  # mean(B) - mean(A), percentage points
    delta_mean_ci: tuple[float, float]
    area: float  # integral |F_A - F_B| de, percentage points
    area_ci: tuple[float, float]
    mannwhitney_p: float
    ks_stat: float
    ks_p: float
    verdict: str


def _population(x: Sequence[float], label: str) -> np.ndarray:
    e = np.asarray(x, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)):
        raise ConfigError(f"{label} must hold at least 2 finite errors, got {e.size}")
    return e


def edf_area_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integral of |F_A - F_B| over error for each row of a (r, n_a) and b (r, n_b): the mean absolute
    difference of the two quantile functions on a common grid (exact when the grid is a multiple of n_a, n_b)."""
    u = (np.arange(QUANTILE_GRID) + 0.5) / QUANTILE_GRID
    qa = np.sort(a, axis=-1)[..., np.minimum((u * a.shape[-1]).astype(int), a.shape[-1] - 1)]
    qb = np.sort(b, axis=-1)[..., np.minimum((u * b.shape[-1]).astype(int), b.shape[-1] - 1)]
    return np.mean(np.abs(qa - qb), axis=-1)


def compare(a: Sequence[float], b: Sequence[float], repeats: int = 10_000, seed: int = 0,
            confidence: float = 0.95) -> PairComparison:
    """Compare error populations A (the coarser space) and B (its refinement)."""
    ea, eb = _population(a, "population A"), _population(b, "population B")
    if repeats < 1 or not 0 < confidence < 1:
        raise ConfigError(f"need repeats >= 1 and 0 < confidence < 1, got {repeats!r}, {confidence!r}")
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2 * 100
    deltas, areas = [], []
    for chunk in np.array_split(np.arange(repeats), max(1, repeats // 1000)):  # bounded memory
        ra = ea[rng.integers(0, ea.size, size=(chunk.size, ea.size))]
        rb = eb[rng.integers(0, eb.size, size=(chunk.size, eb.size))]
        deltas.append(rb.mean(axis=1) - ra.mean(axis=1))
        areas.append(edf_area_between(ra, rb))
    d, ar = np.concatenate(deltas), np.concatenate(areas)
    d_ci = tuple(float(v) for v in np.percentile(d, [tail, 100 - tail]))
    a_ci = tuple(float(v) for v in np.percentile(ar, [tail, 100 - tail]))
    mw_p = float(sps.mannwhitneyu(eb, ea, alternative="two-sided").pvalue)
    ks = sps.ks_2samp(ea, eb)
    if d_ci[1] < 0 and mw_p < ALPHA:
        verdict = "helped"
    elif d_ci[0] > 0 and mw_p < ALPHA:
        verdict = "hurt"
    else:
        verdict = "cannot tell"
    return PairComparison(int(ea.size), int(eb.size), float(ea.mean()), float(eb.mean()),
                          float(eb.mean() - ea.mean()), d_ci, float(edf_area_between(ea, eb)), a_ci,
                          mw_p, float(ks.statistic), float(ks.pvalue), verdict)


def exceeds_noise(delta_mean: float, noise_sd: float) -> bool:
    """Whether a mean difference is larger than two standard deviations of one model's retraining spread."""
    return bool(np.isfinite(noise_sd) and abs(delta_mean) > 2 * noise_sd)
