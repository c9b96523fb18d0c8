"""Population statistics of the paper: error EDFs (plain and complexity-normalized) and the
empirical bootstrap of the best-value range of a parameter.

Pure numpy; every function takes plain arrays so synthetic tests can pin the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from keras_regnet.errors import ConfigError


def _errors(errors: Sequence[float], label: str = "errors") -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)):
        raise ConfigError(f"{label} must be a non-empty 1-D list of finite numbers, got {errors!r}")
    return e


def edf(errors: Sequence[float], at: Sequence[float], weights: Optional[Sequence[float]] = None
        ) -> np.ndarray:
    """F(e) = (1/n) sum_i 1[e_i < e] at each point of `at` (weighted when weights are given)."""
    e = _errors(errors)
    w = np.full(e.size, 1.0 / e.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != e.shape or np.any(w < 0) or not w.sum() > 0:
        raise ConfigError(f"weights must be {e.size} non-negative numbers with a positive sum")
    order = np.argsort(e, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
    return cum[np.searchsorted(e[order], np.asarray(at, dtype=np.float64), side="left")]


def complexity_weights(complexities: Sequence[float], bins: int = 10) -> np.ndarray:
    """Weights that make the complexity distribution uniform over log-spaced bins.

    The normalized EDF of "On Network Design Spaces" (Radosavovic et al. 2019): each model counts
    1 / (models in its complexity bin), so design spaces with different complexity histograms
    compare on equal footing.
    """
    c = np.log(_errors(complexities, "complexities"))
    if bins < 1:
        raise ConfigError(f"bins must be >= 1, got {bins!r}")
    edges = np.linspace(c.min(), c.max(), bins + 1)
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    w = 1.0 / counts[idx]
    return w / w.sum()


def edf_area(errors: Sequence[float], lo: float, hi: float) -> float:
    """Integral of the EDF over [lo, hi] (larger is better): (1/n) sum (hi - clip(e_i, lo, hi))."""
    e = _errors(errors)
    if not lo < hi:
        raise ConfigError(f"edf_area needs lo < hi, got lo={lo!r} hi={hi!r}")
    return float(np.mean(hi - np.clip(e, lo, hi)))


@dataclass(frozen=True)
class Summary:
    """n, min and mean error of a population (the legend of the paper's EDF plots)."""

    n: int
    min_error: float
    mean_error: float


def summarize(errors: Sequence[float]) -> Summary:
    """n, min and mean error."""
    e = _errors(errors)
    return Summary(int(e.size), float(e.min()), float(e.mean()))


@dataclass(frozen=True)
class BootstrapRange:
    """Where the best models lie: the CI of the best model's value and the most likely best value."""

    low: float
    high: float
    best: float
    confidence: float


def bootstrap_best(values: Sequence[float], errors: Sequence[float], *, fraction: float = 0.25,
                   repeats: int = 10_000, confidence: float = 0.95, seed: int = 0) -> BootstrapRange:
    """The paper's empirical bootstrap: resample `fraction` of the (x, e) pairs with replacement,
    take the x of the lowest-error pair, repeat; report the central CI and the median of those x."""
    x, e = np.asarray(values, dtype=np.float64), _errors(errors)
    if x.shape != e.shape:
        raise ConfigError(f"values and errors must have the same length, got {x.size} and {e.size}")
    if not 0 < fraction <= 1 or repeats < 1 or not 0 < confidence < 1:
        raise ConfigError(f"need 0 < fraction <= 1, repeats >= 1, 0 < confidence < 1; got "
                          f"fraction={fraction!r}, repeats={repeats!r}, confidence={confidence!r}")
    rng = np.random.default_rng(seed)
    m = max(1, int(round(fraction * x.size)))
    idx = rng.integers(0, x.size, size=(repeats, m))
    best = x[idx[np.arange(repeats), np.argmin(e[idx], axis=1)]]
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(best, [tail, 100 - tail])
    return BootstrapRange(float(lo), float(hi), float(np.median(best)), float(confidence))


def binned_trend(values: Sequence[float], errors: Sequence[float], bins: int = 10, log: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mean error per bin of a parameter (bin centers, mean errors; empty bins are dropped)."""
    x, e = np.asarray(values, dtype=np.float64), _errors(errors)
    t = np.log(x) if log else x
    edges = np.linspace(t.min(), t.max(), bins + 1) if t.max() > t.min() else np.array([t.min(), t.min() + 1])
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    sums = np.bincount(idx, weights=e, minlength=len(edges) - 1)
    centers = (edges[:-1] + edges[1:]) / 2
    keep = counts > 0
    centers = np.exp(centers) if log else centers
    return centers[keep], sums[keep] / counts[keep]
