"""The paper's figures for sampled populations: EDFs, parameter trends with bootstrap bands,
per-block widths of good and bad models, e_fit versus error. Each figure is written as PNG and SVG.

matplotlib is imported lazily with the Agg backend, so the rest of the package never needs it.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from keras_regnet.design_space.stats import BootstrapRange, edf, summarize


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, stem: str) -> list[str]:
    """Write stem.png and stem.svg atomically (temp file + rename); return the two paths."""
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:  # minor log-scale tick labels cost most of the drawing time and add clutter
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        path = f"{stem}.{ext}"
        tmp = f"{path}.tmp.{os.getpid()}"
        fig.savefig(tmp, format=ext, dpi=110)
        os.replace(tmp, path)
        paths.append(path)
    _pyplot().close(fig)
    return paths


def plot_edfs(populations: Mapping[str, Sequence[float]], stem: str,
              weights: Optional[Mapping[str, Sequence[float]]] = None, title: str = "Error EDF") -> list[str]:
    """EDF comparison (Fig. 2/5/7/9 style); the legend shows [min error | mean error] per space."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    lo = min(float(np.min(e)) for e in populations.values())
    hi = max(float(np.max(e)) for e in populations.values())
    grid = np.linspace(lo - 0.02 * (hi - lo + 1e-9), hi + 0.02 * (hi - lo + 1e-9), 400)
    for name, errors in populations.items():
        s = summarize(errors)
        w = None if weights is None else weights.get(name)
        ax.plot(grid, edf(errors, grid, w), lw=2,
                label=f"[{s.min_error:.1f}|{s.mean_error:.1f}] {name} (n={s.n})")
    ax.set_xlabel("error (%)")
    ax.set_ylabel("cumulative prob." + (" (complexity-normalized)" if weights else ""))
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="[min|mean] space", title_fontsize=8)
    return _save(fig, stem)


def plot_trends(values: Mapping[str, Sequence[float]], errors: Sequence[float], stem: str,
                bands: Optional[Mapping[str, BootstrapRange]] = None, log: Sequence[str] = (),
                title: str = "") -> list[str]:
    """Parameter-vs-error scatters, one panel per parameter, each with its bootstrap 95% band
    (shaded) and most likely best value (black line), as in the paper's Fig. 2 and Fig. 11."""
    plt = _pyplot()
    names = list(values)
    cols = min(3, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.3 * rows), squeeze=False, sharey=True)
    e = np.asarray(errors, dtype=np.float64)
    for ax, name in zip(axes.ravel(), names):
        x = np.asarray(values[name], dtype=np.float64)
        band = (bands or {}).get(name)
        if band is not None:
            width = band.high - band.low
            pad = 0.005 * (np.nanmax(x) - np.nanmin(x) + 1e-9) if width == 0 else 0.0
            ax.axvspan(band.low - pad, band.high + pad, color="tab:blue", alpha=0.25,
                       label=f"{band.confidence:.0%} best range [{band.low:.3g}, {band.high:.3g}]")
            ax.axvline(band.best, color="black", lw=1.5, label=f"likely best {band.best:.3g}")
        ax.scatter(x, e, s=10, alpha=0.6, color="tab:gray", edgecolors="none")
        if name in log:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
        if band is not None:
            ax.legend(fontsize=7, loc="upper right")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for r in range(rows):
        axes[r][0].set_ylabel("error (%)")
    if title:
        fig.suptitle(title)
    return _save(fig, stem)


def plot_block_widths(best: Sequence[tuple[str, Sequence[int]]], worst: Sequence[tuple[str, Sequence[int]]],
                      stem: str, title: str = "") -> list[str]:
    """Per-block widths w_j of the best (top row) and worst (bottom row) models (Fig. 6)."""
    plt = _pyplot()
    cols = max(len(best), len(worst), 1)
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 5.6), squeeze=False, sharey=True)
    for r, (row, color) in enumerate(((best, "tab:green"), (worst, "tab:red"))):
        for c in range(cols):
            ax = axes[r][c]
            if c >= len(row):
                ax.axis("off")
                continue
            label, widths = row[c]
            w = list(widths) + [widths[-1]]  # one step per block, the last one drawn to its end
            ax.step(np.arange(len(w)), w, where="post", color=color, lw=2)
            ax.set_title(label, fontsize=7)
            ax.set_xlabel("block index j")
            ax.grid(alpha=0.3)
        axes[r][0].set_ylabel(("best" if r == 0 else "worst") + " models: width w_j")
    if title:
        fig.suptitle(title)
    return _save(fig, stem)


def plot_efit_vs_error(populations: Mapping[str, tuple[Sequence[float], Sequence[float]]], stem: str,
                       title: str = "Quantized linear fit vs error") -> list[str]:
    """e_fit of every model vs its error, one colour per space (Fig. 8)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    for name, (efit, errors) in populations.items():
        ax.scatter(efit, errors, s=10, alpha=0.6, label=name, edgecolors="none")
    ax.set_xlabel("e_fit (mean |log predicted / observed width|)")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, stem)


def plot_latency(populations: Mapping[str, Mapping[str, Sequence[float]]], key: str, stem: str,
                 fits: Optional[Mapping[str, Mapping[str, tuple[float, float, float]]]] = None,
                 zoo: Optional[Mapping[str, Mapping[str, float]]] = None, title: str = "") -> list[str]:
    """Latency vs flops, acts and params (the paper's Fig. 12 panels), one colour per population.

    `populations[name]` holds 'flops', 'acts', 'params' and `key` (ms) columns; `fits[name][metric]`
    is (slope, intercept, pearson r) of the line drawn; `zoo[model]` holds the same fields for
    named models, drawn as labelled black stars on the same axes.
    """
    plt = _pyplot()
    metrics = ("flops", "acts", "params")
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.8), sharey=True)
    for ax, metric in zip(axes, metrics):
        for name, cols in populations.items():
            x = np.asarray(cols[metric], dtype=np.float64) / 1e6
            y = np.asarray(cols[key], dtype=np.float64)
            fit = (fits or {}).get(name, {}).get(metric)
            label = name if fit is None else f"{name} (r={fit[2]:.2f})"
            points = ax.scatter(x, y, s=12, alpha=0.6, edgecolors="none", label=label)
            if fit is not None and len(x):
                xs = np.linspace(float(np.min(x)), float(np.max(x)), 50)
                ax.plot(xs, fit[0] * xs * 1e6 + fit[1], color=points.get_facecolor()[0][:3], lw=1.5)
        for model, row in (zoo or {}).items():
            if key in row:
                ax.scatter([row[metric] / 1e6], [row[key]], marker="*", s=70, color="black", zorder=3)
                ax.annotate(model, (row[metric] / 1e6, row[key]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xlabel({"flops": "flops (M multiply-adds)", "acts": "activations (M)", "params": "params (M)"}[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel(f"latency {key} (ms)")
    if title:
        fig.suptitle(title)
    return _save(fig, stem)
