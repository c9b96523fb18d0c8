"""Latency as a complexity axis: correlations with flops/params/acts, a fitted latency model, budgets.

Pure numpy (no TensorFlow, no scipy): measured latencies come from `python -m design_lab.latency`;
here they are related to the analytic complexity. A `LatencyModel` is linear in chosen complexity
features (per format, thread count and input size), is chosen among candidate forms by its
cross-validated error, and is saved as JSON so that samplers can take budgets in milliseconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from keras_regnet.errors import ConfigError

METRICS = ("flops", "params", "acts")
# Candidate forms of the latency model, simplest first (a tie in held-out error keeps the simpler).
FORMS = (("flops",), ("acts",), ("params",), ("flops", "acts"), ("flops", "params"),
         ("flops", "acts", "params"))


@dataclass(frozen=True)
class Correlation:
    """How well one complexity metric predicts latency: Pearson r, Spearman rho and the fitted line."""

    metric: str
    n: int
    pearson: float
    spearman: float
    slope: float
    intercept: float


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata 'average')."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(np.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))
    return float(np.sum(xc * yc) / denom) if denom > 0 else float("nan")


def correlation(metric: str, x: Sequence[float], latency: Sequence[float]) -> Correlation:
    """Pearson and Spearman correlation of latency with x, and the least-squares line latency ~ x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(latency, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ConfigError(f"correlation needs two equal-length 1-D arrays of >= 3 values, got shapes "
                          f"{x.shape} and {y.shape}")
    slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (float("nan"), float(y.mean()))
    return Correlation(metric, len(x), _pearson(x, y), _pearson(_ranks(x), _ranks(y)), float(slope),
                       float(intercept))


def best_predictor(correlations: Sequence[Correlation]) -> str:
    """The metric with the highest Pearson r (the paper's Fig. 12 criterion)."""
    if not correlations:
        raise ConfigError("best_predictor needs at least one correlation")
    return max(correlations, key=lambda c: -np.inf if np.isnan(c.pearson) else c.pearson).metric


@dataclass(frozen=True)
class LatencyModel:
    """latency_ms = intercept + sum(coef_k * feature_k / 1e6) for one format/threads/input size."""

    fmt: str
    threads: int
    input_size: int
    features: tuple[str, ...]
    coefficients: tuple[float, ...]  # per million of each feature
    intercept: float
    held_out_error: float = float("nan")  # median |relative error| of k-fold cross-validation
    n: int = 0

    def __post_init__(self) -> None:
        bad = [f for f in self.features if f not in METRICS]
        if bad or not self.features or len(self.features) != len(self.coefficients):
            raise ConfigError(f"latency model features must be a non-empty subset of {METRICS} with one "
                              f"coefficient each, got features={self.features!r} "
                              f"coefficients={self.coefficients!r}")

    def predict(self, flops: Any = 0, params: Any = 0, acts: Any = 0) -> np.ndarray:
        """Predicted milliseconds for arrays (or scalars) of flops, params and acts."""
        values = {"flops": flops, "params": params, "acts": acts}
        out = np.full(np.shape(np.asarray(values[self.features[0]])), self.intercept, dtype=np.float64)
        for f, c in zip(self.features, self.coefficients):
            out = out + c * np.asarray(values[f], dtype=np.float64) / 1e6
        return out

    @property
    def key(self) -> str:
        """'<format>@<threads>' as in latency.jsonl."""
        return f"{self.fmt}@{self.threads}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"], d["coefficients"] = list(self.features), list(self.coefficients)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyModel":
        d = dict(d)
        d["features"], d["coefficients"] = tuple(d["features"]), tuple(float(c) for c in d["coefficients"])
        return cls(**d)


def _design(columns: Mapping[str, np.ndarray], features: Sequence[str], rows: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(rows))] + [np.asarray(columns[f], np.float64)[rows] / 1e6
                                                   for f in features])


def _lstsq(columns: Mapping[str, np.ndarray], latency: np.ndarray, features: Sequence[str],
           rows: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(_design(columns, features, rows), latency[rows], rcond=None)[0]


def cross_validated_error(columns: Mapping[str, np.ndarray], latency: Sequence[float],
                          features: Sequence[str], folds: int = 5, seed: int = 0) -> float:
    """Median |predicted / measured - 1| over k-fold held-out predictions of a linear model."""
    y = np.asarray(latency, dtype=np.float64)
    n = len(y)
    if n < folds or folds < 2:
        raise ConfigError(f"cross-validation needs folds >= 2 and at least `folds` models, got folds={folds}, "
                          f"n={n}")
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    errors = np.empty(n)
    for k in range(folds):
        test, train = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of != k)
        coef = _lstsq(columns, y, features, train)
        errors[test] = np.abs(_design(columns, features, test) @ coef / y[test] - 1.0)
    return float(np.median(errors))


def fit_latency_model(columns: Mapping[str, np.ndarray], latency: Sequence[float], fmt: str, threads: int,
                      input_size: int, forms: Sequence[Sequence[str]] = FORMS, folds: int = 5,
                      seed: int = 0) -> tuple[LatencyModel, dict[tuple[str, ...], float]]:
    """The form with the lowest held-out error, refitted on all models; and every form's error."""
    y = np.asarray(latency, dtype=np.float64)
    errors = {tuple(f): cross_validated_error(columns, y, f, folds, seed) for f in forms}
    best = min(errors, key=lambda f: (round(errors[f], 4), len(f)))
    coef = _lstsq(columns, y, best, np.arange(len(y)))
    model = LatencyModel(fmt, int(threads), int(input_size), best, tuple(float(c) for c in coef[1:]),
                         float(coef[0]), errors[best], len(y))
    return model, errors


def save_models(path: str, models: Sequence[LatencyModel]) -> None:
    """Write the fitted models as one JSON file (keys '<format>@<threads>'), atomically."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({m.key: m.to_dict() for m in models}, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def load_model(path: str, key: str) -> LatencyModel:
    """One model ('<format>@<threads>', e.g. 'int8@1') from a file written by save_models."""
    with open(path, encoding="utf-8") as f:
        models = json.load(f)
    if key not in models:
        raise ConfigError(f"latency model {key!r} is not in {path}; available: {sorted(models)}")
    return LatencyModel.from_dict(models[key])
